package api

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/jobs"
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

func fileOf(f store.File) File {
	return File{ID: f.ID, Object: "file", Bytes: f.Bytes, CreatedAt: f.CreatedAt, ExpiresAt: f.ExpiresAt,
		Filename: f.Filename, Purpose: f.Purpose, Status: f.Status}
}

// uploadPurposes are the purposes a client may upload, as OpenAI's.
var uploadPurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

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

func registerFiles(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "createFile",
		Method:      http.MethodPost,
		Path:        "/v1/files",
		Summary:     "Upload a file",
		Description: "Multipart upload with fields `purpose` and `file`. The file streams to object storage and is never held whole in memory. " +
			"Files for purpose `batch` must be JSONL. Files larger than the configured limit get 413.",
		Tags: []string{"Files"},
	}, func(ctx context.Context, in *fileUploadInput) (*fileOutput, error) {
		f, err := upload(ctx, d, in)
		if err != nil {
			return nil, err
		}
		return &fileOutput{Body: fileOf(f)}, nil
	})
	// The request body is documented after registration: declared before,
	// Huma would read the whole body into memory instead of letting the
	// handler stream it.
	api.OpenAPI().Paths["/v1/files"].Post.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"multipart/form-data": {Schema: &huma.Schema{
			Type:     "object",
			Required: []string{"file", "purpose"},
			Properties: map[string]*huma.Schema{
				"file":    {Type: "string", Format: "binary", Description: "The file."},
				"purpose": {Type: "string", Enum: anySlice(uploadPurposes), Description: "What the file is for."},
			},
		}},
	}}

	huma.Register(api, huma.Operation{
		OperationID: "listFiles", Method: http.MethodGet, Path: "/v1/files",
		Summary: "List files", Tags: []string{"Files"},
	}, func(ctx context.Context, in *fileListInput) (*struct{ Body FileList }, error) {
		files, more, err := d.Store.FileList(ctx, store.FileListParams{Purpose: in.Purpose, After: in.After, Limit: in.Limit, Asc: in.Order == "asc"})
		if err != nil {
			return nil, internal(ctx, d.Log, err)
		}
		out := FileList{Object: "list", Data: make([]File, len(files)), HasMore: more}
		for i, f := range files {
			out.Data[i] = fileOf(f)
		}
		if len(files) > 0 {
			out.FirstID, out.LastID = files[0].ID, files[len(files)-1].ID
		}
		return &struct{ Body FileList }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "retrieveFile", Method: http.MethodGet, Path: "/v1/files/{file_id}",
		Summary: "Retrieve a file", Tags: []string{"Files"},
	}, func(ctx context.Context, in *fileIDInput) (*fileOutput, error) {
		f, err := d.Store.FileGet(ctx, in.FileID)
		if err != nil {
			return nil, storeError(ctx, d.Log, "file", in.FileID, err)
		}
		return &fileOutput{Body: fileOf(f)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "deleteFile", Method: http.MethodDelete, Path: "/v1/files/{file_id}",
		Summary: "Delete a file", Tags: []string{"Files"},
	}, func(ctx context.Context, in *fileIDInput) (*struct{ Body FileDeleted }, error) {
		f, err := d.Store.FileDelete(ctx, in.FileID)
		if err != nil {
			return nil, storeError(ctx, d.Log, "file", in.FileID, err)
		}
		if err := d.Bucket.Delete(ctx, f.ObjectKey); err != nil {
			d.Log.WarnContext(ctx, "deleted file's object remains", "file", f.ID, "err", err)
		}
		return &struct{ Body FileDeleted }{FileDeleted{ID: f.ID, Object: "file", Deleted: true}}, nil
	})

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
	}, func(ctx context.Context, in *fileContentInput) (*huma.StreamResponse, error) {
		f, err := d.Store.FileGet(ctx, in.FileID)
		if err != nil {
			return nil, storeError(ctx, d.Log, "file", in.FileID, err)
		}
		if redirect := in.Redirect || d.DownloadRedirect; redirect && in.Range == "" {
			url, err := d.Bucket.PresignGet(ctx, f.ObjectKey, downloadURLTTL, f.Filename)
			if err == nil {
				return &huma.StreamResponse{Body: func(hctx huma.Context) {
					hctx.SetHeader("Location", url)
					hctx.SetStatus(http.StatusTemporaryRedirect)
				}}, nil
			}
			if in.Redirect {
				return nil, internal(ctx, d.Log, fmt.Errorf("presign download: %w", err))
			}
			// Configured, but this store cannot presign: stream instead.
		}
		start, length, ok := parseRange(in.Range, f.Bytes)
		if !ok {
			return nil, newError(http.StatusRequestedRangeNotSatisfiable, typeInvalidRequest, "invalid_range", "Range",
				fmt.Sprintf("Range %q does not fit a file of %d bytes; use one range, bytes=first-last.", in.Range, f.Bytes))
		}
		rc, err := d.Bucket.GetRange(ctx, f.ObjectKey, start, length)
		if err != nil {
			return nil, storeError(ctx, d.Log, "file", in.FileID, err)
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer rc.Close()
			hctx.SetHeader("Content-Type", "application/octet-stream")
			hctx.SetHeader("Accept-Ranges", "bytes")
			hctx.SetHeader("Content-Length", strconv.FormatInt(length, 10))
			hctx.SetHeader("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Filename}))
			if in.Range != "" {
				hctx.SetHeader("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, f.Bytes))
				hctx.SetStatus(http.StatusPartialContent)
			}
			if _, err := io.Copy(hctx.BodyWriter(), rc); err != nil {
				d.Log.WarnContext(ctx, "download cut short", "file", f.ID, "err", err)
			}
		}}, nil
	})
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

