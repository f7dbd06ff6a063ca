package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/store"
)

// WebhookEndpoint is a registered webhook receiver, as OpenAI's webhook
// endpoint management API shapes it.
type WebhookEndpoint struct {
	ID                string   `json:"id"`
	Object            string   `json:"object" enum:"webhook_endpoint"`
	URL               string   `json:"url"`
	Name              string   `json:"name"`
	EventTypes        []string `json:"event_types"`
	SigningSecretHint string   `json:"signing_secret_hint" doc:"The end of the signing secret, to tell secrets apart."`
	CreatedAt         int64    `json:"created_at"`
	UpdatedAt         int64    `json:"updated_at"`
	// SigningSecret is shown once: when the endpoint is created or its
	// secret rotated.
	SigningSecret string `json:"signing_secret,omitempty" doc:"The whsec_ signing secret; only in answers to creation and rotation."`
}

func endpointOf(e store.WebhookEndpoint) WebhookEndpoint {
	return WebhookEndpoint{ID: e.ID, Object: "webhook_endpoint", URL: e.URL, Name: e.Name, EventTypes: e.EventTypes,
		SigningSecretHint: secretHint(e.Secret), CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

func secretHint(secret string) string {
	if len(secret) < 10 {
		return "whsec_…"
	}
	return "whsec_…" + secret[len(secret)-4:]
}

// WebhookEndpointList is a page of endpoints.
type WebhookEndpointList struct {
	Object  string            `json:"object" enum:"list"`
	Data    []WebhookEndpoint `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

// WebhookDelivery is one event sent, or to be sent, to one URL.
type WebhookDelivery struct {
	ID             string `json:"id"`
	Object         string `json:"object" enum:"webhook_delivery"`
	EndpointID     string `json:"endpoint_id"`
	EventID        string `json:"event_id" doc:"Also the webhook-id header of every attempt."`
	URL            string `json:"url"`
	Status         string `json:"status" enum:"pending,succeeded,failed"`
	Attempts       int64  `json:"attempts"`
	ResponseStatus *int64 `json:"response_status" doc:"The receiver's last HTTP status; null before any answer."`
	ResponseBody   string `json:"response_body" doc:"The start (1 KiB) of the receiver's last answer."`
	LastError      string `json:"last_error"`
	CreatedAt      int64  `json:"created_at"`
	UpdatedAt      int64  `json:"updated_at"`
	DeliveredAt    *int64 `json:"delivered_at"`
}

func deliveryOf(d store.Delivery) WebhookDelivery {
	out := WebhookDelivery{ID: d.ID, Object: "webhook_delivery", EndpointID: d.EndpointID, EventID: d.EventID, URL: d.URL,
		Status: d.Status, Attempts: d.Attempts, ResponseBody: d.ResponseBody, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt}
	if d.ResponseStatus != 0 {
		out.ResponseStatus = &d.ResponseStatus
	}
	return out
}

// WebhookDeliveryList is a page of deliveries.
type WebhookDeliveryList struct {
	Object  string            `json:"object" enum:"list"`
	Data    []WebhookDelivery `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

// Event is an event as webhooks carry it, OpenAI's shape.
type Event struct {
	ID        string          `json:"id"`
	Object    string          `json:"object" enum:"event"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

func eventOf(ev store.Event) Event { return Event(functions.EventOf(ev)) }

// EventList is a page of events.
type EventList struct {
	Object  string  `json:"object" enum:"list"`
	Data    []Event `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// FunctionInvocation is one function's handling of one event.
type FunctionInvocation struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"function_invocation"`
	EventID   string `json:"event_id"`
	Function  string `json:"function"`
	Status    string `json:"status" enum:"pending,succeeded,dead" doc:"dead: retries are exhausted (the dead letter); retry it with POST .../retry."`
	Attempts  int64  `json:"attempts"`
	LastError string `json:"last_error"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

func invocationOf(i store.Invocation) FunctionInvocation {
	return FunctionInvocation{ID: i.ID, Object: "function_invocation", EventID: i.EventID, Function: i.Function, Status: i.Status,
		Attempts: i.Attempts, LastError: i.LastError, CreatedAt: i.CreatedAt, UpdatedAt: i.UpdatedAt}
}

// FunctionInvocationList is a page of invocations.
type FunctionInvocationList struct {
	Object  string               `json:"object" enum:"list"`
	Data    []FunctionInvocation `json:"data"`
	FirstID *string              `json:"first_id"`
	LastID  *string              `json:"last_id"`
	HasMore bool                 `json:"has_more"`
}

// ObjectEventsResult answers a bucket notification.
type ObjectEventsResult struct {
	Object  string `json:"object" enum:"object_events"`
	Records int    `json:"records" doc:"Records in the notification."`
	Created int    `json:"created" doc:"New object.created events: inbox objects not seen before."`
}

type endpointCreateInput struct {
	Body struct {
		_          struct{} `additionalProperties:"true"`
		URL        string   `json:"url" doc:"Where events are POSTed. A batch's metadata webhook_url must fall under a registered URL."`
		Name       string   `json:"name,omitempty" maxLength:"256" doc:"A human-readable name."`
		EventTypes []string `json:"event_types,omitempty" doc:"Event types to send; default: every batch.* event."`
	}
}

type endpointUpdateInput struct {
	EndpointIDParam
	Body struct {
		_          struct{} `additionalProperties:"true"`
		URL        *string  `json:"url,omitempty"`
		Name       *string  `json:"name,omitempty" maxLength:"256"`
		EventTypes []string `json:"event_types,omitempty"`
	}
}

type rotateInput struct {
	EndpointIDParam
	Body *struct {
		_       struct{} `additionalProperties:"true"`
		KeepOld bool     `json:"keep_old_secret_active_for_24_hours,omitempty" doc:"Sign with both secrets for 24 hours."`
	}
}

type testInput struct {
	EndpointIDParam
	Body struct {
		_         struct{} `additionalProperties:"true"`
		EventType string   `json:"event_type" doc:"The type of the test event sent."`
	}
}

// WebhookEndpointTestResult is the outcome of a test delivery.
type WebhookEndpointTestResult struct {
	Object            string `json:"object" enum:"webhook_endpoint.test"`
	WebhookEndpointID string `json:"webhook_endpoint_id"`
	EventType         string `json:"event_type"`
	StatusCode        int64  `json:"status_code" doc:"The receiver's HTTP status; 0 when it did not answer."`
	Success           bool   `json:"success"`
	Error             string `json:"error,omitempty" doc:"Why the test failed (a kiln extension)."`
}

func checkEventTypes(types []string) error {
	for _, t := range types {
		if !slices.Contains(store.EventTypes, t) {
			return apierror.Invalid("event_types", fmt.Sprintf("Unknown event type %q; kiln sends %v.", t, store.EventTypes))
		}
	}
	return nil
}

// EndpointIDParam is the path parameter of one endpoint's routes
// (exported, so that Huma reads it where it is embedded).
type EndpointIDParam struct {
	EndpointID string `path:"endpoint_id"`
}

// PageParams are the pagination query parameters.
type PageParams struct {
	After string `query:"after" doc:"An ID: list what comes after it."`
	Limit int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many to return."`
}

// pageOf converts a page of stored items for a list answer: its data, and
// the IDs of its first and last items (nil when empty).
func pageOf[S, T any](list []S, conv func(S) T, id func(S) string) (data []T, first, last *string) {
	data = make([]T, len(list))
	for i, x := range list {
		data[i] = conv(x)
	}
	if len(list) > 0 {
		f, l := id(list[0]), id(list[len(list)-1])
		first, last = &f, &l
	}
	return data, first, last
}

var batchEventTypes = []string{store.EventBatchCompleted, store.EventBatchFailed, store.EventBatchExpired, store.EventBatchCancelled}

func registerWebhooks(api huma.API, d Deps) {
	tags := []string{"Webhooks (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "createWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints",
		Summary: "Create a webhook endpoint", Tags: tags,
		Description: "Events are POSTed to the URL signed per Standard Webhooks (webhook-id, webhook-timestamp, " +
			"webhook-signature), so OpenAI SDKs' webhooks.unwrap verifies them with the signing secret, which only this answer shows.",
	}, func(ctx context.Context, in *endpointCreateInput) (*struct{ Body WebhookEndpoint }, error) {
		b := in.Body
		if err := netguard.CheckURL(b.URL, d.WebhookAllowPrivate); err != nil {
			return nil, apierror.Invalid("url", apierror.Sentence(err))
		}
		types := b.EventTypes
		if len(types) == 0 {
			types = batchEventTypes
		}
		if err := checkEventTypes(types); err != nil {
			return nil, err
		}
		t := time.Now().Unix()
		e := store.WebhookEndpoint{ID: ids.New(ids.WebhookEndpoint), URL: b.URL, Name: b.Name, EventTypes: types,
			Secret: functions.NewSecret(), CreatedAt: t, UpdatedAt: t}
		if err := d.Store.WebhookEndpointCreate(ctx, e); err != nil {
			return nil, err
		}
		out := endpointOf(e)
		out.SigningSecret = e.Secret
		return &struct{ Body WebhookEndpoint }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "listWebhookEndpoints", Method: http.MethodGet, Path: "/v1/webhook_endpoints",
		Summary: "List webhook endpoints", Description: "Newest first.", Tags: tags,
	}, func(ctx context.Context, in *PageParams) (*struct{ Body WebhookEndpointList }, error) {
		list, more, err := d.Store.WebhookEndpointList(ctx, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := WebhookEndpointList{Object: "list", HasMore: more}
		out.Data, out.FirstID, out.LastID = pageOf(list, endpointOf, func(e store.WebhookEndpoint) string { return e.ID })
		return &struct{ Body WebhookEndpointList }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "retrieveWebhookEndpoint", Method: http.MethodGet, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Retrieve a webhook endpoint", Tags: tags,
	}, func(ctx context.Context, in *EndpointIDParam) (*struct{ Body WebhookEndpoint }, error) {
		e, err := d.Store.WebhookEndpointGet(ctx, in.EndpointID)
		if err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		return &struct{ Body WebhookEndpoint }{endpointOf(e)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "updateWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Update a webhook endpoint", Tags: tags, Description: "Changes the URL, name or event types given.",
	}, func(ctx context.Context, in *endpointUpdateInput) (*struct{ Body WebhookEndpoint }, error) {
		e, err := d.Store.WebhookEndpointGet(ctx, in.EndpointID)
		if err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		if in.Body.URL != nil {
			if err := netguard.CheckURL(*in.Body.URL, d.WebhookAllowPrivate); err != nil {
				return nil, apierror.Invalid("url", apierror.Sentence(err))
			}
			e.URL = *in.Body.URL
		}
		if in.Body.Name != nil {
			e.Name = *in.Body.Name
		}
		if in.Body.EventTypes != nil {
			if err := checkEventTypes(in.Body.EventTypes); err != nil {
				return nil, err
			}
			e.EventTypes = in.Body.EventTypes
		}
		if e, err = d.Store.WebhookEndpointUpdate(ctx, e); err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		return &struct{ Body WebhookEndpoint }{endpointOf(e)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "rotateWebhookSecret", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
		Summary: "Rotate a webhook endpoint's signing secret", Tags: tags,
		Description: "Answers the new secret, shown only here. With keep_old_secret_active_for_24_hours, deliveries carry " +
			"signatures by both secrets for 24 hours, so receivers can switch without losing any.",
	}, func(ctx context.Context, in *rotateInput) (*struct{ Body WebhookEndpoint }, error) {
		var keep time.Duration
		if in.Body != nil && in.Body.KeepOld {
			keep = 24 * time.Hour
		}
		e, err := d.Store.WebhookEndpointRotate(ctx, in.EndpointID, functions.NewSecret(), keep)
		if err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		out := endpointOf(e)
		out.SigningSecret = e.Secret
		return &struct{ Body WebhookEndpoint }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "testWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/test",
		Summary: "Send a test event", Tags: tags,
		Description: "Sends one signed event of the type given, about no real object (data.id is a made-up ID), once, now, and answers the outcome.",
	}, func(ctx context.Context, in *testInput) (*struct{ Body WebhookEndpointTestResult }, error) {
		e, err := d.Store.WebhookEndpointGet(ctx, in.EndpointID)
		if err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		if err := checkEventTypes([]string{in.Body.EventType}); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(map[string]string{"id": "test_" + ids.New("")})
		ev := functions.Event{ID: ids.New(ids.Event), Object: "event", Type: in.Body.EventType, CreatedAt: time.Now().Unix(), Data: data}
		var a store.DeliveryAttempt
		sendErr := d.Webhooks.Send(ctx, e, e.URL, ev, &a)
		out := WebhookEndpointTestResult{Object: "webhook_endpoint.test", WebhookEndpointID: e.ID, EventType: ev.Type,
			StatusCode: a.ResponseStatus, Success: sendErr == nil}
		if sendErr != nil {
			out.Error = sendErr.Error()
		}
		return &struct{ Body WebhookEndpointTestResult }{out}, nil
	})

	type deleted struct {
		ID      string `json:"id"`
		Object  string `json:"object" enum:"webhook_endpoint.deleted"`
		Deleted bool   `json:"deleted"`
	}
	huma.Register(api, huma.Operation{
		OperationID: "deleteWebhookEndpoint", Method: http.MethodDelete, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Delete a webhook endpoint", Tags: tags,
		Description: "Nothing more is sent to it; its pending deliveries fail at their next attempt.",
	}, func(ctx context.Context, in *EndpointIDParam) (*struct{ Body deleted }, error) {
		if err := d.Store.WebhookEndpointDelete(ctx, in.EndpointID); err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		return &struct{ Body deleted }{deleted{ID: in.EndpointID, Object: "webhook_endpoint.deleted", Deleted: true}}, nil
	})

	type deliveriesInput struct {
		EndpointIDParam
		PageParams
		Status string `query:"status" enum:"pending,succeeded,failed" doc:"Only deliveries with this status."`
	}
	huma.Register(api, huma.Operation{
		OperationID: "listWebhookDeliveries", Method: http.MethodGet, Path: "/v1/webhook_endpoints/{endpoint_id}/deliveries",
		Summary: "List an endpoint's deliveries", Description: "The delivery log, newest first.", Tags: tags,
	}, func(ctx context.Context, in *deliveriesInput) (*struct{ Body WebhookDeliveryList }, error) {
		if _, err := d.Store.WebhookEndpointGet(ctx, in.EndpointID); err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		list, more, err := d.Store.DeliveryList(ctx, in.EndpointID, in.Status, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := WebhookDeliveryList{Object: "list", HasMore: more}
		out.Data, out.FirstID, out.LastID = pageOf(list, deliveryOf, func(x store.Delivery) string { return x.ID })
		return &struct{ Body WebhookDeliveryList }{out}, nil
	})

	type redeliverInput struct {
		EndpointIDParam
		DeliveryID string `path:"delivery_id"`
	}
	huma.Register(api, huma.Operation{
		OperationID: "redeliverWebhook", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
		Summary: "Redeliver", Tags: tags,
		Description: "Sends a finished delivery again, with the same webhook-id, and retries it as a new one.",
	}, func(ctx context.Context, in *redeliverInput) (*struct{ Body WebhookDelivery }, error) {
		cur, err := d.Store.DeliveryGet(ctx, in.DeliveryID)
		if err == nil && cur.EndpointID != in.EndpointID {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, notFoundOr(err, "delivery", in.DeliveryID)
		}
		if _, err := d.Store.WebhookEndpointGet(ctx, in.EndpointID); err != nil {
			return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
		}
		out, err := d.Store.DeliveryRedeliver(ctx, in.DeliveryID, d.Webhooks.DeliveryJob)
		if errors.Is(err, store.ErrConflict) {
			return nil, apierror.New(http.StatusConflict, "delivery_pending", "", "The delivery is still pending; it is being retried.")
		}
		if err != nil {
			return nil, notFoundOr(err, "delivery", in.DeliveryID)
		}
		return &struct{ Body WebhookDelivery }{deliveryOf(out)}, nil
	})

	evTags := []string{"Events (kiln extension)"}
	type eventsInput struct {
		PageParams
		Type string `query:"type" doc:"Only events of this type."`
	}
	huma.Register(api, huma.Operation{
		OperationID: "listEvents", Method: http.MethodGet, Path: "/v1/events",
		Summary: "List events", Description: "Newest first.", Tags: evTags,
	}, func(ctx context.Context, in *eventsInput) (*struct{ Body EventList }, error) {
		list, more, err := d.Store.EventList(ctx, in.Type, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := EventList{Object: "list", HasMore: more}
		out.Data, out.FirstID, out.LastID = pageOf(list, eventOf, func(e store.Event) string { return e.ID })
		return &struct{ Body EventList }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "retrieveEvent", Method: http.MethodGet, Path: "/v1/events/{event_id}",
		Summary: "Retrieve an event", Tags: evTags,
	}, func(ctx context.Context, in *struct {
		EventID string `path:"event_id"`
	}) (*struct{ Body Event }, error) {
		ev, err := d.Store.EventGet(ctx, in.EventID)
		if err != nil {
			return nil, notFoundOr(err, "event", in.EventID)
		}
		return &struct{ Body Event }{eventOf(ev)}, nil
	})

	type invocationsInput struct {
		PageParams
		Status string `query:"status" enum:"pending,succeeded,dead" doc:"dead lists the dead letters."`
	}
	huma.Register(api, huma.Operation{
		OperationID: "listFunctionInvocations", Method: http.MethodGet, Path: "/v1/function_invocations",
		Summary: "List function invocations", Tags: evTags,
		Description: "Each event runs every function subscribed to it; ?status=dead lists those that exhausted their retries.",
	}, func(ctx context.Context, in *invocationsInput) (*struct{ Body FunctionInvocationList }, error) {
		list, more, err := d.Store.InvocationList(ctx, in.Status, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := FunctionInvocationList{Object: "list", HasMore: more}
		out.Data, out.FirstID, out.LastID = pageOf(list, invocationOf, func(x store.Invocation) string { return x.ID })
		return &struct{ Body FunctionInvocationList }{out}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "retryFunctionInvocation", Method: http.MethodPost, Path: "/v1/function_invocations/{invocation_id}/retry",
		Summary: "Retry a dead invocation", Tags: evTags,
	}, func(ctx context.Context, in *struct {
		InvocationID string `path:"invocation_id"`
	}) (*struct{ Body FunctionInvocation }, error) {
		inv, err := d.Store.InvocationRetry(ctx, in.InvocationID)
		if errors.Is(err, store.ErrConflict) {
			return nil, apierror.New(http.StatusConflict, "invocation_not_dead", "", "Only a dead invocation can be retried.")
		}
		if err != nil {
			return nil, notFoundOr(err, "function invocation", in.InvocationID)
		}
		return &struct{ Body FunctionInvocation }{invocationOf(inv)}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "receiveObjectEvents", Method: http.MethodPost, Path: "/v1/object_events",
		Summary: "Receive bucket notifications", Tags: evTags,
		// The handler parses the body: S3 servers differ in which fields
		// they send.
		SkipValidateBody: true,
		Description: "Takes S3 event notifications (MinIO's webhook target, or AWS S3's event JSON); " +
			"objects created under the inbox prefix become files, and batches when a sidecar or metadata asks.",
	}, func(ctx context.Context, in *struct {
		RawBody []byte `contentType:"application/json" maxLength:"10485760"`
	}) (*struct{ Body ObjectEventsResult }, error) {
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
		return &struct{ Body ObjectEventsResult }{ObjectEventsResult{Object: "object_events", Records: len(note.Records), Created: n}}, nil
	})
}
