package gpuagent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/gpuagent"
)

// TestHTTPBackendDo: a request reaches the endpoint under the base URL as a
// JSON POST of the body, without asking for gzip, and its answer comes back
// as it came, a redirect included (an engine's redirect is its answer, not
// followed). Many requests at once share the backend (run with -race).
// An answer over the limit is ErrResponseTooLarge.
func TestHTTPBackendDo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/v1/moved":
			http.Redirect(w, r, "/v1/chat/completions", http.StatusTemporaryRedirect)
		case r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost:
			http.Error(w, r.Method+" "+r.URL.Path, http.StatusNotFound)
		case r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept-Encoding") != "":
			http.Error(w, fmt.Sprintf("headers %v", r.Header), http.StatusBadRequest)
		case strings.HasPrefix(string(body), `{"large"`):
			_, _ = io.WriteString(w, `{"answer":"`+strings.Repeat("x", 100)+`"}`)
		default:
			_, _ = fmt.Fprintf(w, `{"echo":%s}`, body)
		}
	}))
	t.Cleanup(srv.Close)
	b := gpuagent.NewHTTPBackend(srv.URL+"/v1/", 8)
	b.MaxResponseBytes = 64
	ctx := context.Background()

	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, resp, err := b.Do(ctx, "/v1/chat/completions", fmt.Appendf(nil, `{"n":%d}`, i))
			if err != nil || status != http.StatusOK || string(resp) != fmt.Sprintf(`{"echo":{"n":%d}}`, i) {
				t.Errorf("request %d: %d %s %v", i, status, resp, err)
			}
		}()
	}
	wg.Wait()

	status, _, err := b.Do(ctx, "/v1/moved", []byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusTemporaryRedirect, status, "the redirect is the answer")

	_, _, err = b.Do(ctx, "/v1/chat/completions", []byte(`{"large":true}`))
	require.ErrorIs(t, err, gpuagent.ErrResponseTooLarge)
}
