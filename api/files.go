package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/store"
)

// File is OpenAI's File object.
type File struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"file"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt *int64 `json:"expires_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status" enum:"uploaded,processed,error" doc:"Deprecated by OpenAI; always processed."`
}

// ExpiresAfter is OpenAI's FileExpirationAfter and BatchFileExpirationAfter:
// a file expires Seconds after its Anchor. The domain checks it, so that a
// multipart upload's fields get the same answers.
type ExpiresAfter struct {
	Anchor  string `json:"anchor" doc:"The time the delay counts from: created_at, the file's creation." example:"created_at"`
	Seconds int64  `json:"seconds" doc:"Seconds after the anchor when the file expires, 3600 (1 hour) to 2592000 (30 days)." example:"86400"`
}

// policy is the domain's form of e; nil is none.
func (e *ExpiresAfter) policy() *batch.ExpiresAfter {
	if e == nil {
		return nil
	}
	return &batch.ExpiresAfter{Anchor: e.Anchor, Seconds: e.Seconds}
}

func fileOf(f store.File) File {
	return File{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt, ExpiresAt: f.ExpiresAt,
		Filename: f.Filename, Purpose: f.Purpose, Status: f.Status}
}

type fileUploadInput struct {
	ContentType string `header:"Content-Type"`
	body        io.Reader
}

// Resolve takes the raw body so the upload streams: Huma never reads it.
func (i *fileUploadInput) Resolve(ctx huma.Context) []error {
	i.body = ctx.BodyReader()
	return nil
}

type fileOutput struct{ Body File }

type fileListInput struct {
	Purpose string `query:"purpose" doc:"Only files with this purpose."`
	Limit   int    `query:"limit" minimum:"1" maximum:"10000" default:"10000" doc:"How many files to return."`
	Order   string `query:"order" enum:"asc,desc" default:"desc" doc:"Sort by created_at."`
	After   string `query:"after" doc:"A file ID: list the files after it."`
}

// FileList is OpenAI's ListFilesResponse.
type FileList struct {
	Object  string `json:"object" enum:"list"`
	Data    []File `json:"data"`
	FirstID string `json:"first_id"`
	LastID  string `json:"last_id"`
	HasMore bool   `json:"has_more"`
}

type fileIDInput struct {
	FileID string `path:"file_id" doc:"The file's ID."`
}

// FileDeleted is OpenAI's DeleteFileResponse.
type FileDeleted struct {
	ID      string `json:"id"`
	Object  string `json:"object" enum:"file"`
	Deleted bool   `json:"deleted"`
}

type fileListOutput struct{ Body FileList }

type fileDeletedOutput struct{ Body FileDeleted }

// The bounds of expires_after.seconds, for the document.
var expiresAfterMin, expiresAfterMax float64 = batch.ExpiresAfterMinSeconds, batch.ExpiresAfterMaxSeconds

func registerFiles(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "createFile",
		Method:      http.MethodPost,
		Path:        "/v1/files",
		Summary:     "Upload a file",
		Description: "Multipart upload with fields `purpose` and `file`. The file streams to object storage and is never held whole in memory. " +
			"Files for purpose `batch` must be JSONL. Files larger than the configured limit get 413. " +
			"With `expires_after[anchor]=created_at` and `expires_after[seconds]` (3600 to 2592000) the file is deleted that long after its creation; " +
			"without, the server's retention for its purpose (KILN_FILE_RETENTION) applies, if any.",
		Tags: []string{"Files"},
	}, d.createFile)
	// The request body is documented after registration: declared before,
	// Huma would read the whole body into memory instead of letting the
	// handler stream it.
	api.OpenAPI().Paths["/v1/files"].Post.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"multipart/form-data": {Schema: &huma.Schema{
			Type:     "object",
			Required: []string{"file", "purpose"},
			Properties: map[string]*huma.Schema{
				"file":    {Type: "string", Format: "binary", Description: "The file."},
				"purpose": {Type: "string", Enum: anySlice(batch.UploadPurposes), Description: "What the file is for."},
				"expires_after": {Type: "object", Description: "When the file expires, sent as the fields expires_after[anchor] and expires_after[seconds].",
					Required: []string{"anchor", "seconds"},
					Properties: map[string]*huma.Schema{
						"anchor":  {Type: "string", Enum: []any{batch.AnchorCreatedAt}, Description: "The time the delay counts from: the file's created_at."},
						"seconds": {Type: "integer", Format: "int64", Minimum: &expiresAfterMin, Maximum: &expiresAfterMax, Description: "Seconds after the anchor when the file expires."},
					}},
			},
		}},
	}}

	huma.Register(api, huma.Operation{
		OperationID: "listFiles", Method: http.MethodGet, Path: "/v1/files",
		Summary: "List files", Tags: []string{"Files"},
	}, d.listFiles)

	huma.Register(api, huma.Operation{
		OperationID: "retrieveFile", Method: http.MethodGet, Path: "/v1/files/{file_id}",
		Summary: "Retrieve a file", Tags: []string{"Files"},
	}, d.retrieveFile)

	huma.Register(api, huma.Operation{
		OperationID: "deleteFile", Method: http.MethodDelete, Path: "/v1/files/{file_id}",
		Summary: "Delete a file", Tags: []string{"Files"},
	}, d.deleteFile)

	huma.Register(api, huma.Operation{
		OperationID: "downloadFile", Method: http.MethodGet, Path: "/v1/files/{file_id}/content",
		Summary: "Retrieve file content", Tags: []string{"Files"},
		Description: "Streams the file's bytes, honouring a single HTTP Range. kiln extension: with `redirect=true` " +
			"(or KILN_DOWNLOAD_REDIRECT=true for every download) it answers 307 to a presigned URL of the object store instead.",
		Responses: map[string]*huma.Response{
			"200": {Description: "The file's bytes.", Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
			"206": {Description: "The requested range of the file's bytes."},
			"307": {Description: "kiln extension: the file at a presigned URL."},
		},
	}, d.downloadFile)
}

