package objectstoretest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

func testCompose(t *testing.T, setup func(t *testing.T) (objectstore.Bucket, context.Context)) {
	t.Run("Compose", func(t *testing.T) {
		t.Parallel()
		// S3 copies sources of 5 MiB or more server-side and streams
		// smaller ones; these cover each way and their mixes.
		for _, tt := range []struct {
			name  string
			sizes []int64
		}{
			{"BigAndSmall", []int64{6 * mib, 1 * kib, 6 * mib, 10}},
			{"SmallBetweenBig", []int64{6 * mib, 1 * kib, 11 * mib, 10}},
			{"AllBig", []int64{5 * mib, 5 * mib, 3}},
			{"AllSmall", []int64{100, 0, 1 * kib, 1}},
			{"OneBig", []int64{5 * mib}},
			{"OneSmall", []int64{10}},
			{"AllEmpty", []int64{0, 0}},
			{"None", nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b, ctx := setup(t)
				srcs := putSources(t, b, "src/", tt.sizes)
				var total int64
				for _, size := range tt.sizes {
					total += size
				}

				info, err := b.Compose(ctx, "out/composed", srcs)
				require.NoError(t, err)
				require.Equal(t, "out/composed", info.Key)
				require.Equal(t, total, info.Size)
				require.NotEmpty(t, info.ETag)
				require.False(t, info.ModTime.IsZero())

				stat, err := b.Stat(ctx, "out/composed")
				require.NoError(t, err)
				require.Equal(t, total, stat.Size)
				require.Equal(t, info.ETag, stat.ETag)
				requireContent(t, b, "out/composed", sourcesContent(tt.sizes))

				// The sources are left in place.
				for i, key := range srcs {
					requireContent(t, b, key, Generate(sourceSeed(i), tt.sizes[i]))
				}
			})
		}
	})

	t.Run("ComposeOverwrite", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "a", "first ")
		put(t, b, "b", "second")
		prev := put(t, b, "dst", "the previous, longer content")

		info, err := b.Compose(ctx, "dst", []string{"a", "b"})
		require.NoError(t, err)
		require.NotEqual(t, prev.ETag, info.ETag)
		requireContent(t, b, "dst", strings.NewReader("first second"))

		// dst may be one of the sources, even twice.
		_, err = b.Compose(ctx, "a", []string{"a", "b", "a"})
		require.NoError(t, err)
		requireContent(t, b, "a", strings.NewReader("first secondfirst "))
		require.Equal(t, []string{"a", "b", "dst"}, listKeys(t, b, ""))
	})

	t.Run("ComposeMissing", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "a", "x")
		put(t, b, "dir/child", "y")
		putSources(t, b, "big/", []int64{6 * mib})
		put(t, b, "dst", "previous")

		for _, srcs := range [][]string{
			{"missing"},
			{"a", "missing"},
			{"missing", "a"},
			{"big/0", "a", "missing"},
			{"a", "big/0", "missing", "big/0"},
			{"dir"}, // holds another key but is no object
		} {
			_, err := b.Compose(ctx, "dst", srcs)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "%q", srcs)
			_, err = b.Compose(ctx, "new", srcs)
			require.ErrorIs(t, err, objectstore.ErrNotExist, "%q", srcs)
		}
		requireContent(t, b, "dst", strings.NewReader("previous"))
		_, err := b.Stat(ctx, "new")
		require.ErrorIs(t, err, objectstore.ErrNotExist)
		require.Equal(t, []string{"a", "big/0", "dir/child", "dst"}, listKeys(t, b, ""))
	})

	t.Run("ComposeInvalidKeys", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		put(t, b, "a", "x")
		for _, tt := range []struct {
			dst  string
			srcs []string
		}{
			{"", []string{"a"}},
			{"bad//dst", []string{"a"}},
			{"../escape", []string{"a"}},
			{"dst", []string{"a", "../escape"}},
			{"dst", []string{"a", ""}},
			{"dst", []string{"bad-utf8-\xff"}},
		} {
			_, err := b.Compose(ctx, tt.dst, tt.srcs)
			require.Error(t, err, "%q from %q", tt.dst, tt.srcs)
			require.NotErrorIs(t, err, objectstore.ErrNotExist, "%q from %q", tt.dst, tt.srcs)
		}
		require.Equal(t, []string{"a"}, listKeys(t, b, ""))
	})

	t.Run("ComposeCancelled", func(t *testing.T) {
		t.Parallel()
		b, _ := setup(t)
		srcs := putSources(t, b, "src/", []int64{6 * mib, 10})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := b.Compose(ctx, "dst", srcs)
		require.ErrorIs(t, err, context.Canceled)
		_, err = b.Stat(t.Context(), "dst")
		require.ErrorIs(t, err, objectstore.ErrNotExist)
	})
}

