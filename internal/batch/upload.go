package batch

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// An upload is a file sent in parts (OpenAI's Uploads API):
//
//	pending ─► completing ─► completed   (CompleteUpload; a failure goes back to pending)
//	   ├─► cancelled                     (CancelUpload)
//	   └─► expired                       (ExpireUpload, at expires_at)
//
// completing is kiln's own: a completion in progress, which a concurrent
// cancel cannot interrupt. Parts go through kiln (AddPart) or straight to
// object storage at presigned URLs (PresignParts), optionally as one
// multipart upload that completes in place.

// Upload limits.
const (
	MaxPartsPerUpload = 10_000
	// completingGrace is how long past its expiry an upload may stay
	// completing before the completion is taken for dead.
	completingGrace = 15 * time.Minute
)

// UploadParams are what a client asks of a new upload.
type UploadParams struct {
	Filename string
	Purpose  string
	Bytes    int64
	MimeType string
	// ExpiresAfter, when set, is when the upload's file expires; nil
	// leaves it to the retention of its purpose.
	ExpiresAfter *ExpiresAfter
}

// CreateUpload starts an upload, with its expiry job. It takes parts until
// the upload TTL has passed. The uploads in progress are capped, in
// number and in the bytes they declare (429 too_many_pending_uploads);
// the store counts them in the transaction that inserts the upload.
func (s *Service) CreateUpload(ctx context.Context, p UploadParams) (store.Upload, error) {
	if !slices.Contains(UploadPurposes, p.Purpose) {
		return store.Upload{}, apierror.Invalid("purpose", fmt.Sprintf("'%s' is not one of %s - 'purpose'", p.Purpose, strings.Join(UploadPurposes, ", ")))
	}
	if p.Bytes > s.limits.MaxFileBytes {
		return store.Upload{}, apierror.TooLarge("file_too_large", "bytes", fmt.Sprintf("The file is larger than the limit of %d bytes.", s.limits.MaxFileBytes))
	}
	if err := checkFilename("filename", p.Filename); err != nil {
		return store.Upload{}, err
	}
	if len(p.MimeType) > maxMimeTypeBytes {
		return store.Upload{}, apierror.Invalid("mime_type", fmt.Sprintf("The MIME type is %d bytes long; the most is %d.", len(p.MimeType), maxMimeTypeBytes))
	}
	if err := p.ExpiresAfter.check("expires_after"); err != nil {
		return store.Upload{}, err
	}
	now := s.now()
	u := store.Upload{ID: ids.New(ids.Upload), Filename: p.Filename, Purpose: p.Purpose, Bytes: p.Bytes, MimeType: p.MimeType, ProjectID: auth.Project(ctx),
		Status: store.UploadPending, CreatedAt: now.Unix(), ExpiresAt: now.Add(s.limits.UploadTTL).Unix(),
		FileExpiresAfter: p.ExpiresAfter.seconds()}
	caps := store.UploadCap{MaxPending: int64(s.limits.MaxPendingUploads), MaxPendingBytes: s.limits.MaxPendingUploadBytes}
	err := s.store.UploadCreateCapped(ctx, u, caps, uploadExpireJob(u.ID, now.Add(s.limits.UploadTTL)))
	var capped *store.UploadCapError
	switch {
	case errors.As(err, &capped):
		return store.Upload{}, tooManyPending(capped, u.Bytes)
	case err != nil:
		return store.Upload{}, err
	}
	return u, nil
}

// tooManyPending is the 429 of an upload past a cap on the uploads in
// progress, naming the cap.
func tooManyPending(e *store.UploadCapError, bytes int64) error {
	msg := fmt.Sprintf("There are %d uploads in progress, the most allowed at once.", e.Max)
	if e.Cap == store.UploadCapBytes {
		msg = fmt.Sprintf("The uploads in progress declare %d bytes; this one's %d would pass the limit of %d bytes for all of them.",
			e.Pending.Bytes, bytes, e.Max)
	}
	return apierror.New(http.StatusTooManyRequests, "too_many_pending_uploads", "",
		msg+" Complete or cancel an upload, or wait for one to expire, and try again.")
}

