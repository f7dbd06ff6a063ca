// Package objectstoretest is the conformance suite every objectstore.Bucket
// implementation runs, so that they all behave alike.
package objectstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
)

// LargeSize is the size of the suite's large objects: more than one 16 MiB
// multipart part, streamed from a generator rather than held in memory.
const LargeSize = 20<<20 + 12345

// RunConformance runs the suite. newBucket must return a new, empty bucket
// each time it is called; the suite closes it when the subtest ends. Its
// presigned URLs must work: a folder needs Options.PublicURL and a server
// there that serves objectstore.Handler.
func RunConformance(t *testing.T, newBucket func(t *testing.T) objectstore.Bucket) {
	t.Helper()

	setup := func(t *testing.T) (objectstore.Bucket, context.Context) {
		t.Helper()
		b := newBucket(t)
		t.Cleanup(func() { require.NoError(t, b.Close()) })
		return b, t.Context()
	}

	t.Run("PutGet", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name    string
			size    int64
			unknown bool // pass size -1
		}{
			{"Empty", 0, false},
			{"EmptyUnknownSize", 0, true},
			{"Small", 1000, false},
			{"SmallUnknownSize", 1000, true},
			{"Large", LargeSize, false},
			{"LargeUnknownSize", LargeSize, true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b, ctx := setup(t)
				const key = "dir/object.bin"
				sizeArg := tt.size
				if tt.unknown {
					sizeArg = -1
				}
				info, err := b.Put(ctx, key, Generate(1, tt.size), sizeArg)
				require.NoError(t, err)
				require.Equal(t, key, info.Key)
				require.Equal(t, tt.size, info.Size)
				require.NotEmpty(t, info.ETag)

				stat, err := b.Stat(ctx, key)
				require.NoError(t, err)
				require.Equal(t, tt.size, stat.Size)
				require.Equal(t, info.ETag, stat.ETag)

				requireContent(t, b, key, Generate(1, tt.size))
			})
		}
	})

	t.Run("Stat", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		start := time.Now()
		info := put(t, b, "a/b/c", "hello")

		stat, err := b.Stat(ctx, "a/b/c")
		require.NoError(t, err)
		require.Equal(t, "a/b/c", stat.Key)
		require.Equal(t, int64(5), stat.Size)
		require.Equal(t, info.ETag, stat.ETag)
		// Allow for clock skew between the test and an S3 server.
		require.WithinRange(t, stat.ModTime, start.Add(-time.Hour), time.Now().Add(time.Hour))
		require.False(t, info.ModTime.IsZero())
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "dir/child", "x")

		// "dir" holds another key but is no object itself.
		for _, key := range []string{"missing", "dir", "dir/missing", "dir/child/below"} {
			_, err := b.Get(ctx, key)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "Get %q", key)
			_, err = b.GetRange(ctx, key, 0, 1)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "GetRange %q", key)
			_, err = b.GetRange(ctx, key, 0, 0)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "GetRange %q length 0", key)
			_, err = b.Stat(ctx, key)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "Stat %q", key)
		}
	})

	t.Run("GetRange", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const content = "0123456789abcdefghijklmnopqrstuvwxyz"
		put(t, b, "range", content)
		put(t, b, "empty", "")

		for _, tt := range []struct {
			key            string
			offset, length int64
			want           string
		}{
			{"range", 0, -1, content},
			{"range", 0, 10, "0123456789"},
			{"range", 10, 5, "abcde"},
			{"range", 10, -1, content[10:]},
			{"range", 30, 100, "uvwxyz"},
			{"range", 35, 1, "z"},
			{"range", 36, -1, ""},
			{"range", 36, 10, ""},
			{"range", 100, -1, ""},
			{"range", 5, 0, ""},
			{"empty", 0, -1, ""},
			{"empty", 0, 10, ""},
			{"empty", 3, -1, ""},
		} {
			rc, err := b.GetRange(ctx, tt.key, tt.offset, tt.length)
			require.NoError(t, err, "%s [%d, %d)", tt.key, tt.offset, tt.length)
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			require.Equal(t, tt.want, string(got), "%s [%d, +%d)", tt.key, tt.offset, tt.length)
		}

		_, err := b.GetRange(ctx, "range", -1, 5)
		require.Error(t, err)
		_, err = b.GetRange(ctx, "range", 0, -2)
		require.Error(t, err)
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		first := put(t, b, "key", "the first, longer content")
		second := put(t, b, "key", "the second")
		require.NotEqual(t, first.ETag, second.ETag)

		requireContent(t, b, "key", strings.NewReader("the second"))
		stat, err := b.Stat(ctx, "key")
		require.NoError(t, err)
		require.Equal(t, int64(len("the second")), stat.Size)
		require.Equal(t, second.ETag, stat.ETag)
		require.Equal(t, []string{"key"}, listKeys(t, b, ""))
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "a/b/c", "x")
		put(t, b, "keep", "y")

		require.NoError(t, b.Delete(ctx, "a/b/c"))
		_, err := b.Stat(ctx, "a/b/c")
		require.ErrorIs(t, err, objectstore.ErrNotExist)
		_, err = b.Get(ctx, "a/b/c")
		require.ErrorIs(t, err, objectstore.ErrNotExist)
		require.Equal(t, []string{"keep"}, listKeys(t, b, ""))

		require.NoError(t, b.Delete(ctx, "a/b/c"), "deleting twice")
		require.NoError(t, b.Delete(ctx, "never/existed"))

		// The parents of a deleted key can become keys.
		put(t, b, "a/b", "now an object")
		requireContent(t, b, "a/b", strings.NewReader("now an object"))

		// A key that only prefixes others is no object: deleting it is a
		// no-op that leaves them alone.
		put(t, b, "dir/child", "z")
		require.NoError(t, b.Delete(ctx, "dir"))
		requireContent(t, b, "dir/child", strings.NewReader("z"))
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		// Lexical order of whole keys, which differs from walking folders
		// in name order: '-' < '.' < '/' < letters < multi-byte UTF-8.
		keys := []string{
			"lis",
			"list/a-b",
			"list/a.txt",
			"list/a/b",
			"list/a/c/d",
			"list/ab",
			"list/z",
			"list/é",
			"listother/x",
		}
		for i, k := range slices.Backward(keys) {
			put(t, b, k, strings.Repeat("x", i))
		}

		require.Equal(t, keys, listKeys(t, b, ""))
		require.Equal(t, keys[1:8], listKeys(t, b, "list/"))
		require.Equal(t, keys[:9], listKeys(t, b, "lis"))
		require.Equal(t, keys[1:9], listKeys(t, b, "list"))
		require.Equal(t, keys[1:6], listKeys(t, b, "list/a"))
		require.Equal(t, keys[3:5], listKeys(t, b, "list/a/"))
		require.Equal(t, []string{"list/a/c/d"}, listKeys(t, b, "list/a/c"))
		require.Equal(t, []string{"list/é"}, listKeys(t, b, "list/é"))
		require.Empty(t, listKeys(t, b, "nothing"))
		require.Empty(t, listKeys(t, b, "list/a/c/d/"))
		require.Empty(t, listKeys(t, b, "list/zz"))

		// Infos agree with Stat.
		require.NoError(t, b.List(ctx, "list/", func(info objectstore.Info) error {
			stat, err := b.Stat(ctx, info.Key)
			require.NoError(t, err)
			require.Equal(t, stat.Size, info.Size, info.Key)
			require.Equal(t, stat.ETag, info.ETag, info.Key)
			require.False(t, info.ModTime.IsZero(), info.Key)
			return nil
		}))

		// An error from fn stops the walk and comes back.
		errStop := errors.New("stop")
		var calls int
		err := b.List(ctx, "", func(objectstore.Info) error {
			calls++
			return errStop
		})
		require.ErrorIs(t, err, errStop)
		require.Equal(t, 1, calls)
	})

	t.Run("FailedPut", func(t *testing.T) {
		t.Parallel()
		for _, tt := range failCases() {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b, ctx := setup(t)
				put(t, b, "key", "previous")

				r := &failingReader{r: Generate(2, tt.size), n: tt.failAt, err: errBoom}
				_, err := b.Put(ctx, "key", r, tt.sizeArg())
				require.ErrorIs(t, err, errBoom)
				requireContent(t, b, "key", strings.NewReader("previous"))

				r = &failingReader{r: Generate(2, tt.size), n: tt.failAt, err: errBoom}
				_, err = b.Put(ctx, "new", r, tt.sizeArg())
				require.ErrorIs(t, err, errBoom)
				_, err = b.Stat(ctx, "new")
				require.ErrorIs(t, err, objectstore.ErrNotExist)

				require.Equal(t, []string{"key"}, listKeys(t, b, ""))
			})
		}
	})

	t.Run("CancelledPut", func(t *testing.T) {
		t.Parallel()
		for _, tt := range failCases() {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b, _ := setup(t)
				put(t, b, "key", "previous")

				for _, key := range []string{"key", "new"} {
					ctx, cancel := context.WithCancel(t.Context())
					// The reader keeps going after cancelling: only ctx can
					// stop the Put.
					r := &failingReader{r: Generate(3, tt.size), n: tt.failAt, cancel: cancel}
					_, err := b.Put(ctx, key, r, tt.sizeArg())
					require.ErrorIs(t, err, context.Canceled, key)
				}
				requireContent(t, b, "key", strings.NewReader("previous"))
				_, err := b.Stat(t.Context(), "new")
				require.ErrorIs(t, err, objectstore.ErrNotExist)

				// Cancelled before it starts.
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				_, err = b.Put(ctx, "key", strings.NewReader("never"), 5)
				require.ErrorIs(t, err, context.Canceled)

				require.Equal(t, []string{"key"}, listKeys(t, b, ""))
			})
		}
	})

	t.Run("WrongSize", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "key", "previous")

		for _, tt := range []struct {
			content string
			size    int64
		}{
			{"short", 10},
			{"longer than said", 5},
			{"x", 0},
			{"", 1},
		} {
			_, err := b.Put(ctx, "key", strings.NewReader(tt.content), tt.size)
			require.Error(t, err, "%q with size %d", tt.content, tt.size)
			_, err = b.Put(ctx, "new", strings.NewReader(tt.content), tt.size)
			require.Error(t, err, "%q with size %d", tt.content, tt.size)
		}
		_, err := b.Put(ctx, "key", strings.NewReader("x"), -2)
		require.Error(t, err)

		requireContent(t, b, "key", strings.NewReader("previous"))
		require.Equal(t, []string{"key"}, listKeys(t, b, ""))
	})

	t.Run("Keys", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		keys := []string{
			"deep/ly/nested/path/to/an/object.jsonl",
			"spaces in name.txt",
			"unicode/ファイル/файл-é-🙂",
			"url chars/a+b%20c?d=e&f#g",
			"x",
		}
		for _, k := range keys {
			info := put(t, b, k, k)
			require.Equal(t, k, info.Key)
		}
		for _, k := range keys {
			requireContent(t, b, k, strings.NewReader(k))
			stat, err := b.Stat(ctx, k)
			require.NoError(t, err)
			require.Equal(t, k, stat.Key)
		}
		require.Equal(t, keys, listKeys(t, b, ""))
		require.Equal(t, keys[2:3], listKeys(t, b, "unicode/ファ"))
		for _, k := range keys {
			require.NoError(t, b.Delete(ctx, k))
		}
		require.Empty(t, listKeys(t, b, ""))
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		for _, key := range []string{
			"", "/abs", "trailing/", "double//slash", ".", "..", "../escape",
			"a/../../escape", "a/./b", "nul\x00byte", "bad-utf8-\xff",
			strings.Repeat("k", objectstore.MaxKeyLength+1),
		} {
			_, err := b.Put(ctx, key, strings.NewReader("x"), 1)
			require.Error(t, err, "Put %q", key)
			_, err = b.Get(ctx, key)
			require.Error(t, err, "Get %q", key)
			require.NotErrorIs(t, err, objectstore.ErrNotExist, "Get %q", key)
			_, err = b.Stat(ctx, key)
			require.Error(t, err, "Stat %q", key)
			require.Error(t, b.Delete(ctx, key), "Delete %q", key)
		}
		require.Empty(t, listKeys(t, b, ""))
	})

	testPresign(t, setup)
	testCompose(t, setup)
	testComposeSources(t, setup)
	testMultipart(t, setup)
}