var errTooLarge = errors.New("file too large")

// upload streams a multipart upload into the object store. Whatever fails,
// no object and no row is left behind.
func upload(ctx context.Context, d Deps, in *fileUploadInput) (store.File, error) {
	mt, params, err := mime.ParseMediaType(in.ContentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return store.File{}, badRequest("", "The request must be multipart/form-data with a boundary.")
	}
	mr := multipart.NewReader(in.body, params["boundary"])
	f := store.File{ID: ids.New(ids.File), Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
	f.ObjectKey = jobs.FileKey(f.ID)
	stored := false
	cleanup := func() {
		if stored {
			_ = d.Bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		}
	}
	var sniff *jsonlSniffer
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cleanup()
			return store.File{}, badRequest("", "Malformed multipart body: "+err.Error())
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				cleanup()
				return store.File{}, badRequest("purpose", "Malformed multipart body: "+err.Error())
			}
			f.Purpose = strings.TrimSpace(string(b))
		case "file":
			if stored {
				cleanup()
				return store.File{}, badRequest("file", "Only one file may be uploaded per request.")
			}
			f.Filename = part.FileName()
			if f.Filename == "" {
				f.Filename = "file"
			}
			sniff = &jsonlSniffer{max: d.MaxLineBytes}
			lr := &limitReader{r: io.TeeReader(part, sniff), left: d.MaxFileBytes}
			info, err := d.Bucket.Put(ctx, f.ObjectKey, lr, -1)
			if err != nil {
				if errors.Is(err, errTooLarge) {
					return store.File{}, newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "file_too_large", "file",
						fmt.Sprintf("The file is larger than the limit of %d bytes.", d.MaxFileBytes))
				}
				if ctx.Err() != nil {
					return store.File{}, storeError(ctx, d.Log, "file", f.ID, ctx.Err())
				}
				if lr.srcErr != nil { // the client's body broke off or is malformed
					return store.File{}, badRequest("file", "Malformed multipart body: "+lr.srcErr.Error())
				}
				return store.File{}, internal(ctx, d.Log, err)
			}
			stored = true
			f.Bytes = info.Size
		default:
			_, _ = io.Copy(io.Discard, part) // unknown fields are ignored, as OpenAI does
		}
	}
	switch {
	case !stored:
		return store.File{}, badRequest("file", "Missing required parameter: 'file'.")
	case f.Purpose == "":
		cleanup()
		return store.File{}, badRequest("purpose", "Missing required parameter: 'purpose'.")
	case !contains(uploadPurposes, f.Purpose):
		cleanup()
		return store.File{}, badRequest("purpose", fmt.Sprintf("'%s' is not one of %s - 'purpose'", f.Purpose, strings.Join(uploadPurposes, ", ")))
	case f.Purpose == "batch":
		if err := sniff.verdict(); err != nil {
			cleanup()
			return store.File{}, newError(http.StatusBadRequest, typeInvalidRequest, "invalid_file_format", "file",
				"Invalid file format for Batch API. Must be .jsonl: "+err.Error())
		}
	}
	if err := d.Store.FileCreate(ctx, f); err != nil {
		cleanup()
		return store.File{}, internal(ctx, d.Log, err)
	}
	return f, nil
}

// limitReader fails with errTooLarge once more than left bytes were read, so
// the object store aborts the upload. It remembers the source's own error,
// which tells a broken request from a storage failure.
type limitReader struct {
	r      io.Reader
	left   int64
	srcErr error
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		l.srcErr = err
	}
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// jsonlSniffer checks, as the upload streams by, that a file looks like
// JSONL: not empty, and its first non-blank line is a JSON object. Later
// lines are the batch validator's business, which reports them with line
// numbers. It keeps at most one line of max bytes.
type jsonlSniffer struct {
	max     int
	line    []byte
	decided bool
	err     error
	seen    bool
}

func (s *jsonlSniffer) Write(p []byte) (int, error) {
	n := len(p)
	for !s.decided && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i
		}
		if len(s.line)+end > s.max {
			s.decided = true // too long to judge here; validation will
			s.line = nil
			break
		}
		s.line = append(s.line, p[:end]...)
		if i < 0 {
			break
		}
		p = p[i+1:]
		s.judge()
	}
	return n, nil
}

func (s *jsonlSniffer) judge() {
	t := bytes.TrimSpace(s.line)
	s.line = s.line[:0]
	if len(t) == 0 {
		return
	}
	s.seen, s.decided = true, true
	if t[0] != '{' || !json.Valid(t) {
		s.err = errors.New("its first line is not a JSON object")
	}
}

func (s *jsonlSniffer) verdict() error {
	if !s.decided && len(bytes.TrimSpace(s.line)) > 0 {
		s.judge()
	}
	if !s.decided && !s.seen {
		return errors.New("the file is empty")
	}
	return s.err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