func (d Deps) createFile(ctx context.Context, in *fileUploadInput) (*fileOutput, error) {
	f, err := upload(ctx, d, in)
	if err != nil {
		return nil, err
	}
	return &fileOutput{Body: fileOf(f)}, nil
}

func (d Deps) listFiles(ctx context.Context, in *fileListInput) (*fileListOutput, error) {
	files, more, err := d.Store.FileList(ctx, store.FileListParams{Project: auth.Project(ctx), Purpose: in.Purpose, After: in.After, Limit: in.Limit, Asc: in.Order == "asc"})
	if err != nil {
		return nil, err
	}
	out := FileList{Object: "list", Data: make([]File, len(files)), HasMore: more}
	for i, f := range files {
		out.Data[i] = fileOf(f)
	}
	if len(files) > 0 {
		out.FirstID, out.LastID = files[0].ID, files[len(files)-1].ID
	}
	return &fileListOutput{Body: out}, nil
}

func (d Deps) retrieveFile(ctx context.Context, in *fileIDInput) (*fileOutput, error) {
	f, err := d.Batches.GetFile(ctx, in.FileID)
	if err != nil {
		return nil, err
	}
	return &fileOutput{Body: fileOf(f)}, nil
}

func (d Deps) deleteFile(ctx context.Context, in *fileIDInput) (*fileDeletedOutput, error) {
	f, err := d.Batches.DeleteFile(ctx, in.FileID)
	if err != nil {
		return nil, err
	}
	return &fileDeletedOutput{Body: FileDeleted{ID: f.ID, Object: "file", Deleted: true}}, nil
}

func (d Deps) downloadFile(ctx context.Context, in *fileContentInput) (*huma.StreamResponse, error) {
	f, err := d.Batches.GetFile(ctx, in.FileID)
	if err != nil {
		return nil, err
	}
	if redirect := in.Redirect || d.DownloadRedirect; redirect && in.Range == "" {
		url, err := d.Bucket.PresignGet(ctx, f.ObjectKey, downloadURLTTL, f.Filename)
		if err == nil {
			return redirectTo(url), nil
		}
		if in.Redirect {
			return nil, fmt.Errorf("presign download: %w", err)
		}
		// Configured, but this store cannot presign: stream instead.
	}
	return d.streamFile(ctx, f, in.Range)
}

// redirectTo answers 307 to url.
func redirectTo(url string) *huma.StreamResponse {
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Location", url)
		hctx.SetStatus(http.StatusTemporaryRedirect)
	}}
}

