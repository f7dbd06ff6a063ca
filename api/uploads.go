package api

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/store"
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

type uploadCreateInput struct {
	Body struct {
		_            struct{}      `additionalProperties:"true"`
		Bytes        int64         `json:"bytes" minimum:"1" doc:"The file's size in bytes."`
		Filename     string        `json:"filename" minLength:"1"`
		MimeType     string        `json:"mime_type" minLength:"1"`
		Purpose      string        `json:"purpose"`
		ExpiresAfter *ExpiresAfter `json:"expires_after,omitempty" doc:"When the file the upload becomes expires: that many seconds after it is made. Without it, the server's retention for the purpose (KILN_FILE_RETENTION) applies, if any."`
	}
}

type uploadIDInput struct {
	UploadID string `path:"upload_id"`
}

type uploadOutput struct{ Body Upload }

type uploadPartOutput struct{ Body UploadPart }

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

type presignedPartsOutput struct{ Body PresignedParts }

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
	}, d.createUpload)

	huma.Register(api, huma.Operation{
		OperationID: "addUploadPart", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/parts",
		Summary: "Add an upload part", Tags: []string{"Uploads"},
		Description: "Multipart field `data`: one part of up to 64 MB (configurable), streamed to object storage.",
	}, d.addUploadPart)
	api.OpenAPI().Paths["/v1/uploads/{upload_id}/parts"].Post.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"multipart/form-data": {Schema: &huma.Schema{Type: "object", Required: []string{"data"},
			Properties: map[string]*huma.Schema{"data": {Type: "string", Format: "binary", Description: "The part's bytes."}}}},
	}}

	huma.Register(api, huma.Operation{
		OperationID: "presignUploadParts", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/parts/presigned",
		Summary: "Presign upload parts (kiln extension)", Tags: []string{"Uploads"},
		Description: "Makes `count` parts whose bytes the client PUTs straight to object storage at the returned URLs, " +
			"then completes the upload with their IDs as usual. URLs expire with the upload.",
	}, d.presignUploadParts)

	huma.Register(api, huma.Operation{
		OperationID: "completeUpload", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/complete",
		Summary: "Complete an upload", Tags: []string{"Uploads"},
		Description: "Assembles the parts, in the order given, into a file server-side, and checks the size and the optional md5.",
	}, d.completeUpload)

	huma.Register(api, huma.Operation{
		OperationID: "cancelUpload", Method: http.MethodPost, Path: "/v1/uploads/{upload_id}/cancel",
		Summary: "Cancel an upload", Tags: []string{"Uploads"},
	}, d.cancelUpload)
}

func (d Deps) createUpload(ctx context.Context, in *uploadCreateInput) (*uploadOutput, error) {
	b := in.Body
	u, err := d.Batches.CreateUpload(ctx, batch.UploadParams{Filename: b.Filename, Purpose: b.Purpose, Bytes: b.Bytes, MimeType: b.MimeType,
		ExpiresAfter: b.ExpiresAfter.policy()})
	if err != nil {
		return nil, err
	}
	return d.uploadOutput(ctx, u)
}

func (d Deps) addUploadPart(ctx context.Context, in *partAddInput) (*uploadPartOutput, error) {
	if _, err := d.Batches.PendingUpload(ctx, in.UploadID); err != nil {
		return nil, err
	}
	var p store.UploadPart
	err := eachFormPart(in.ContentType, in.body, func(part *multipart.Part) error {
		if part.FormName() != "data" || p.ID != "" {
			return nil
		}
		var err error
		p, err = d.Batches.AddPart(ctx, in.UploadID, part, "data")
		return err
	})
	if err == nil && p.ID == "" {
		err = apierror.Invalid("data", "Missing required parameter: 'data'.")
	}
	if err != nil {
		if p.ID != "" {
			// The part is recorded; the body after it broke. The client
			// sees the error and never learns the part's ID: it expires
			// with the upload.
			d.Log.InfoContext(ctx, "upload part stored, then its request failed", "upload", in.UploadID, "part", p.ID)
		}
		return nil, err
	}
	return &uploadPartOutput{Body: UploadPart{ID: p.ID, Object: "upload.part", CreatedAt: p.CreatedAt, UploadID: p.UploadID}}, nil
}

func (d Deps) presignUploadParts(ctx context.Context, in *presignInput) (*presignedPartsOutput, error) {
	presign := d.Batches.PresignParts
	if in.Body.Multipart {
		presign = d.Batches.PresignMultipartParts
	}
	parts, err := presign(ctx, in.UploadID, in.Body.Count)
	if err != nil {
		return nil, err
	}
	out := PresignedParts{Object: "list", Data: make([]UploadPart, len(parts))}
	method := http.MethodPut
	for i, p := range parts {
		out.Data[i] = UploadPart{ID: p.ID, Object: "upload.part", CreatedAt: p.CreatedAt, UploadID: p.UploadID,
			URL: &p.URL, Method: &method, ExpiresAt: &p.ExpiresAt}
		if p.PartNumber > 0 {
			out.Data[i].PartNumber = &p.PartNumber
		}
	}
	return &presignedPartsOutput{Body: out}, nil
}

func (d Deps) completeUpload(ctx context.Context, in *completeInput) (*uploadOutput, error) {
	p := batch.CompleteParams{PartIDs: in.Body.PartIDs}
	if in.Body.MD5 != nil {
		p.MD5 = *in.Body.MD5
	}
	u, err := d.Batches.CompleteUpload(ctx, in.UploadID, p)
	if err != nil {
		return nil, err
	}
	return d.uploadOutput(ctx, u)
}

func (d Deps) cancelUpload(ctx context.Context, in *uploadIDInput) (*uploadOutput, error) {
	u, err := d.Batches.CancelUpload(ctx, in.UploadID)
	if err != nil {
		return nil, err
	}
	return d.uploadOutput(ctx, u)
}

func (d Deps) uploadOutput(ctx context.Context, u store.Upload) (*uploadOutput, error) {
	out, err := d.uploadOf(ctx, u)
	if err != nil {
		return nil, err
	}
	return &uploadOutput{Body: out}, nil
}
