package embedded_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/embedded"
)

// TestServeAnswersWithTheFile: the file's bytes, whole or a range, with its
// ETag; a request that names the ETag gets 304 and no body.
func TestServeAnswersWithTheFile(t *testing.T) {
	body := strings.Repeat("kiln ", 10_000)
	fsys := fstest.MapFS{"ui/app.js": {Data: []byte(body)}}
	f, err := embedded.Open(fsys, "ui/app.js")
	require.NoError(t, err)
	other, err := embedded.Open(fstest.MapFS{"ui/app.js": {Data: []byte(body + ";")}}, "ui/app.js")
	require.NoError(t, err)
	require.NotEqual(t, f.ETag, other.ETag, "the ETag follows the bytes")

	get := func(header ...string) *http.Response {
		r := httptest.NewRequest(http.MethodGet, "/app.js", nil)
		for i := 0; i < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		f.Serve(w, r)
		return w.Result()
	}
	read := func(resp *http.Response) string {
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}

	resp := get()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, f.ETag, resp.Header.Get("ETag"))
	require.Equal(t, body, read(resp))

	resp = get("Range", "bytes=5-9")
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, "kiln ", read(resp))

	resp = get("If-None-Match", f.ETag)
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, read(resp))
}

// TestOpenRefuses: a missing file, and one that cannot seek (which Serve
// could not answer ranges from), are errors at Open, not at the first
// request.
func TestOpenRefuses(t *testing.T) {
	_, err := embedded.Open(fstest.MapFS{}, "ui/app.js")
	require.ErrorIs(t, err, fs.ErrNotExist)
	_, err = embedded.Open(streamFS{}, "app.js")
	require.ErrorContains(t, err, "app.js cannot seek")
}

// streamFS has one file, readable only from its start.
type streamFS struct{}

func (streamFS) Open(string) (fs.File, error) { return streamFile{strings.NewReader("x")}, nil }

type streamFile struct{ r io.Reader }

func (f streamFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (streamFile) Close() error                 { return nil }
func (streamFile) Stat() (fs.FileInfo, error)   { return nil, fs.ErrInvalid }