// AuthorizeObject says whether a presigned URL of the folder object store
// may still be used, as objectstore.HandlerOpts.Authorize: a PUT of an
// upload's part only while the upload is pending. A part put after its
// upload completed, was cancelled or expired, when its parts were removed,
// would be an object nothing removes. (S3's presigned URLs cannot be
// revoked: there the upload's multipart upload is aborted, so a PUT of a
// multipart part fails, and SweepObjects removes a plain part that
// arrives late.)
func (s *Service) AuthorizeObject(ctx context.Context, method, key string) error {
	uploadID, ok := uploadOfKey(key)
	if method != http.MethodPut || !ok {
		return nil
	}
	_, err := s.PendingUpload(ctx, uploadID)
	var refused *apierror.Error
	if errors.As(err, &refused) {
		return &objectstore.DeniedError{Reason: refused.Message}
	}
	return err
}

// GetUpload is an upload, or a 404.
func (s *Service) GetUpload(ctx context.Context, id string) (store.Upload, error) {
	u, err := s.store.UploadGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(ctx, u.ProjectID)) {
		return store.Upload{}, apierror.NotFound("upload", id)
	}
	return u, err
}

// uploadConflict is the 409 for an upload that does not take the request.
func uploadConflict(u store.Upload) error {
	status := u.Status
	if status == store.UploadCompleting {
		return apierror.Conflict("upload_completing", fmt.Sprintf("Upload %s is being completed.", u.ID))
	}
	if status == store.UploadPending {
		status = store.UploadExpired // pending past its expiry
	}
	return apierror.Conflict("upload_not_pending", fmt.Sprintf("Upload %s is %s; only a pending upload takes parts, completes or cancels.", u.ID, status))
}

// maxMimeTypeBytes bounds an upload's MIME type (RFC 6838 allows 127
// characters for each of its two names).
const maxMimeTypeBytes = 255

// transitionUpload moves an upload from one of from to to, mapping the
// store's errors.
func (s *Service) transitionUpload(ctx context.Context, id string, from []string, to string, notAfter int64) (store.Upload, error) {
	if _, err := s.GetUpload(ctx, id); err != nil {
		return store.Upload{}, err // another project's is none of the caller's
	}
	u, err := s.store.UploadTransition(ctx, id, from, to, notAfter)
	switch {
	case errors.Is(err, store.ErrConflict):
		return u, uploadConflict(u)
	case errors.Is(err, store.ErrNotFound):
		return u, apierror.NotFound("upload", id)
	}
	return u, err
}

// PendingUpload is an upload that still takes parts, or the error that says
// why it does not.
func (s *Service) PendingUpload(ctx context.Context, id string) (store.Upload, error) {
	u, err := s.GetUpload(ctx, id)
	if err != nil {
		return u, err
	}
	if u.Status != store.UploadPending || u.ExpiresAt <= s.now().Unix() {
		return u, uploadConflict(u)
	}
	return u, nil
}

// AddPart streams one part of a pending upload, at most the part size
// limit (413 part_too_large, naming param), into the object store.
func (s *Service) AddPart(ctx context.Context, uploadID string, r io.Reader, param string) (store.UploadPart, error) {
	u, err := s.PendingUpload(ctx, uploadID)
	if err != nil {
		return store.UploadPart{}, err
	}
	p := store.UploadPart{ID: ids.New(ids.Part), UploadID: u.ID, CreatedAt: s.now().Unix()}
	p.ObjectKey = UploadPartKey(u.ID, p.ID)
	p.Bytes, err = s.putLimited(ctx, p.ObjectKey, r, s.limits.MaxPartBytes, param, "part_too_large",
		fmt.Sprintf("A part is at most %d bytes.", s.limits.MaxPartBytes))
	if err != nil {
		return store.UploadPart{}, err
	}
	if err := s.store.UploadPartAdd(ctx, p, s.now().Unix()); err != nil {
		s.deleteObject(ctx, p.ObjectKey)
		if errors.Is(err, store.ErrConflict) {
			cur, _ := s.store.UploadGet(ctx, u.ID)
			return store.UploadPart{}, uploadConflict(cur)
		}
		return store.UploadPart{}, err
	}
	return p, nil
}

