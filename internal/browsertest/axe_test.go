package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/browsertest"
)

// TestAxeFindsViolations: the accessibility check reports what a page
// breaks (an image without a text alternative, a button without a name,
// grey on grey text), and nothing on a page that breaks nothing.
func TestAxeFindsViolations(t *testing.T) {
	browsertest.ChromiumPath(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/bad" {
			_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><title>Bad</title></head><body><main>
				<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><button></button>
				<p style="color:#777;background:#888">grey on grey</p></main></body></html>`))
			return
		}
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><title>Good</title></head><body><main>
			<h1>Good</h1><img alt="A dot" src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><button>Save</button></main></body></html>`))
	}))
	defer srv.Close()
	p := browsertest.New(t, browsertest.Options{Offline: true})

	p.Navigate("a bad page", srv.URL+"/bad")
	var ids []string
	for _, v := range p.AxeRun("bad page") {
		ids = append(ids, v.ID)
	}
	for _, want := range []string{"image-alt", "button-name", "color-contrast"} {
		require.True(t, slices.Contains(ids, want), "%s not found in %v", want, ids)
	}

	p.Navigate("a good page", srv.URL+"/good")
	require.Empty(t, p.AxeRun("good page"))
}