func testComposeSources(t *testing.T, setup func(t *testing.T) (objectstore.Bucket, context.Context)) {
	t.Run("ComposeSources", func(t *testing.T) {
		t.Parallel()
		// Many small sources, as a batch's chunks are, some of them over
		// what S3 fetches ahead, with a few big ones copied server-side;
		// sizes given, unknown, or both.
		var sizes []int64
		for i := range 120 {
			sizes = append(sizes, int64(1+(i*7919)%(300*kib)))
		}
		sizes = append(sizes, 6*mib, 10, 0, 5*mib, 3)
		for _, tt := range []struct {
			name  string
			given func(i int) bool
		}{
			{"Known", func(int) bool { return true }},
			{"Unknown", func(int) bool { return false }},
			{"Mixed", func(i int) bool { return i%3 != 0 }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b, ctx := setup(t)
				keys := putSources(t, b, "src/", sizes)
				srcs := make([]objectstore.Source, len(keys))
				var total int64
				for i, key := range keys {
					srcs[i] = objectstore.Source{Key: key, Size: -1}
					if tt.given(i) {
						srcs[i].Size = sizes[i]
					}
					total += sizes[i]
				}
				// The same source twice, and dst among them.
				srcs = append(srcs, srcs[1], objectstore.Source{Key: "out/composed", Size: -1})
				put(t, b, "out/composed", "previous")
				want := io.MultiReader(sourcesContent(sizes), Generate(sourceSeed(1), sizes[1]), strings.NewReader("previous"))

				info, err := b.ComposeSources(ctx, "out/composed", srcs)
				require.NoError(t, err)
				require.Equal(t, total+sizes[1]+8, info.Size)
				stat, err := b.Stat(ctx, "out/composed")
				require.NoError(t, err)
				require.Equal(t, info.Size, stat.Size)
				requireContent(t, b, "out/composed", want)
			})
		}
	})

	t.Run("ComposeSourcesSizeMismatch", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		keys := putSources(t, b, "src/", []int64{100, 6 * mib, 1 * kib})
		put(t, b, "dst", "previous")
		src := func(key string, size int64) objectstore.Source { return objectstore.Source{Key: key, Size: size} }
		for _, tt := range []struct {
			name string
			srcs []objectstore.Source
		}{
			{"SmallShorter", []objectstore.Source{src(keys[0], 99), src(keys[2], -1)}},
			{"SmallLonger", []objectstore.Source{src(keys[0], 101), src(keys[2], -1)}},
			{"SmallLast", []objectstore.Source{src(keys[0], -1), src(keys[2], 1*kib+1)}},
			{"SmallPastEnd", []objectstore.Source{src(keys[0], 100), src(keys[2], 5*kib)}},
			{"SmallEmpty", []objectstore.Source{src(keys[0], 0), src(keys[2], -1)}},
			{"BigShorter", []objectstore.Source{src(keys[0], -1), src(keys[1], 6*mib-1)}},
			{"BigLonger", []objectstore.Source{src(keys[1], 6*mib+1), src(keys[0], 100)}},
			{"TwiceDifferent", []objectstore.Source{src(keys[0], 100), src(keys[0], 99)}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := b.ComposeSources(ctx, "dst", tt.srcs)
				require.ErrorIs(t, err, objectstore.ErrSizeMismatch)
				requireContent(t, b, "dst", strings.NewReader("previous"))
			})
		}
		_, err := b.ComposeSources(ctx, "dst", []objectstore.Source{src(keys[0], 100), src("missing", 10)})
		require.ErrorIs(t, err, objectstore.ErrNotExist)
		_, err = b.ComposeSources(ctx, "dst", []objectstore.Source{src(keys[0], -2)})
		require.Error(t, err)
		requireContent(t, b, "dst", strings.NewReader("previous"))
		require.Equal(t, []string{"dst", "src/0", "src/1", "src/2"}, listKeys(t, b, ""))
	})
}