var errBoom = errors.New("objectstoretest: reader failed")

type failCase struct {
	name    string
	size    int64
	failAt  int64
	unknown bool
}

func (c failCase) sizeArg() int64 {
	if c.unknown {
		return -1
	}
	return c.size
}

// failCases fail early, in place of the EOF, and late enough in a large
// object that a multipart upload already has a part.
func failCases() []failCase {
	return []failCase{
		{"Small", 1000, 500, false},
		{"SmallUnknownSize", 1000, 500, true},
		{"AtEnd", 1000, 1000, false},
		{"AtEndUnknownSize", 1000, 1000, true},
		{"Large", LargeSize, 17 << 20, false},
		{"LargeUnknownSize", LargeSize, 17 << 20, true},
	}
}

// failingReader yields n bytes of r, then either returns err or, with cancel
// set, cancels and goes on yielding r.
type failingReader struct {
	r      io.Reader
	n      int64
	err    error
	cancel context.CancelFunc
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.cancel == nil {
			return 0, f.err
		}
		f.cancel()
		return f.r.Read(p)
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// Generate returns size deterministic pseudo-random bytes for seed, made as
// they are read.
func Generate(seed uint64, size int64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(key), size)
}

func put(t *testing.T, b objectstore.Bucket, key, content string) objectstore.Info {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(content), int64(len(content)))
	require.NoError(t, err, "Put %q", key)
	return info
}

