package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/aws/aws-lambda-go/events"
	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
)

// ObjectEventsResult answers a bucket notification.
type ObjectEventsResult struct {
	Object  string `json:"object" enum:"object_events"`
	Records int    `json:"records" doc:"Records in the notification."`
	Created int    `json:"created" doc:"New object.created events: inbox objects not seen before."`
}

type objectEventsInput struct {
	RawBody []byte `contentType:"application/json" maxLength:"10485760"`
}

type objectEventsOutput struct{ Body ObjectEventsResult }

func registerObjectEvents(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "receiveObjectEvents", Method: http.MethodPost, Path: "/v1/object_events",
		Summary: "Receive bucket notifications", Tags: []string{"Events (kiln extension)"},
		// The handler parses the body: S3 servers differ in which fields
		// they send.
		SkipValidateBody: true,
		Description: "Takes S3 event notifications (MinIO's webhook target, or AWS S3's event JSON); " +
			"objects created under the inbox prefix become files, and batches when a sidecar or metadata asks.",
	}, d.receiveObjectEvents)
}

func (d Deps) receiveObjectEvents(ctx context.Context, in *objectEventsInput) (*objectEventsOutput, error) {
	// The inbox's imports belong to the default project: only its keys
	// (the operator's, which the S3 server sends) may announce objects.
	if auth.Project(ctx) != auth.DefaultProject {
		return nil, apierror.New(http.StatusNotFound, "unknown_url", "", "Invalid URL (POST /v1/object_events): the inbox belongs to the default project.")
	}
	if d.Inbox == nil || d.Inbox.Prefix == "" {
		return nil, apierror.New(http.StatusConflict, "inbox_disabled", "", "kiln has no inbox: set KILN_INBOX_PREFIX.")
	}
	// Parsed here, not by the schema: S3 servers differ in which fields
	// they send.
	var note events.S3Event
	if err := json.Unmarshal(in.RawBody, &note); err != nil {
		return nil, apierror.Invalid("", "The body is not an S3 event notification: "+err.Error())
	}
	n, err := d.Inbox.Notify(ctx, note)
	if errors.Is(err, functions.ErrNotNotifiable) {
		return nil, apierror.New(http.StatusConflict, "notifications_unsupported", "", apierror.Sentence(err))
	}
	if err != nil {
		return nil, err
	}
	return &objectEventsOutput{Body: ObjectEventsResult{Object: "object_events", Records: len(note.Records), Created: n}}, nil
}
