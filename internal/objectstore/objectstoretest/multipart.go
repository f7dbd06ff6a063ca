package objectstoretest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
)

func contentMD5(b []byte) http.Header {
	sum := md5.Sum(b)
	return http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(sum[:])}}
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func testMultipart(t *testing.T, setup func(t *testing.T) (objectstore.Bucket, context.Context)) {
	t.Run("Multipart", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const key = "assembled/file.jsonl"
		id, err := b.CreateMultipart(ctx, key)
		require.NoError(t, err)
		part1 := readAll(t, Generate(21, objectstore.MinMultipartPartSize+1))
		part2 := []byte("the short last part")

		u2, err := b.PresignPart(ctx, key, id, 2, time.Hour)
		require.NoError(t, err)
		u1, err := b.PresignPart(ctx, key, id, 1, time.Hour)
		require.NoError(t, err)

		// A wrong Content-MD5 is rejected and stores nothing.
		resp := doSized(t, http.MethodPut, u2, bytes.NewReader(part2), int64(len(part2)), contentMD5([]byte("other")))
		require.Equal(t, http.StatusBadRequest, resp.status, resp.body)
		require.Contains(t, resp.body, "BadDigest")
		_, err = b.CompleteMultipart(ctx, key, id, []int{1, 2}, 0)
		require.ErrorIs(t, err, objectstore.ErrNotExist)

		// Parts go up in any order, with their Content-MD5.
		// Each answers its part's ETag, S3's quoted MD5, which a browser's
		// S3 client reads (objectstore.CORSExposeHeaders).
		for _, p := range []struct {
			url  string
			data []byte
		}{{u2, part2}, {u1, part1}} {
			resp = doSized(t, http.MethodPut, p.url, bytes.NewReader(p.data), int64(len(p.data)), contentMD5(p.data))
			require.Equal(t, http.StatusOK, resp.status, resp.body)
			sum := md5.Sum(p.data)
			require.Equal(t, `"`+hex.EncodeToString(sum[:])+`"`, resp.header.Get("ETag"))
		}
		require.Empty(t, listKeys(t, b, ""), "parts are not objects")

		_, err = b.CompleteMultipart(ctx, key, id, []int{2, 1}, 0)
		require.Error(t, err, "parts must be 1..n in order")
		_, err = b.CompleteMultipart(ctx, key, id, []int{1, 2}, int64(min(len(part1), len(part2)))-1)
		require.ErrorIs(t, err, objectstore.ErrPartTooLarge)
		require.Empty(t, listKeys(t, b, ""), "a refused completion writes nothing")

		info, err := b.CompleteMultipart(ctx, key, id, []int{1, 2}, 0)
		require.NoError(t, err)
		require.Equal(t, key, info.Key)
		require.Equal(t, int64(len(part1)+len(part2)), info.Size)
		requireContent(t, b, key, io.MultiReader(bytes.NewReader(part1), bytes.NewReader(part2)))
		require.Equal(t, []string{key}, listKeys(t, b, ""))
	})

	t.Run("MultipartAbort", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const key = "aborted"
		id, err := b.CreateMultipart(ctx, key)
		require.NoError(t, err)
		u, err := b.PresignPart(ctx, key, id, 1, time.Hour)
		require.NoError(t, err)
		resp := do(t, http.MethodPut, u, bytes.NewReader([]byte("data")), nil)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.NoError(t, b.AbortMultipart(ctx, key, id))
		require.NoError(t, b.AbortMultipart(ctx, key, id), "aborting twice")
		_, err = b.CompleteMultipart(ctx, key, id, []int{1}, 0)
		require.Error(t, err)
		require.Empty(t, listKeys(t, b, ""))
		// A PUT after the abort stores nothing.
		resp = do(t, http.MethodPut, u, bytes.NewReader([]byte("late")), nil)
		require.NotEqual(t, http.StatusOK, resp.status, resp.body)
		require.Empty(t, listKeys(t, b, ""))
	})

	t.Run("MultipartSmallPart", func(t *testing.T) {
		t.Parallel()
		b, ctx := setup(t)
		const key = "small"
		id, err := b.CreateMultipart(ctx, key)
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.AbortMultipart(context.WithoutCancel(ctx), key, id) })
		for n, content := range []string{"small first part", "second"} {
			u, err := b.PresignPart(ctx, key, id, n+1, time.Hour)
			require.NoError(t, err)
			resp := do(t, http.MethodPut, u, bytes.NewReader([]byte(content)), nil)
			require.Equal(t, http.StatusOK, resp.status, resp.body)
		}
		// S3 refuses a small part but the last; a folder has no such rule.
		info, err := b.CompleteMultipart(ctx, key, id, []int{1, 2}, 0)
		if err != nil {
			require.ErrorIs(t, err, objectstore.ErrPartTooSmall)
			require.Empty(t, listKeys(t, b, ""))
			return
		}
		require.Equal(t, int64(len("small first partsecond")), info.Size)
		requireContent(t, b, key, bytes.NewReader([]byte("small first partsecond")))
	})
}
