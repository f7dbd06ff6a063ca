package api

import (
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
)

// TestFormPartsKeepTheBodysError: a body that times out in the middle of a
// part's header line is a 408, as the timeout it is, not a 400 for the
// malformed header the parser makes of the line's first half.
func TestFormPartsKeepTheBodysError(t *testing.T) {
	head := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Dispos"
	for cut := 1; cut <= len(head); cut++ {
		body := io.MultiReader(strings.NewReader(head[:cut]), iotest.ErrReader(errSlowBody{"no byte came"}))
		err := eachFormPart("multipart/form-data; boundary=b", body, func(p *multipart.Part) error {
			_, err := io.ReadAll(p)
			if err != nil {
				return apierror.BodyError("purpose", err)
			}
			return nil
		})
		e, ok := apierror.As(err)
		require.True(t, ok, "cut %d: %v", cut, err)
		require.Equal(t, http.StatusRequestTimeout, e.Status, "cut %d: %v", cut, err)
	}
}