// PresignedPart is a part whose bytes the client PUTs at URL.
type PresignedPart struct {
	store.UploadPart
	URL string
	// ExpiresAt is when URL stops working, in Unix seconds.
	ExpiresAt int64
}

// presignExpiry is how long a part's URL may live: a part's URL must die
// before its upload does, since a PUT after the expiry job swept the
// upload's parts would leave an object that nothing removes. The folder
// store rounds a URL's expiry up to the next second, so it is whole
// seconds, one short.
func (s *Service) presignExpiry(u store.Upload) (time.Duration, int64, error) {
	expiry := time.Unix(u.ExpiresAt, 0).Sub(s.now()).Truncate(time.Second) - time.Second
	if expiry < time.Second {
		return 0, 0, apierror.Conflict("upload_not_pending", "The upload expires in less than 2 seconds, too soon to put a part; create a new upload.")
	}
	return expiry, s.now().Add(expiry + time.Second - 1).Unix(), nil // by then it has stopped
}

// PresignParts makes count parts of a pending upload whose bytes the
// client PUTs straight to object storage.
func (s *Service) PresignParts(ctx context.Context, uploadID string, count int) ([]PresignedPart, error) {
	u, err := s.PendingUpload(ctx, uploadID)
	if err != nil {
		return nil, err
	}
	var out []PresignedPart
	for range count {
		expiry, exp, err := s.presignExpiry(u)
		if err != nil {
			return nil, err
		}
		p := store.UploadPart{ID: ids.New(ids.Part), UploadID: u.ID, Bytes: -1, Presigned: true, CreatedAt: s.now().Unix()}
		p.ObjectKey = UploadPartKey(u.ID, p.ID)
		url, err := s.bucket.PresignPut(ctx, p.ObjectKey, expiry)
		if err != nil {
			return nil, fmt.Errorf("presign part: %w", err)
		}
		if err := s.store.UploadPartAdd(ctx, p, s.now().Unix()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				cur, _ := s.store.UploadGet(ctx, u.ID)
				return nil, uploadConflict(cur)
			}
			return nil, err
		}
		out = append(out, PresignedPart{UploadPart: p, URL: url, ExpiresAt: exp})
	}
	return out, nil
}

// PresignMultipartParts presigns count parts of the upload's multipart
// upload, made with the first of them, numbered on from the last. Such
// parts complete only all together, in order, and need no copy.
func (s *Service) PresignMultipartParts(ctx context.Context, uploadID string, count int) ([]PresignedPart, error) {
	u, err := s.PendingUpload(ctx, uploadID)
	if err != nil {
		return nil, err
	}
	expiry, exp, err := s.presignExpiry(u)
	if err != nil {
		return nil, err
	}
	file := NewFile(u.Purpose, u.Filename) // the file the multipart upload becomes
	file.ProjectID = u.ProjectID
	created := ""
	create := func() (string, error) {
		if created == "" {
			id, err := s.bucket.CreateMultipart(ctx, file.ObjectKey)
			if err != nil {
				return "", err
			}
			created = id
		}
		return created, nil
	}
	now := s.now().Unix()
	u, parts, err := s.store.UploadPresignParts(ctx, u.ID, count, MaxPartsPerUpload, now, file.ID, create, func(n int) store.UploadPart {
		p := store.UploadPart{ID: ids.New(ids.Part), Bytes: -1, PartNumber: n, CreatedAt: now}
		p.ObjectKey = UploadPartKey(uploadID, p.ID) // never written: the part lives in the multipart upload
		return p
	})
	if err != nil {
		if created != "" { // the transaction that would have kept it rolled back
			_ = s.bucket.AbortMultipart(context.WithoutCancel(ctx), file.ObjectKey, created)
		}
		switch {
		case errors.Is(err, store.ErrConflict):
			cur, _ := s.store.UploadGet(ctx, uploadID)
			return nil, uploadConflict(cur)
		case errors.Is(err, store.ErrTooManyParts):
			return nil, apierror.Invalid("count", fmt.Sprintf("An upload has at most %d multipart parts.", MaxPartsPerUpload))
		case errors.Is(err, store.ErrNotFound):
			return nil, apierror.NotFound("upload", uploadID)
		}
		return nil, err
	}
	key := FileKey(*u.MultipartFileID)
	out := make([]PresignedPart, 0, len(parts))
	for _, p := range parts {
		url, err := s.bucket.PresignPart(ctx, key, *u.MultipartID, p.PartNumber, expiry)
		if err != nil {
			return nil, fmt.Errorf("presign part: %w", err)
		}
		out = append(out, PresignedPart{UploadPart: p, URL: url, ExpiresAt: exp})
	}
	return out, nil
}

