package objectstore_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

// A process killed in the middle of a write leaves the write's temporary
// file behind; SweepTemp removes those that nothing has written to for
// TempMaxAge, and nothing a write in progress or a multipart upload still
// needs.
func TestSweepTemp(t *testing.T) {
	t.Parallel()

	// openFolder opens a folder whose presigned URLs a test server serves.
	openFolder := func(t *testing.T, dir string) objectstore.Bucket {
		t.Helper()
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		b, err := objectstore.OpenWith(t.Context(), "file://"+dir, objectstore.Options{PublicURL: srv.URL})
		require.NoError(t, err)
		mux.Handle(objectstore.SignedPath, objectstore.Handler(b))
		return b
	}
	old := time.Now().Add(-2 * objectstore.TempMaxAge)
	// leave writes what a killed write leaves at path, last written long
	// ago.
	leave := func(t *testing.T, path string) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, []byte("half a write"), 0o640))
		require.NoError(t, os.Chtimes(path, old, old))
	}
	put := func(t *testing.T, url, body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	content := func(t *testing.T, b objectstore.Bucket, key string) string {
		t.Helper()
		rc, err := b.Get(t.Context(), key)
		require.NoError(t, err)
		defer rc.Close()
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(got)
	}

	t.Run("Folder", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dir := t.TempDir()
		b := openFolder(t, dir)
		tmp := filepath.Join(dir, objectstore.FileTempDir)
		stalePut := filepath.Join(tmp, "put-killed")
		leave(t, stalePut)

		// A multipart upload with a part received long ago, which it still
		// needs, and the leftover of a part's PUT killed midway.
		uploadID, err := b.CreateMultipart(ctx, "files/mp")
		require.NoError(t, err)
		u, err := b.PresignPart(ctx, "files/mp", uploadID, 1, time.Hour)
		require.NoError(t, err)
		put(t, u, "part one")
		partDir := filepath.Join(tmp, "multipart", uploadID)
		require.NoError(t, os.Chtimes(filepath.Join(partDir, "1"), old, old))
		stalePart := filepath.Join(partDir, "put-killed")
		leave(t, stalePart)

		// A Put in progress: its temporary file is fresh.
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := b.Put(ctx, "in/progress", pr, -1)
			done <- err
		}()
		_, err = pw.Write([]byte("half")) // returns once the Put has read it
		require.NoError(t, err)

		n, err := objectstore.SweepTemp(ctx, b, time.Now().Add(-objectstore.TempMaxAge))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.NoFileExists(t, stalePut)
		require.NoFileExists(t, stalePart)
		require.FileExists(t, filepath.Join(partDir, "1"), "a part its upload still needs")

		// The write in progress and the multipart upload end unharmed.
		_, err = pw.Write([]byte("way"))
		require.NoError(t, err)
		require.NoError(t, pw.Close())
		require.NoError(t, <-done)
		require.Equal(t, "halfway", content(t, b, "in/progress"))
		_, err = b.CompleteMultipart(ctx, "files/mp", uploadID, []int{1}, 0)
		require.NoError(t, err)
		require.Equal(t, "part one", content(t, b, "files/mp"))

		n, err = objectstore.SweepTemp(ctx, b, time.Now().Add(-objectstore.TempMaxAge))
		require.NoError(t, err)
		require.Zero(t, n)
		entries, err := os.ReadDir(tmp)
		require.NoError(t, err)
		require.Empty(t, entries)
	})

	// A restart sweeps what the killed process left, parts' leftovers
	// included.
	t.Run("AtOpen", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		dir := t.TempDir()
		b := openFolder(t, dir)
		uploadID, err := b.CreateMultipart(ctx, "files/mp")
		require.NoError(t, err)
		stalePart := filepath.Join(dir, objectstore.FileTempDir, "multipart", uploadID, "put-killed")
		leave(t, stalePart)
		stalePut := filepath.Join(dir, objectstore.FileTempDir, "put-killed")
		leave(t, stalePut)

		openFolder(t, dir)
		require.NoFileExists(t, stalePart)
		require.NoFileExists(t, stalePut)
		require.DirExists(t, filepath.Dir(stalePart), "the multipart upload goes on")
	})

	t.Run("S3", func(t *testing.T) {
		t.Parallel()
		b := openS3(t, testenv.S3URL(t))
		_, err := b.Put(t.Context(), "k", bytes.NewReader([]byte("v")), 1)
		require.NoError(t, err)
		n, err := objectstore.SweepTemp(t.Context(), b, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Zero(t, n, "S3 keeps no temporary files")
		require.Equal(t, "v", content(t, b, "k"))
	})
}
