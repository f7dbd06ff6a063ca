package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

func testUploads(t *testing.T, setup setupFunc) {
	// newUpload creates a pending upload that expires in an hour.
	newUpload := func(t *testing.T, tb *testBundle, jobs ...store.Job) store.Upload {
		t.Helper()
		now := time.Now().Unix()
		u := store.Upload{ID: ids.New(ids.Upload), Filename: "in.jsonl", Purpose: "batch", Bytes: 10, MimeType: "application/jsonl",
			Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600}
		require.NoError(t, tb.st.UploadCreate(tb.ctx, u, jobs...))
		return u
	}
	part := func(u store.Upload, bytes int64) store.UploadPart {
		return store.UploadPart{ID: ids.New(ids.Part), UploadID: u.ID, ObjectKey: "parts/" + u.ID, Bytes: bytes, CreatedAt: time.Now().Unix()}
	}

	t.Run("Statuses", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		pending, cancelled := newUpload(t, tb), newUpload(t, tb)
		_, err := tb.st.UploadTransition(tb.ctx, cancelled.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
		require.NoError(t, err)
		got, err := tb.st.UploadStatuses(tb.ctx, []string{pending.ID, cancelled.ID, "upload_never"})
		require.NoError(t, err)
		require.Equal(t, map[string]string{pending.ID: store.UploadPending, cancelled.ID: store.UploadCancelled}, got)
	})

	t.Run("Cap", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		upload := func(bytes int64) store.Upload {
			return store.Upload{ID: ids.New(ids.Upload), Filename: "f", Purpose: "batch", Bytes: bytes, MimeType: "text/plain",
				Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600}
		}
		totals := func() store.UploadsPending {
			t.Helper()
			p, err := tb.st.UploadPendingTotals(tb.ctx, now)
			require.NoError(t, err)
			return p
		}
		require.Equal(t, store.UploadsPending{}, totals())

		caps := store.UploadCap{MaxPending: 3, MaxPendingBytes: 100}
		a, b := upload(40), upload(50)
		require.NoError(t, tb.st.UploadCreateCapped(tb.ctx, a, caps, noopJob("expire")))
		require.NoError(t, tb.st.UploadCreateCapped(tb.ctx, b, caps))
		require.Equal(t, store.UploadsPending{Count: 2, Bytes: 90}, totals())

		var capErr *store.UploadCapError
		tooBig := upload(11)
		require.ErrorAs(t, tb.st.UploadCreateCapped(tb.ctx, tooBig, caps), &capErr)
		require.Equal(t, store.UploadCapError{Cap: store.UploadCapBytes, Max: 100, Pending: store.UploadsPending{Count: 2, Bytes: 90}}, *capErr)
		_, err := tb.st.UploadGet(tb.ctx, tooBig.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "a refused upload is not written")
		require.NoError(t, tb.st.UploadCreateCapped(tb.ctx, upload(10), caps), "exactly at the cap")
		require.ErrorAs(t, tb.st.UploadCreateCapped(tb.ctx, upload(0), caps), &capErr)
		require.Equal(t, store.UploadCapCount, capErr.Cap)
		require.EqualValues(t, 3, capErr.Max)

		// A completing upload still counts; a completed, cancelled or
		// expired one, or one pending past its expiry, does not.
		_, err = tb.st.UploadTransition(tb.ctx, a.ID, []string{store.UploadPending}, store.UploadCompleting, now)
		require.NoError(t, err)
		require.Equal(t, store.UploadsPending{Count: 3, Bytes: 100}, totals())
		_, err = tb.st.UploadTransition(tb.ctx, b.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
		require.NoError(t, err)
		require.Equal(t, store.UploadsPending{Count: 2, Bytes: 50}, totals())
		p, err := tb.st.UploadPendingTotals(tb.ctx, now+3600)
		require.NoError(t, err)
		require.Equal(t, store.UploadsPending{Count: 1, Bytes: 40}, p, "past their expiry, only the completing one counts")

		// No cap, no bound.
		require.NoError(t, tb.st.UploadCreateCapped(tb.ctx, upload(1<<40), store.UploadCap{}))
	})

	t.Run("CapConcurrent", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		now := time.Now().Unix()
		const tries, limit = 24, 5
		caps := store.UploadCap{MaxPending: limit}
		errs := make(chan error, tries)
		start := make(chan struct{})
		for range tries {
			go func() {
				<-start
				errs <- tb.st.UploadCreateCapped(tb.ctx, store.Upload{ID: ids.New(ids.Upload), Filename: "f", Purpose: "batch", Bytes: 1,
					MimeType: "text/plain", Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600}, caps)
			}()
		}
		close(start)
		created := 0
		for range tries {
			err := <-errs
			var capErr *store.UploadCapError
			if err != nil {
				require.ErrorAs(t, err, &capErr)
				continue
			}
			created++
		}
		require.Equal(t, limit, created, "concurrent creates take no more than the cap's places")
		p, err := tb.st.UploadPendingTotals(tb.ctx, now)
		require.NoError(t, err)
		require.EqualValues(t, limit, p.Count)
	})

	t.Run("PartsAndComplete", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		u := newUpload(t, tb, noopJob("expire"))
		require.Equal(t, []string{"expire"}, w.wait(t, 1))
		got, err := tb.st.UploadGet(tb.ctx, u.ID)
		require.NoError(t, err)
		u.ProjectID = store.DefaultProject // made without one
		require.Equal(t, u, got)

		now := time.Now().Unix()
		p1, p2 := part(u, 4), part(u, 6)
		require.NoError(t, tb.st.UploadPartAdd(tb.ctx, p1, now))
		require.NoError(t, tb.st.UploadPartAdd(tb.ctx, p2, now))
		parts, err := tb.st.UploadParts(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, []store.UploadPart{p1, p2}, parts)

		got, err = tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCompleting, now)
		require.NoError(t, err)
		require.Equal(t, store.UploadCompleting, got.Status)
		require.ErrorIs(t, tb.st.UploadPartAdd(tb.ctx, part(u, 1), now), store.ErrConflict, "parts only go to a pending upload")
		_, err = tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
		require.ErrorIs(t, err, store.ErrConflict, "a completion in progress cannot be cancelled")

		f := store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "in.jsonl", Bytes: 10, ObjectKey: "files/in", Status: store.FileProcessed, CreatedAt: now}
		got, err = tb.st.UploadComplete(tb.ctx, u.ID, f)
		require.NoError(t, err)
		require.Equal(t, store.UploadCompleted, got.Status)
		require.Equal(t, f.ID, *got.FileID)
		stored, err := tb.st.UploadGet(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, got, stored)
		gotFile, err := tb.st.FileGet(tb.ctx, f.ID)
		require.NoError(t, err)
		want := f
		want.ProjectID = store.DefaultProject // the upload's
		require.Equal(t, want, gotFile)
		_, err = tb.st.UploadComplete(tb.ctx, u.ID, store.File{ID: ids.New(ids.File)})
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.UploadComplete(tb.ctx, "upload_nope", f)
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("Expiry", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		u := newUpload(t, tb)
		require.ErrorIs(t, tb.st.UploadPartAdd(tb.ctx, part(u, 1), u.ExpiresAt), store.ErrConflict, "past its expiry")
		_, err := tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCompleting, u.ExpiresAt)
		require.ErrorIs(t, err, store.ErrConflict)
		// Without a time, the expiry does not matter: the expirer moves it.
		got, err := tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending, store.UploadCompleting}, store.UploadExpired, 0)
		require.NoError(t, err)
		require.Equal(t, store.UploadExpired, got.Status)
		_, err = tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = tb.st.UploadTransition(tb.ctx, "upload_nope", []string{store.UploadPending}, store.UploadCancelled, 0)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.UploadGet(tb.ctx, "upload_nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tb.st.UploadPartAdd(tb.ctx, store.UploadPart{ID: ids.New(ids.Part), UploadID: "upload_nope"}, 0), store.ErrNotFound)
	})

	t.Run("PresignParts", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		u := newUpload(t, tb)
		now := time.Now().Unix()
		sent := part(u, 5) // a part sent through kiln
		require.NoError(t, tb.st.UploadPartAdd(tb.ctx, sent, now))
		creates := 0
		create := func() (string, error) {
			creates++
			return fmt.Sprintf("mpu-%d", creates), nil
		}
		newPart := func(n int) store.UploadPart {
			return store.UploadPart{ID: ids.New(ids.Part), ObjectKey: fmt.Sprintf("mpu/%d", n), Bytes: -1, PartNumber: n, CreatedAt: now}
		}
		presign := func(count int) (store.Upload, []int, error) {
			got, parts, err := tb.st.UploadPresignParts(tb.ctx, u.ID, count, 5, now, "file-mp", create, newPart)
			var numbers []int
			for _, p := range parts {
				require.Equal(t, u.ID, p.UploadID)
				require.True(t, p.Presigned)
				numbers = append(numbers, p.PartNumber)
			}
			return got, numbers, err
		}

		got, numbers, err := presign(2)
		require.NoError(t, err)
		require.Equal(t, []int{1, 2}, numbers)
		require.Equal(t, "mpu-1", *got.MultipartID)
		require.Equal(t, "file-mp", *got.MultipartFileID)
		got, numbers, err = presign(3)
		require.NoError(t, err)
		require.Equal(t, []int{3, 4, 5}, numbers, "numbered on from the last")
		require.Equal(t, "mpu-1", *got.MultipartID)
		require.Equal(t, 1, creates, "one multipart upload per upload")
		_, _, err = presign(1)
		require.ErrorIs(t, err, store.ErrTooManyParts)
		stored, err := tb.st.UploadGet(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, "mpu-1", *stored.MultipartID)
		parts, err := tb.st.UploadParts(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Len(t, parts, 6)
		require.Equal(t, sent, parts[0])
		require.True(t, parts[5].Presigned)
		require.Equal(t, 5, parts[5].PartNumber)
		require.EqualValues(t, -1, parts[5].Bytes)

		// Once the object store lost the multipart upload, the next
		// presigned part starts another, from 1; parts sent through kiln
		// stay.
		require.NoError(t, tb.st.UploadMultipartReset(tb.ctx, u.ID))
		stored, err = tb.st.UploadGet(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Nil(t, stored.MultipartID)
		require.Nil(t, stored.MultipartFileID)
		parts, err = tb.st.UploadParts(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, []store.UploadPart{sent}, parts)
		got, numbers, err = presign(1)
		require.NoError(t, err)
		require.Equal(t, []int{1}, numbers)
		require.Equal(t, "mpu-2", *got.MultipartID)

		// A failure to create the multipart upload records nothing.
		require.NoError(t, tb.st.UploadMultipartReset(tb.ctx, u.ID))
		boom := errors.New("boom")
		_, _, err = tb.st.UploadPresignParts(tb.ctx, u.ID, 1, 5, now, "file-mp", func() (string, error) { return "", boom }, newPart)
		require.ErrorIs(t, err, boom)
		parts, err = tb.st.UploadParts(tb.ctx, u.ID)
		require.NoError(t, err)
		require.Len(t, parts, 1)

		// Only a pending upload is presigned.
		_, err = tb.st.UploadTransition(tb.ctx, u.ID, []string{store.UploadPending}, store.UploadCancelled, 0)
		require.NoError(t, err)
		_, _, err = presign(1)
		require.ErrorIs(t, err, store.ErrConflict)
		_, _, err = tb.st.UploadPresignParts(tb.ctx, "upload_nope", 1, 5, now, "file-mp", create, newPart)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