// streamFile answers the bytes of f that the Range header rng asks for:
// all of them when it is empty.
func (d Deps) streamFile(ctx context.Context, f store.File, rng string) (*huma.StreamResponse, error) {
	start, length, ok := parseRange(rng, f.Bytes)
	if !ok {
		return nil, apierror.New(http.StatusRequestedRangeNotSatisfiable, "invalid_range", "Range", fmt.Sprintf("Range %q does not fit a file of %d bytes; use one range, bytes=first-last.", rng, f.Bytes))
	}
	rc, err := d.Bucket.GetRange(ctx, f.ObjectKey, start, length)
	if err != nil {
		return nil, notFoundOr(err, "file", f.ID)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer rc.Close()
		hctx.SetHeader("Content-Type", "application/octet-stream")
		hctx.SetHeader("Accept-Ranges", "bytes")
		hctx.SetHeader("Content-Length", strconv.FormatInt(length, 10))
		hctx.SetHeader("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Filename}))
		if rng != "" {
			hctx.SetHeader("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, f.Bytes))
			hctx.SetStatus(http.StatusPartialContent)
		}
		if _, err := io.Copy(hctx.BodyWriter(), rc); err != nil {
			d.Log.WarnContext(ctx, "download cut short", "file", f.ID, "err", err)
		}
	}}, nil
}

// downloadURLTTL is how long a download's presigned URL works.
const downloadURLTTL = 15 * time.Minute

type fileContentInput struct {
	FileID   string `path:"file_id" doc:"The file's ID."`
	Range    string `header:"Range" doc:"One byte range, as bytes=first-last, bytes=first- or bytes=-suffix."`
	Redirect bool   `query:"redirect" doc:"kiln extension: answer 307 to a presigned URL of the object store."`
}

// parseRange reads one HTTP byte range of a size-byte file. An empty header
// is the whole file.
func parseRange(h string, size int64) (start, length int64, ok bool) {
	if h == "" {
		return 0, size, true
	}
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, size > 0
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 || a >= size {
		return 0, 0, false
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, 0, false
		}
		b = min(b, size-1)
	}
	return a, b - a + 1, true
}

// upload streams a multipart upload into the object store. Whatever fails,
// no object and no row is left behind.
func upload(ctx context.Context, d Deps, in *fileUploadInput) (store.File, error) {
	var draft *batch.Draft
	var expires *batch.ExpiresAfter
	purpose := ""
	field := func(part *multipart.Part, param string) (string, error) {
		b, err := io.ReadAll(io.LimitReader(part, 256))
		if err != nil {
			return "", apierror.BodyError(param, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	err := eachFormPart(in.ContentType, in.body, func(part *multipart.Part) error {
		switch name := part.FormName(); name {
		case "purpose":
			var err error
			purpose, err = field(part, "purpose")
			return err
		case "expires_after[anchor]", "expires_after.anchor":
			v, err := field(part, "expires_after.anchor")
			if err != nil {
				return err
			}
			expires = cmp.Or(expires, &batch.ExpiresAfter{})
			expires.Anchor = v
		case "expires_after[seconds]", "expires_after.seconds":
			v, err := field(part, "expires_after.seconds")
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return apierror.InvalidCode("expires_after.seconds", "invalid_type",
					fmt.Sprintf("Invalid 'expires_after.seconds': expected an integer, but got '%s' instead.", v))
			}
			expires = cmp.Or(expires, &batch.ExpiresAfter{})
			expires.Seconds = n
		case "file":
			if draft != nil {
				return apierror.Invalid("file", "Only one file may be uploaded per request.")
			}
			var err error
			draft, err = d.Batches.PutFile(ctx, part.FileName(), part, "file")
			return err
		}
		return nil // unknown fields are ignored, as OpenAI does
	})
	if err != nil {
		if draft != nil {
			draft.Discard(ctx)
		}
		return store.File{}, err
	}
	if draft == nil {
		return store.File{}, apierror.Invalid("file", "Missing required parameter: 'file'.")
	}
	return draft.Commit(ctx, purpose, expires)
}

// eachFormPart calls fn with each part of a multipart/form-data body, in
// order, and skips what fn leaves unread.
func eachFormPart(contentType string, body io.Reader, fn func(*multipart.Part) error) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return apierror.Invalid("", "The request must be multipart/form-data with a boundary.")
	}
	src := &sourceErr{r: body}
	mr := multipart.NewReader(src, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return apierror.BodyError("", src.or(err))
		}
		if err := fn(part); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return apierror.BodyError("", src.or(err))
		}
	}
}

// sourceErr remembers the first error of the body itself. The multipart
// parser can turn a body that broke off mid-line into a malformed header
// (bufio's ReadLine hands back the partial line and drops the error), and
// then the body's own error, a timeout say, is the true cause.
type sourceErr struct {
	r   io.Reader
	err error
}

func (s *sourceErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

// or is the body's own error if it had one, else err.
func (s *sourceErr) or(err error) error {
	if s.err != nil {
		return s.err
	}
	return err
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