func listKeys(t *testing.T, b objectstore.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, b.List(t.Context(), prefix, func(info objectstore.Info) error {
		keys = append(keys, info.Key)
		return nil
	}))
	return keys
}

// requireContent compares key's content with want, streaming both.
func requireContent(t *testing.T, b objectstore.Bucket, key string, want io.Reader) {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	require.NoError(t, err, "Get %q", key)
	defer rc.Close()
	require.NoError(t, sameContent(want, rc), "content of %q", key)
}

func sameContent(want, got io.Reader) error {
	wantBuf := make([]byte, 64<<10)
	gotBuf := make([]byte, 64<<10)
	var off int64
	for {
		wn, werr := io.ReadFull(want, wantBuf)
		gn, gerr := io.ReadFull(got, gotBuf)
		if werr != nil && werr != io.EOF && werr != io.ErrUnexpectedEOF {
			return werr
		}
		if gerr != nil && gerr != io.EOF && gerr != io.ErrUnexpectedEOF {
			return gerr
		}
		if i := mismatch(wantBuf[:wn], gotBuf[:gn]); i >= 0 {
			return fmt.Errorf("differs at byte %d (want %d bytes in this chunk, got %d)", off+int64(i), wn, gn)
		}
		off += int64(wn)
		if werr != nil { // both ended together
			return nil
		}
	}
}

// mismatch returns the first index where a and b differ, or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