// CompleteParams are what completing an upload takes.
type CompleteParams struct {
	// PartIDs are the parts, in the order they make the file.
	PartIDs []string
	// MD5 is the file's MD5, in hex; checked when not empty.
	MD5 string
}

// CompleteUpload assembles the parts into a file server-side and checks
// its size and MD5. Whatever fails leaves the upload pending (the client
// may fix and retry) and no file or object.
func (s *Service) CompleteUpload(ctx context.Context, id string, p CompleteParams) (store.Upload, error) {
	u, err := s.transitionUpload(ctx, id, []string{store.UploadPending}, store.UploadCompleting, s.now().Unix())
	if err != nil {
		return u, err
	}
	f := NewFile(u.Purpose, u.Filename)
	f.ProjectID = u.ProjectID
	fail := func(e error) (store.Upload, error) {
		s.deleteObject(ctx, f.ObjectKey)
		if _, err := s.store.UploadTransition(context.WithoutCancel(ctx), id, []string{store.UploadCompleting}, store.UploadPending, 0); err != nil {
			s.log.WarnContext(ctx, "upload stuck completing", "upload", id, "err", err)
		}
		return u, e
	}
	parts, err := s.store.UploadParts(ctx, id)
	if err != nil {
		return fail(err)
	}
	byID := make(map[string]store.UploadPart, len(parts))
	for _, p := range parts {
		byID[p.ID] = p
	}
	if len(p.PartIDs) == 0 || len(p.PartIDs) > MaxPartsPerUpload {
		return fail(apierror.Invalid("part_ids", fmt.Sprintf("part_ids must list 1 to %d parts.", MaxPartsPerUpload)))
	}
	if u.MultipartID != nil {
		var mp []store.UploadPart
		for _, p := range parts {
			if p.PartNumber > 0 {
				mp = append(mp, p)
			}
		}
		slices.SortFunc(mp, func(a, b store.UploadPart) int { return a.PartNumber - b.PartNumber })
		listed := 0
		for i, pid := range p.PartIDs {
			if part, ok := byID[pid]; ok && part.PartNumber > 0 {
				listed++
				if i >= len(mp) || mp[i].ID != pid {
					listed = -1
					break
				}
			}
		}
		switch {
		case listed == len(p.PartIDs) && listed == len(mp):
			return s.completeMultipart(ctx, u, p, mp, fail)
		case listed != 0:
			return fail(apierror.Invalid("part_ids", "Multipart parts complete all together, in the order they were presigned, "+
				"and cannot be mixed with other parts."))
		}
	}
	seen := map[string]bool{}
	var keys []string
	var total int64
	for i, pid := range p.PartIDs {
		part, ok := byID[pid]
		if !ok {
			return fail(apierror.Invalid("part_ids", fmt.Sprintf("part_ids[%d]: %q is not a part of upload %s.", i, pid, id)))
		}
		if seen[pid] {
			return fail(apierror.Invalid("part_ids", fmt.Sprintf("part_ids[%d]: %q is listed twice.", i, pid)))
		}
		seen[pid] = true
		size := part.Bytes
		if part.Presigned {
			info, err := s.bucket.Stat(ctx, part.ObjectKey)
			if err != nil && !errors.Is(err, objectstore.ErrNotExist) {
				return fail(fmt.Errorf("stat part %s: %w", pid, err))
			}
			if err != nil {
				return fail(apierror.Invalid("part_ids", fmt.Sprintf("part_ids[%d]: part %q was never uploaded to its URL.", i, pid)))
			}
			size = info.Size
			if size > s.limits.MaxPartBytes {
				return fail(apierror.TooLarge("part_too_large", "part_ids",
					fmt.Sprintf("part_ids[%d]: part %q is %d bytes; a part is at most %d.", i, pid, size, s.limits.MaxPartBytes)))
			}
		}
		total += size
		keys = append(keys, part.ObjectKey)
	}
	if total != u.Bytes {
		return fail(apierror.Invalid("part_ids", fmt.Sprintf("The parts hold %d bytes; the upload was created for %d.", total, u.Bytes)))
	}
	info, err := s.bucket.Compose(ctx, f.ObjectKey, keys)
	if err != nil {
		return fail(fmt.Errorf("assemble upload %s: %w", id, err))
	}
	return s.finishUpload(ctx, u, p, f, info, fail)
}

