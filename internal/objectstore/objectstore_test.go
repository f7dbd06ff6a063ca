package objectstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/objectstore/objectstoretest"
	"github.com/kilnhq/kiln/internal/testenv"
)

func TestFileConformance(t *testing.T) {
	t.Parallel()
	objectstoretest.RunConformance(t, newFileBucket)
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	objectstoretest.RunConformance(t, newS3Bucket)
}

// Not parallel: RunMemory counts the whole process's allocations.
func TestFileMemory(t *testing.T) {
	objectstoretest.RunMemory(t, newFileBucket)
}

// Not parallel: RunMemory counts the whole process's allocations.
func TestS3Memory(t *testing.T) {
	objectstoretest.RunMemory(t, newS3Bucket)
}

// newFileBucket opens a folder whose presigned URLs a test server serves,
// mounted as kiln mounts it.
func newFileBucket(t *testing.T) objectstore.Bucket {
	dir := t.TempDir()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b, err := objectstore.OpenWith(t.Context(), "file://"+dir, objectstore.Options{PublicURL: srv.URL})
	require.NoError(t, err)
	mux.Handle(objectstore.SignedPath, objectstore.Handler(b))
	t.Cleanup(func() {
		entries, err := os.ReadDir(filepath.Join(dir, objectstore.FileTempDir))
		require.NoError(t, err)
		require.Empty(t, entries, "temporary files left behind")
	})
	return b
}

func newS3Bucket(t *testing.T) objectstore.Bucket {
	b := openS3(t, testenv.S3URL(t))
	t.Cleanup(func() {
		uploads, err := objectstore.IncompleteUploads(context.Background(), b, "")
		require.NoError(t, err)
		require.Empty(t, uploads, "unfinished multipart uploads left behind")
	})
	return b
}

func openS3(t *testing.T, rawURL string) objectstore.Bucket {
	t.Helper()
	b, err := objectstore.Open(t.Context(), rawURL)
	require.NoError(t, err)
	return b
}

// The conformance suite's check for unfinished uploads means something only
// if they can be seen.
func TestS3IncompleteUploadsVisible(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openS3(t, testenv.S3URL(t))

	abort, err := objectstore.StartUpload(ctx, b, "dir/unfinished")
	require.NoError(t, err)
	uploads, err := objectstore.IncompleteUploads(ctx, b, "")
	require.NoError(t, err)
	require.Equal(t, []string{"dir/unfinished"}, uploads)

	require.NoError(t, abort())
	uploads, err = objectstore.IncompleteUploads(ctx, b, "")
	require.NoError(t, err)
	require.Empty(t, uploads)
}

func TestS3Prefix(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := testenv.S3URL(t)
	withPrefix := func(prefix string) objectstore.Bucket {
		u, err := url.Parse(base)
		require.NoError(t, err)
		q := u.Query()
		q.Set("prefix", prefix)
		u.RawQuery = q.Encode()
		return openS3(t, u.String())
	}
	whole := openS3(t, base)
	one, two := withPrefix("tenant/one"), withPrefix("/tenant/two/")

	for _, b := range []objectstore.Bucket{one, two} {
		info, err := b.Put(ctx, "dir/key", strings.NewReader("x"), 1)
		require.NoError(t, err)
		require.Equal(t, "dir/key", info.Key)
	}
	_, err := whole.Put(ctx, "tenant/onex", strings.NewReader("y"), 1)
	require.NoError(t, err)

	for _, b := range []objectstore.Bucket{one, two} {
		var keys []string
		require.NoError(t, b.List(ctx, "", func(info objectstore.Info) error {
			keys = append(keys, info.Key)
			return nil
		}))
		require.Equal(t, []string{"dir/key"}, keys)
		stat, err := b.Stat(ctx, "dir/key")
		require.NoError(t, err)
		require.Equal(t, "dir/key", stat.Key)
	}

	var keys []string
	require.NoError(t, whole.List(ctx, "", func(info objectstore.Info) error {
		keys = append(keys, info.Key)
		return nil
	}))
	require.Equal(t, []string{"tenant/one/dir/key", "tenant/onex", "tenant/two/dir/key"}, keys)

	require.NoError(t, one.Delete(ctx, "dir/key"))
	_, err = two.Stat(ctx, "dir/key")
	require.NoError(t, err)
}

func TestFileReservedKeys(t *testing.T) {
	t.Parallel()
	b, err := objectstore.Open(t.Context(), "file://"+t.TempDir())
	require.NoError(t, err)
	for _, key := range []string{objectstore.FileTempDir, objectstore.FileTempDir + "/x"} {
		_, err := b.Put(t.Context(), key, strings.NewReader("x"), 1)
		require.Error(t, err, key)
	}
	// Only the first segment is reserved.
	_, err = b.Put(t.Context(), "a/"+objectstore.FileTempDir, strings.NewReader("x"), 1)
	require.NoError(t, err)
}

func TestFileRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmp := filepath.Join(dir, objectstore.FileTempDir)
	require.NoError(t, os.MkdirAll(tmp, 0o750))
	stale, fresh := filepath.Join(tmp, "put-stale"), filepath.Join(tmp, "put-fresh")
	require.NoError(t, os.WriteFile(stale, []byte("x"), 0o640))
	require.NoError(t, os.WriteFile(fresh, []byte("x"), 0o640))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	b, err := objectstore.Open(t.Context(), "file://"+dir)
	require.NoError(t, err)
	require.NoFileExists(t, stale)
	require.FileExists(t, fresh, "may belong to a Put in progress")

	require.NoError(t, b.List(t.Context(), "", func(info objectstore.Info) error {
		t.Errorf("List shows %q", info.Key)
		return nil
	}))
}

func TestFileOpenCreatesFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	b, err := objectstore.Open(t.Context(), "file://"+dir)
	require.NoError(t, err)
	require.DirExists(t, dir)
	_, err = b.Put(t.Context(), "k", strings.NewReader("v"), 1)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, "k"))
}

// A Put that fails after a multipart upload has begun must abort it. The
// reader looks for the upload when it fails, to show there was one.
func TestS3FailedPutAbortsUpload(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		unknown bool
		cancel  bool
	}{
		{"Error", false, false},
		{"ErrorUnknownSize", true, false},
		{"Cancel", false, true},
		{"CancelUnknownSize", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := openS3(t, testenv.S3URL(t))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()

			const key = "big/object"
			var during []string
			var duringErr error
			r := &hookReader{
				r: objectstoretest.Generate(1, objectstoretest.LargeSize),
				n: 17 << 20, // past the first 16 MiB part
				hook: func() error {
					// Not require: this may run on a goroutine of minio-go's.
					during, duringErr = objectstore.IncompleteUploads(t.Context(), b, key)
					if tt.cancel {
						cancel()
						return nil
					}
					return errFail
				},
			}
			size := int64(objectstoretest.LargeSize)
			if tt.unknown {
				size = -1
			}
			_, err := b.Put(ctx, key, r, size)
			if tt.cancel {
				require.ErrorIs(t, err, context.Canceled)
			} else {
				require.ErrorIs(t, err, errFail)
			}
			require.NoError(t, duringErr)
			require.Equal(t, []string{key}, during, "no multipart upload under way when the reader failed")

			after, err := objectstore.IncompleteUploads(t.Context(), b, key)
			require.NoError(t, err)
			require.Empty(t, after)
		})
	}
}

var errFail = errors.New("reader failed")

// hookReader yields n bytes of r, then returns hook's error or, when that is
// nil, the rest of r.
type hookReader struct {
	r    io.Reader
	n    int64
	hook func() error
	done bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n <= 0 {
		if !h.done {
			h.done = true
			if err := h.hook(); err != nil {
				return 0, err
			}
		}
		return h.r.Read(p)
	}
	n, err := h.r.Read(p[:min(int64(len(p)), h.n)])
	h.n -= int64(n)
	return n, err
}

// A Compose that fails once its multipart upload has begun must abort it.
// The hook looks for the upload before a part, to show there was one.
func TestS3FailedComposeAbortsUpload(t *testing.T) {
	t.Parallel()
	// Part 1 copies source 0 server-side; part 2 streams sources 1 and 2.
	sizes := []int64{6 << 20, 1 << 10, 6 << 20}
	for _, tt := range []struct {
		name   string
		part   int
		delete int // the source to delete before the part, or -1
		cancel bool
		want   error
	}{
		{"CopiedSourceGone", 1, 0, false, objectstore.ErrNotExist},
		{"StreamedSourceGone", 2, 2, false, objectstore.ErrNotExist},
		{"Cancel", 2, -1, true, context.Canceled},
		{"HookError", 2, -1, false, errFail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newS3Bucket(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			srcs := make([]string, len(sizes))
			for i, size := range sizes {
				srcs[i] = fmt.Sprintf("src/%d", i)
				_, err := b.Put(ctx, srcs[i], objectstoretest.Generate(uint64(i), size), size)
				require.NoError(t, err)
			}

			const dst = "out/composed"
			var during []string
			var duringErr error
			objectstore.SetComposeHook(b, func(part int) error {
				if part != tt.part {
					return nil
				}
				during, duringErr = objectstore.IncompleteUploads(t.Context(), b, dst)
				switch {
				case tt.delete >= 0:
					return b.Delete(t.Context(), srcs[tt.delete])
				case tt.cancel:
					cancel()
					return nil
				}
				return errFail
			})
			_, err := b.Compose(ctx, dst, srcs)
			require.ErrorIs(t, err, tt.want)
			require.NoError(t, duringErr)
			require.Equal(t, []string{dst}, during, "no multipart upload under way before part %d", tt.part)

			after, err := objectstore.IncompleteUploads(t.Context(), b, dst)
			require.NoError(t, err)
			require.Empty(t, after)
			_, err = b.Stat(t.Context(), dst)
			require.ErrorIs(t, err, objectstore.ErrNotExist)
		})
	}
}
