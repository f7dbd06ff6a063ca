package api

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/jobs"
)

// Upload is OpenAI's Upload object.
type Upload struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"upload"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status" enum:"pending,completed,cancelled,expired"`
	ExpiresAt int64  `json:"expires_at"`
	File      *File  `json:"file"`
}

// UploadPart is OpenAI's UploadPart object, with kiln's presigned-URL
// extension fields.
type UploadPart struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"upload.part"`
	CreatedAt int64  `json:"created_at"`
	UploadID  string `json:"upload_id"`
	// URL and ExpiresAt are set for presigned parts (kiln extension).
	URL       *string `json:"url,omitempty" doc:"kiln extension: PUT the part's bytes here, straight to object storage."`
	Method    *string `json:"method,omitempty" doc:"kiln extension: the HTTP method for url (PUT)."`
	ExpiresAt *int64  `json:"expires_at,omitempty" doc:"kiln extension: when url stops working."`
	// PartNumber is set for multipart presigned parts (kiln extension).
	PartNumber *int `json:"part_number,omitempty" doc:"kiln extension: the part's number in the upload's multipart upload, for parts presigned with multipart."`
}

// Upload limits.
const (
	maxPartsPerUpload = 10_000
	maxPresignBatch   = 1_000
)

// uploadPurposes are the purposes an upload may have (OpenAI's).
var uploadCreatePurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

type uploadCreateInput struct {
	Body struct {
		_            struct{} `additionalProperties:"true"`
		Bytes        int64    `json:"bytes" minimum:"1" doc:"The file's size in bytes."`
		Filename     string   `json:"filename" minLength:"1"`
		MimeType     string   `json:"mime_type" minLength:"1"`
		Purpose      string   `json:"purpose"`
		ExpiresAfter *struct {
			Anchor  string `json:"anchor"`
			Seconds int64  `json:"seconds"`
		} `json:"expires_after,omitempty" doc:"Accepted for compatibility; kiln keeps files until they are deleted."`
	}
}

type uploadIDInput struct {
	UploadID string `path:"upload_id"`
}

type uploadOutput struct{ Body Upload }

type partAddInput struct {
	UploadID    string `path:"upload_id"`
	ContentType string `header:"Content-Type"`
	body        io.Reader
}

// Resolve takes the raw body so the part streams: Huma never reads it.
func (i *partAddInput) Resolve(ctx huma.Context) []error {
	i.body = ctx.BodyReader()
	return nil
}

type presignInput struct {
	UploadID string `path:"upload_id"`
	Body     struct {
		Count     int  `json:"count" minimum:"1" maximum:"1000" doc:"How many part URLs to make."`
		Multipart bool `json:"multipart,omitempty" doc:"kiln extension: make the parts parts of one multipart upload in object storage, numbered on from the last call's, so that completing needs no copy. Such parts complete only all together, in the order presigned; on S3 every part but the last must be at least 5 MiB. A PUT may send Content-MD5, which object storage checks."`
	}
}

// PresignedParts is the answer of the presign extension.
type PresignedParts struct {
	Object string       `json:"object" enum:"list"`
	Data   []UploadPart `json:"data"`
}

type completeInput struct {
	UploadID string `path:"upload_id"`
	Body     struct {
		_       struct{} `additionalProperties:"true"`
		PartIDs []string `json:"part_ids" doc:"The parts, in the order they make the file."`
		MD5     *string  `json:"md5,omitempty" doc:"The file's MD5, hex; checked when given."`
	}
}

func (d Deps) uploadOf(ctx context.Context, u store.Upload) (Upload, error) {
	out := Upload{ID: u.ID, Object: "upload", Bytes: u.Bytes, CreatedAt: u.CreatedAt, Filename: u.Filename,
		Purpose: u.Purpose, Status: u.Status, ExpiresAt: u.ExpiresAt}
	if u.Status == store.UploadCompleting {
		out.Status = store.UploadPending
	}
	if u.FileID != nil {
		f, err := d.Store.FileGet(ctx, *u.FileID)
		if err == nil {
			ff := fileOf(f)
			out.File = &ff
		} else if !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
	}
	return out, nil
}

func registerUploads(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "createUpload", Method: http.MethodPost, Path: "/v1/uploads",
		Summary: "Create an upload", Tags: []string{"Uploads"},
		Description: "Starts an upload of a large file in parts. It expires, with its parts, after the configured time (1 hour by default).",
	}, func(ctx context.Context, in *uploadCreateInput) (*uploadOutput, error) {
		b := in.Body
		if !contains(uploadCreatePurposes, b.Purpose) {
			return nil, badRequest("purpose", fmt.Sprintf("'%s' is not one of %s - 'purpose'", b.Purpose, strings.Join(uploadCreatePurposes, ", ")))
		}
		if b.Bytes > d.MaxFileBytes {
			return nil, newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "file_too_large", "bytes",
				fmt.Sprintf("The file is larger than the limit of %d bytes.", d.MaxFileBytes))
		}
		now := time.Now()
		u := store.Upload{ID: ids.New(ids.Upload), Filename: b.Filename, Purpose: b.Purpose, Bytes: b.Bytes, MimeType: b.MimeType,
			Status: store.UploadPending, CreatedAt: now.Unix(), ExpiresAt: now.Add(d.UploadTTL).Unix()}
		if err := d.Store.UploadCreate(ctx, u, jobs.UploadExpireJob(u.ID, now.Add(d.UploadTTL))); err != nil {
			return nil, internal(ctx, d.Log, err)
		}
		out, err := d.uploadOf(ctx, u)
		if err != nil {
			return nil, internal(ctx, d.Log, err)
		}
		return &uploadOutput{Body: out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "addUploadPart", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/parts",
		Summary: "Add an upload part", Tags: []string{"Uploads"},
		Description: "Multipart field `data`: one part of up to 64 MB (configurable), streamed to object storage.",
	}, func(ctx context.Context, in *partAddInput) (*struct{ Body UploadPart }, error) {
		p, err := addPart(ctx, d, in)
		if err != nil {
			return nil, err
		}
		return &struct{ Body UploadPart }{p}, nil
	})
	api.OpenAPI().Paths["/v1/uploads/{upload_id}/parts"].Post.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"multipart/form-data": {Schema: &huma.Schema{Type: "object", Required: []string{"data"},
			Properties: map[string]*huma.Schema{"data": {Type: "string", Format: "binary", Description: "The part's bytes."}}}},
	}}

	huma.Register(api, huma.Operation{
		OperationID: "presignUploadParts", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/parts/presigned",
		Summary: "Presign upload parts (kiln extension)", Tags: []string{"Uploads"},
		Description: "Makes `count` parts whose bytes the client PUTs straight to object storage at the returned URLs, " +
			"then completes the upload with their IDs as usual. URLs expire with the upload.",
	}, func(ctx context.Context, in *presignInput) (*struct{ Body PresignedParts }, error) {
		presign := presignParts
		if in.Body.Multipart {
			presign = presignMultipartParts
		}
		out, err := presign(ctx, d, in.UploadID, in.Body.Count)
		if err != nil {
			return nil, err
		}
		return &struct{ Body PresignedParts }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "completeUpload", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/complete",
		Summary: "Complete an upload", Tags: []string{"Uploads"},
		Description: "Assembles the parts, in the order given, into a file server-side, and checks the size and the optional md5.",
	}, func(ctx context.Context, in *completeInput) (*uploadOutput, error) {
		u, err := completeUpload(ctx, d, in)
		if err != nil {
			return nil, err
		}
		out, err := d.uploadOf(ctx, u)
		if err != nil {
			return nil, internal(ctx, d.Log, err)
		}
		return &uploadOutput{Body: out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "cancelUpload", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/cancel",
		Summary: "Cancel an upload", Tags: []string{"Uploads"},
	}, func(ctx context.Context, in *uploadIDInput) (*uploadOutput, error) {
		u, err := d.Store.UploadTransition(ctx, in.UploadID, []string{store.UploadPending}, store.UploadCancelled, 0)
		if errors.Is(err, store.ErrConflict) {
			return nil, uploadConflict(u)
		}
		if err != nil {
			return nil, storeError(ctx, d.Log, "upload", in.UploadID, err)
		}
		if err := jobs.RemoveUploadParts(ctx, d.Store, d.Bucket, u.ID); err != nil {
			d.Log.WarnContext(ctx, "cancelled upload's parts remain; expiry removes them", "upload", u.ID, "err", err)
		}
		if err := jobs.AbortUploadMultipart(ctx, d.Bucket, u); err != nil {
			d.Log.WarnContext(ctx, "cancelled upload's multipart upload remains", "upload", u.ID, "err", err)
		}
		out, err := d.uploadOf(ctx, u)
		if err != nil {
			return nil, internal(ctx, d.Log, err)
		}
		return &uploadOutput{Body: out}, nil
	})
}

func uploadConflict(u store.Upload) *Error {
	status := u.Status
	if status == store.UploadCompleting {
		return newError(http.StatusConflict, typeInvalidRequest, "upload_completing", "", "The upload is being completed.")
	}
	if status == store.UploadPending {
		status = "expired" // pending past its expiry
	}
	return newError(http.StatusConflict, typeInvalidRequest, "upload_not_pending", "",
		fmt.Sprintf("The upload is %s; only a pending upload takes parts, completes or cancels.", status))
}

// pendingUpload fetches an upload that still takes parts.
func pendingUpload(ctx context.Context, d Deps, id string) (store.Upload, error) {
	u, err := d.Store.UploadGet(ctx, id)
	if err != nil {
		return u, storeError(ctx, d.Log, "upload", id, err)
	}
	if u.Status != store.UploadPending || u.ExpiresAt <= time.Now().Unix() {
		return u, uploadConflict(u)
	}
	return u, nil
}

func addPart(ctx context.Context, d Deps, in *partAddInput) (UploadPart, error) {
	u, err := pendingUpload(ctx, d, in.UploadID)
	if err != nil {
		return UploadPart{}, err
	}
	mt, params, err := mime.ParseMediaType(in.ContentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return UploadPart{}, badRequest("", "The request must be multipart/form-data with a boundary.")
	}
	mr := multipart.NewReader(in.body, params["boundary"])
	p := store.UploadPart{ID: ids.New(ids.Part), UploadID: u.ID, CreatedAt: time.Now().Unix()}
	p.ObjectKey = jobs.UploadPartKey(u.ID, p.ID)
	stored := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if stored {
				_ = d.Bucket.Delete(context.WithoutCancel(ctx), p.ObjectKey)
			}
			return UploadPart{}, badRequest("", "Malformed multipart body: "+err.Error())
		}
		if part.FormName() != "data" || stored {
			_, _ = io.Copy(io.Discard, part)
			continue
		}
		lr := &limitReader{r: part, left: d.MaxPartBytes}
		info, err := d.Bucket.Put(ctx, p.ObjectKey, lr, -1)
		if err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				return UploadPart{}, newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "part_too_large", "data",
					fmt.Sprintf("A part is at most %d bytes.", d.MaxPartBytes))
			case lr.srcErr != nil:
				return UploadPart{}, badRequest("data", "Malformed multipart body: "+lr.srcErr.Error())
			}
			return UploadPart{}, storeError(ctx, d.Log, "upload", u.ID, err)
		}
		stored, p.Bytes = true, info.Size
	}
	if !stored {
		return UploadPart{}, badRequest("data", "Missing required parameter: 'data'.")
	}
	if err := d.Store.UploadPartAdd(ctx, p, time.Now().Unix()); err != nil {
		_ = d.Bucket.Delete(context.WithoutCancel(ctx), p.ObjectKey)
		if errors.Is(err, store.ErrConflict) {
			cur, _ := d.Store.UploadGet(ctx, u.ID)
			return UploadPart{}, uploadConflict(cur)
		}
		return UploadPart{}, internal(ctx, d.Log, err)
	}
	return UploadPart{ID: p.ID, Object: "upload.part", CreatedAt: p.CreatedAt, UploadID: u.ID}, nil
}

func presignParts(ctx context.Context, d Deps, uploadID string, count int) (PresignedParts, error) {
	u, err := pendingUpload(ctx, d, uploadID)
	if err != nil {
		return PresignedParts{}, err
	}
	out := PresignedParts{Object: "list"}
	method := http.MethodPut
	for range count {
		// A part's URL must die before its upload does: a PUT after the
		// expiry job swept the upload's parts would leave an object that
		// nothing removes. The folder store rounds a URL's expiry up to the
		// next second, so ask for whole seconds, one short.
		expiry := time.Until(time.Unix(u.ExpiresAt, 0)).Truncate(time.Second) - time.Second
		if expiry < time.Second {
			return PresignedParts{}, newError(http.StatusConflict, typeInvalidRequest, "upload_not_pending", "",
				"The upload expires in less than 2 seconds, too soon to put a part; create a new upload.")
		}
		p := store.UploadPart{ID: ids.New(ids.Part), UploadID: u.ID, Bytes: -1, Presigned: true, CreatedAt: time.Now().Unix()}
		p.ObjectKey = jobs.UploadPartKey(u.ID, p.ID)
		exp := time.Now().Add(expiry + time.Second - 1).Unix() // by then it has stopped
		url, err := d.Bucket.PresignPut(ctx, p.ObjectKey, expiry)
		if err != nil {
			return PresignedParts{}, internal(ctx, d.Log, fmt.Errorf("presign part: %w", err))
		}
		if err := d.Store.UploadPartAdd(ctx, p, time.Now().Unix()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				cur, _ := d.Store.UploadGet(ctx, u.ID)
				return PresignedParts{}, uploadConflict(cur)
			}
			return PresignedParts{}, internal(ctx, d.Log, err)
		}
		out.Data = append(out.Data, UploadPart{ID: p.ID, Object: "upload.part", CreatedAt: p.CreatedAt, UploadID: u.ID,
			URL: &url, Method: &method, ExpiresAt: &exp})
	}
	return out, nil
}

// presignMultipartParts presigns count parts of the upload's multipart
// upload, made with the first of them, numbered on from the last.
func presignMultipartParts(ctx context.Context, d Deps, uploadID string, count int) (PresignedParts, error) {
	u, err := pendingUpload(ctx, d, uploadID)
	if err != nil {
		return PresignedParts{}, err
	}
	// As in presignParts: whole seconds, one short of the upload's expiry.
	expiry := time.Until(time.Unix(u.ExpiresAt, 0)).Truncate(time.Second) - time.Second
	if expiry < time.Second {
		return PresignedParts{}, newError(http.StatusConflict, typeInvalidRequest, "upload_not_pending", "",
			"The upload expires in less than 2 seconds, too soon to put a part; create a new upload.")
	}
	exp := time.Now().Add(expiry + time.Second - 1).Unix()
	fileID := ids.New(ids.File)
	created := ""
	create := func() (string, error) {
		if created == "" {
			id, err := d.Bucket.CreateMultipart(ctx, jobs.FileKey(fileID))
			if err != nil {
				return "", err
			}
			created = id
		}
		return created, nil
	}
	now := time.Now().Unix()
	u, parts, err := d.Store.UploadPresignParts(ctx, u.ID, count, maxPartsPerUpload, now, fileID, create, func(n int) store.UploadPart {
		p := store.UploadPart{ID: ids.New(ids.Part), Bytes: -1, PartNumber: n, CreatedAt: now}
		p.ObjectKey = jobs.UploadPartKey(uploadID, p.ID) // never written: the part lives in the multipart upload
		return p
	})
	if err != nil {
		if created != "" { // the transaction that would have kept it rolled back
			_ = d.Bucket.AbortMultipart(context.WithoutCancel(ctx), jobs.FileKey(fileID), created)
		}
		switch {
		case errors.Is(err, store.ErrConflict):
			cur, _ := d.Store.UploadGet(ctx, uploadID)
			return PresignedParts{}, uploadConflict(cur)
		case errors.Is(err, store.ErrTooManyParts):
			return PresignedParts{}, badRequest("count", fmt.Sprintf("An upload has at most %d multipart parts.", maxPartsPerUpload))
		}
		return PresignedParts{}, storeError(ctx, d.Log, "upload", uploadID, err)
	}
	key := jobs.FileKey(*u.MultipartFileID)
	out := PresignedParts{Object: "list"}
	method := http.MethodPut
	for _, p := range parts {
		url, err := d.Bucket.PresignPart(ctx, key, *u.MultipartID, p.PartNumber, expiry)
		if err != nil {
			return PresignedParts{}, internal(ctx, d.Log, fmt.Errorf("presign part: %w", err))
		}
		n := p.PartNumber
		out.Data = append(out.Data, UploadPart{ID: p.ID, Object: "upload.part", CreatedAt: p.CreatedAt, UploadID: u.ID,
			URL: &url, Method: &method, ExpiresAt: &exp, PartNumber: &n})
	}
	return out, nil
}

// completeMultipart completes an upload whose part_ids are exactly its
// multipart parts, in order: the object store assembles them in place.
func completeMultipart(ctx context.Context, d Deps, u store.Upload, in *completeInput, parts []store.UploadPart,
	fail func(error) (store.Upload, error)) (store.Upload, error) {
	f := store.File{ID: *u.MultipartFileID, Purpose: u.Purpose, Filename: u.Filename, Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
	f.ObjectKey = jobs.FileKey(f.ID)
	numbers := make([]int, len(parts))
	for i, p := range parts {
		numbers[i] = p.PartNumber
	}
	info, err := d.Bucket.CompleteMultipart(ctx, f.ObjectKey, *u.MultipartID, numbers, d.MaxPartBytes)
	switch {
	case errors.Is(err, objectstore.ErrPartTooLarge):
		return fail(newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "part_too_large", "part_ids",
			fmt.Sprintf("A part is larger than %d bytes, the most a part may hold.", d.MaxPartBytes)))
	case errors.Is(err, objectstore.ErrNotExist):
		return fail(badRequest("part_ids", "A part was never uploaded to its URL."))
	case errors.Is(err, objectstore.ErrPartTooSmall):
		return fail(badRequest("part_ids", fmt.Sprintf("Every multipart part but the last must be at least %d bytes.", objectstore.MinMultipartPartSize)))
	case err != nil:
		return fail(internal(ctx, d.Log, fmt.Errorf("assemble upload %s: %w", u.ID, err)))
	}
	// The multipart upload is spent: whatever fails from here deletes the
	// object, and the upload takes new parts from part 1.
	failAfter := func(e error) (store.Upload, error) {
		_ = d.Bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		if err := d.Store.UploadMultipartReset(context.WithoutCancel(ctx), u.ID); err != nil {
			d.Log.WarnContext(ctx, "upload keeps a spent multipart upload", "upload", u.ID, "err", err)
		}
		return fail(e)
	}
	if info.Size != u.Bytes {
		return failAfter(badRequest("part_ids", fmt.Sprintf("The parts hold %d bytes; the upload was created for %d.", info.Size, u.Bytes)))
	}
	return finishUpload(ctx, d, u, in, f, info, failAfter)
}

// completeUpload assembles the parts into a file. Whatever fails leaves the
// upload pending (the client may fix and retry) and no file or object.
func completeUpload(ctx context.Context, d Deps, in *completeInput) (store.Upload, error) {
	id := in.UploadID
	u, err := d.Store.UploadTransition(ctx, id, []string{store.UploadPending}, store.UploadCompleting, time.Now().Unix())
	if errors.Is(err, store.ErrConflict) {
		return u, uploadConflict(u)
	}
	if err != nil {
		return u, storeError(ctx, d.Log, "upload", id, err)
	}
	f := store.File{ID: ids.New(ids.File), Purpose: u.Purpose, Filename: u.Filename, Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
	f.ObjectKey = jobs.FileKey(f.ID)
	fail := func(e error) (store.Upload, error) {
		_ = d.Bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		if _, err := d.Store.UploadTransition(context.WithoutCancel(ctx), id, []string{store.UploadCompleting}, store.UploadPending, 0); err != nil {
			d.Log.WarnContext(ctx, "upload stuck completing", "upload", id, "err", err)
		}
		return u, e
	}
	parts, err := d.Store.UploadParts(ctx, id)
	if err != nil {
		return fail(internal(ctx, d.Log, err))
	}
	byID := make(map[string]store.UploadPart, len(parts))
	for _, p := range parts {
		byID[p.ID] = p
	}
	if len(in.Body.PartIDs) == 0 || len(in.Body.PartIDs) > maxPartsPerUpload {
		return fail(badRequest("part_ids", fmt.Sprintf("part_ids must list 1 to %d parts.", maxPartsPerUpload)))
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
		for i, pid := range in.Body.PartIDs {
			if p, ok := byID[pid]; ok && p.PartNumber > 0 {
				listed++
				if i >= len(mp) || mp[i].ID != pid {
					listed = -1
					break
				}
			}
		}
		switch {
		case listed == len(in.Body.PartIDs) && listed == len(mp):
			return completeMultipart(ctx, d, u, in, mp, fail)
		case listed != 0:
			return fail(badRequest("part_ids", "Multipart parts complete all together, in the order they were presigned, "+
				"and cannot be mixed with other parts."))
		}
	}
	seen := map[string]bool{}
	var keys []string
	var total int64
	for i, pid := range in.Body.PartIDs {
		p, ok := byID[pid]
		if !ok {
			return fail(badRequest("part_ids", fmt.Sprintf("part_ids[%d]: %q is not a part of upload %s.", i, pid, id)))
		}
		if seen[pid] {
			return fail(badRequest("part_ids", fmt.Sprintf("part_ids[%d]: %q is listed twice.", i, pid)))
		}
		seen[pid] = true
		size := p.Bytes
		if p.Presigned {
			info, err := d.Bucket.Stat(ctx, p.ObjectKey)
			if err != nil && !errors.Is(err, objectstore.ErrNotExist) {
				return fail(internal(ctx, d.Log, fmt.Errorf("stat part %s: %w", pid, err)))
			}
			if err != nil {
				return fail(badRequest("part_ids", fmt.Sprintf("part_ids[%d]: part %q was never uploaded to its URL.", i, pid)))
			}
			size = info.Size
			if size > d.MaxPartBytes {
				return fail(newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "part_too_large", "part_ids",
					fmt.Sprintf("part_ids[%d]: part %q is %d bytes; a part is at most %d.", i, pid, size, d.MaxPartBytes)))
			}
		}
		total += size
		keys = append(keys, p.ObjectKey)
	}
	if total != u.Bytes {
		return fail(badRequest("part_ids", fmt.Sprintf("The parts hold %d bytes; the upload was created for %d.", total, u.Bytes)))
	}
	info, err := d.Bucket.Compose(ctx, f.ObjectKey, keys)
	if err != nil {
		return fail(internal(ctx, d.Log, fmt.Errorf("assemble upload %s: %w", id, err)))
	}
	return finishUpload(ctx, d, u, in, f, info, fail)
}

// finishUpload checks the assembled file f and records it, completing the
// upload; fail undoes what went before.
func finishUpload(ctx context.Context, d Deps, u store.Upload, in *completeInput, f store.File, info objectstore.Info,
	fail func(error) (store.Upload, error)) (store.Upload, error) {
	id := u.ID
	f.Bytes = info.Size
	if in.Body.MD5 != nil && *in.Body.MD5 != "" {
		sum, err := md5Of(ctx, d, f.ObjectKey)
		if err != nil {
			return fail(internal(ctx, d.Log, err))
		}
		if !strings.EqualFold(sum, *in.Body.MD5) {
			return fail(badRequest("md5", fmt.Sprintf("The file's MD5 is %s, not %s.", sum, *in.Body.MD5)))
		}
	}
	if u.Purpose == "batch" {
		if err := sniffJSONL(ctx, d, f.ObjectKey); err != nil {
			return fail(newError(http.StatusBadRequest, typeInvalidRequest, "invalid_file_format", "",
				"Invalid file format for Batch API. Must be .jsonl: "+err.Error()))
		}
	}
	u, err := d.Store.UploadComplete(ctx, id, f)
	if err != nil {
		return fail(internal(ctx, d.Log, err))
	}
	if err := jobs.RemoveUploadParts(ctx, d.Store, d.Bucket, id); err != nil {
		d.Log.WarnContext(ctx, "completed upload's parts remain", "upload", id, "err", err)
	}
	if f.ID != derefOr(u.MultipartFileID) {
		if err := jobs.AbortUploadMultipart(ctx, d.Bucket, u); err != nil {
			d.Log.WarnContext(ctx, "completed upload's multipart upload remains", "upload", id, "err", err)
		}
	}
	return u, nil
}

func md5Of(ctx context.Context, d Deps, key string) (string, error) {
	rc, err := d.Bucket.Get(ctx, key)
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

// sniffJSONL checks that an assembled batch file looks like JSONL, as the
// plain upload does: its first non-blank line is a JSON object.
func sniffJSONL(ctx context.Context, d Deps, key string) error {
	rc, err := d.Bucket.GetRange(ctx, key, 0, int64(d.MaxLineBytes)+2)
	if err != nil {
		return err
	}
	defer rc.Close()
	s := &jsonlSniffer{max: d.MaxLineBytes}
	if _, err := io.Copy(s, bufio.NewReader(rc)); err != nil {
		return err
	}
	return s.verdict()
}

func derefOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