// MemorySize is how many bytes RunMemory moves through each operation.
const MemorySize = 27*mib + 10

// RunMemory checks that Compose and presigned transfers do not hold memory
// in proportion to the object: it counts what the whole process allocates
// while each runs. Call it from a top-level test that does not call
// t.Parallel, so that no other test allocates meanwhile.
func RunMemory(t *testing.T, newBucket func(t *testing.T) objectstore.Bucket) {
	t.Helper()
	b := newBucket(t)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	ctx := t.Context()

	// All smaller than S3's 5 MiB part minimum but one, which is not big
	// enough to copy after them: S3 has to stream them all through kiln.
	sizes := []int64{3 * mib, 3 * mib, 3 * mib, 3 * mib, 3 * mib, 3 * mib, 3 * mib, 6 * mib, 10}
	srcs := putSources(t, b, "src/", sizes)

	// Well under the size; a buffered source or part would exceed it.
	const limit = MemorySize / 4
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		n := after.TotalAlloc - before.TotalAlloc
		t.Logf("allocated %d KiB", n>>10)
		return n
	}

	n := allocated(func() {
		info, err := b.Compose(ctx, "composed", srcs)
		require.NoError(t, err)
		require.Equal(t, int64(MemorySize), info.Size)
	})
	require.Less(t, n, uint64(limit), "Compose of %d bytes allocated %d", MemorySize, n)
	requireContent(t, b, "composed", sourcesContent(sizes))

	putURL, err := b.PresignPut(ctx, "uploaded", time.Hour)
	require.NoError(t, err)
	n = allocated(func() {
		resp := doSized(t, http.MethodPut, putURL, sourcesContent(sizes), MemorySize, nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
	})
	require.Less(t, n, uint64(limit), "presigned PUT of %d bytes allocated %d", MemorySize, n)
	requireContent(t, b, "uploaded", sourcesContent(sizes))

	getURL, err := b.PresignGet(ctx, "uploaded", time.Hour, "uploaded.jsonl")
	require.NoError(t, err)
	n = allocated(func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, getURL, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, sameContent(sourcesContent(sizes), resp.Body))
	})
	// sameContent's own two 64 KiB buffers count too.
	require.Less(t, n, uint64(limit), "presigned GET of %d bytes allocated %d", MemorySize, n)
}

func sourceSeed(i int) uint64 { return uint64(10 + i) }

// putSources puts one object of each size under prefix, named by its index,
// with the content of Generate(sourceSeed(i), size), and returns their keys.
func putSources(t *testing.T, b objectstore.Bucket, prefix string, sizes []int64) []string {
	t.Helper()
	keys := make([]string, len(sizes))
	for i, size := range sizes {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
		_, err := b.Put(t.Context(), keys[i], Generate(sourceSeed(i), size), size)
		require.NoError(t, err, "Put %q", keys[i])
	}
	return keys
}

// sourcesContent is what composing the objects of putSources gives.
func sourcesContent(sizes []int64) io.Reader {
	rs := make([]io.Reader, len(sizes))
	for i, size := range sizes {
		rs[i] = Generate(sourceSeed(i), size)
	}
	return io.MultiReader(rs...)
}