// completeMultipart completes an upload whose part_ids are exactly its
// multipart parts, in order: the object store assembles them in place.
func (s *Service) completeMultipart(ctx context.Context, u store.Upload, p CompleteParams, parts []store.UploadPart,
	fail func(error) (store.Upload, error)) (store.Upload, error) {
	f := NewFile(u.Purpose, u.Filename)
	f.ProjectID = u.ProjectID
	f.ID, f.ObjectKey = *u.MultipartFileID, FileKey(*u.MultipartFileID)
	numbers := make([]int, len(parts))
	for i, part := range parts {
		numbers[i] = part.PartNumber
	}
	info, err := s.bucket.CompleteMultipart(ctx, f.ObjectKey, *u.MultipartID, numbers, s.limits.MaxPartBytes)
	switch {
	case errors.Is(err, objectstore.ErrPartTooLarge):
		return fail(apierror.TooLarge("part_too_large", "part_ids",
			fmt.Sprintf("A part is larger than %d bytes, the most a part may hold.", s.limits.MaxPartBytes)))
	case errors.Is(err, objectstore.ErrNotExist):
		return fail(apierror.Invalid("part_ids", "A part was never uploaded to its URL."))
	case errors.Is(err, objectstore.ErrPartTooSmall):
		return fail(apierror.Invalid("part_ids", fmt.Sprintf("Every multipart part but the last must be at least %d bytes.", objectstore.MinMultipartPartSize)))
	case err != nil:
		return fail(fmt.Errorf("assemble upload %s: %w", u.ID, err))
	}
	// The multipart upload is spent: whatever fails from here deletes the
	// object, and the upload takes new parts from part 1.
	failAfter := func(e error) (store.Upload, error) {
		s.deleteObject(ctx, f.ObjectKey)
		if err := s.store.UploadMultipartReset(context.WithoutCancel(ctx), u.ID); err != nil {
			s.log.WarnContext(ctx, "upload keeps a spent multipart upload", "upload", u.ID, "err", err)
		}
		return fail(e)
	}
	if info.Size != u.Bytes {
		return failAfter(apierror.Invalid("part_ids", fmt.Sprintf("The parts hold %d bytes; the upload was created for %d.", info.Size, u.Bytes)))
	}
	return s.finishUpload(ctx, u, p, f, info, failAfter)
}

// finishUpload checks the assembled file f and records it, completing the
// upload; fail undoes what went before.
func (s *Service) finishUpload(ctx context.Context, u store.Upload, p CompleteParams, f store.File, info objectstore.Info,
	fail func(error) (store.Upload, error)) (store.Upload, error) {
	id := u.ID
	f.Bytes = info.Size
	s.setExpiry(&f, u.FileExpiresAfter)
	if p.MD5 != "" {
		sum, err := s.md5Of(ctx, f.ObjectKey)
		if err != nil {
			return fail(err)
		}
		if !strings.EqualFold(sum, p.MD5) {
			return fail(apierror.Invalid("md5", fmt.Sprintf("The file's MD5 is %s, not %s.", sum, p.MD5)))
		}
	}
	if u.Purpose == PurposeBatch {
		if err := s.sniffJSONL(ctx, f.ObjectKey); err != nil {
			return fail(apierror.InvalidCode("", "invalid_file_format", "Invalid file format for Batch API. Must be .jsonl: "+err.Error()))
		}
	}
	u, err := s.store.UploadComplete(ctx, id, f)
	if err != nil {
		return fail(err)
	}
	if err := s.removeUploadParts(ctx, id); err != nil {
		s.log.WarnContext(ctx, "completed upload's parts remain", "upload", id, "err", err)
	}
	if u.MultipartFileID == nil || f.ID != *u.MultipartFileID {
		if err := s.abortUploadMultipart(ctx, u); err != nil {
			s.log.WarnContext(ctx, "completed upload's multipart upload remains", "upload", id, "err", err)
		}
	}
	return u, nil
}

// CancelUpload cancels a pending upload and removes its parts.
func (s *Service) CancelUpload(ctx context.Context, id string) (store.Upload, error) {
	u, err := s.transitionUpload(ctx, id, []string{store.UploadPending}, store.UploadCancelled, 0)
	if err != nil {
		return u, err
	}
	if err := s.removeUploadParts(ctx, u.ID); err != nil {
		s.log.WarnContext(ctx, "cancelled upload's parts remain; expiry removes them", "upload", u.ID, "err", err)
	}
	if err := s.abortUploadMultipart(ctx, u); err != nil {
		s.log.WarnContext(ctx, "cancelled upload's multipart upload remains", "upload", u.ID, "err", err)
	}
	return u, nil
}

// ErrCompleting is ExpireUpload on an upload whose completion is still
// running: try again in a moment.
var ErrCompleting = errors.New("batch: the upload is completing")

// ExpireUpload expires an abandoned upload at its expires_at and removes
// its parts. An upload completing right now gets a moment to finish
// (ErrCompleting); a completion that outlived completingGrace died with
// its process, and the upload expires after all.
func (s *Service) ExpireUpload(ctx context.Context, id string) error {
	u, err := s.store.UploadTransition(ctx, id, []string{store.UploadPending}, store.UploadExpired, 0)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case errors.Is(err, store.ErrConflict) && u.Status == store.UploadCompleting:
		if s.now().Sub(time.Unix(u.ExpiresAt, 0)) < completingGrace {
			return ErrCompleting
		}
		if _, err := s.store.UploadTransition(ctx, id, []string{store.UploadCompleting}, store.UploadExpired, 0); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		s.log.WarnContext(ctx, "upload expired in the middle of a completion that never ended", "upload", id)
	case errors.Is(err, store.ErrConflict):
		// Completed or cancelled: its parts are gone already, or go now.
	case err != nil:
		return err
	default:
		s.log.InfoContext(ctx, "upload expired", "upload", id)
	}
	if u.ID == "" {
		if u, err = s.store.UploadGet(ctx, id); err != nil {
			return err
		}
	}
	return errors.Join(s.removeUploadParts(ctx, id), s.abortUploadMultipart(ctx, u))
}

// abortUploadMultipart discards the upload's multipart upload, if it has
// one: its presigned parts. After its completion, it does nothing.
func (s *Service) abortUploadMultipart(ctx context.Context, u store.Upload) error {
	if u.MultipartID == nil || u.MultipartFileID == nil {
		return nil
	}
	return s.bucket.AbortMultipart(ctx, FileKey(*u.MultipartFileID), *u.MultipartID)
}

// removeUploadParts deletes every object under the upload's prefix: the
// parts it recorded and any a client put at a presigned URL.
func (s *Service) removeUploadParts(ctx context.Context, uploadID string) error {
	var keys []string
	err := s.bucket.List(ctx, UploadPrefix(uploadID), func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list parts of %s: %w", uploadID, err)
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, s.bucket.Delete(ctx, k))
	}
	return errors.Join(errs...)
}

func (s *Service) md5Of(ctx context.Context, key string) (string, error) {
	rc, err := s.bucket.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := md5.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sniffJSONL checks that an assembled batch file looks like JSONL, as a
// plain upload does: its first non-blank line is a JSON object.
func (s *Service) sniffJSONL(ctx context.Context, key string) error {
	rc, err := s.bucket.GetRange(ctx, key, 0, int64(s.limits.MaxLineBytes)+2)
	if err != nil {
		return err
	}
	defer rc.Close()
	sn := &jsonlSniffer{max: s.limits.MaxLineBytes}
	if _, err := io.Copy(sn, bufio.NewReader(rc)); err != nil {
		return err
	}
	return sn.verdict()
}
