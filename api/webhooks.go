package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
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
	NextAttemptAt  *int64 `json:"next_attempt_at" doc:"When a pending delivery is next attempted (Unix seconds); null once it has ended."`
}

func deliveryOf(d store.Delivery) WebhookDelivery {
	out := WebhookDelivery{ID: d.ID, Object: "webhook_delivery", EndpointID: d.EndpointID, EventID: d.EventID, URL: d.URL,
		Status: d.Status, Attempts: d.Attempts, ResponseBody: d.ResponseBody, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, DeliveredAt: d.DeliveredAt}
	if d.ResponseStatus != 0 {
		out.ResponseStatus = &d.ResponseStatus
	}
	if d.Status == store.DeliveryPending {
		next := (d.NextAttemptAt + 999) / 1000
		out.NextAttemptAt = &next
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

var batchEventTypes = []string{store.EventBatchCompleted, store.EventBatchFailed, store.EventBatchExpired, store.EventBatchCancelled}

// checkEndpointURL refuses URLs that webhooks may not be sent to.
func checkEndpointURL(url string, allowPrivate bool) error {
	if err := netguard.CheckURL(url, allowPrivate); err != nil {
		return apierror.Invalid("url", apierror.Sentence(err))
	}
	return nil
}

type webhookEndpointOutput struct{ Body WebhookEndpoint }

type webhookEndpointListOutput struct{ Body WebhookEndpointList }

type webhookEndpointTestOutput struct{ Body WebhookEndpointTestResult }

// deleted answers the deletion of a webhook endpoint. Its name is its
// schema's in openapi.yaml (Deleted).
type deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object" enum:"webhook_endpoint.deleted"`
	Deleted bool   `json:"deleted"`
}

type webhookEndpointDeletedOutput struct{ Body deleted }

type deliveryListInput struct {
	EndpointIDParam
	PageParams
	Status string `query:"status" enum:"pending,succeeded,failed" doc:"Only deliveries with this status."`
}

type deliveryListOutput struct{ Body WebhookDeliveryList }

type redeliverInput struct {
	EndpointIDParam
	DeliveryID string `path:"delivery_id"`
}

type deliveryOutput struct{ Body WebhookDelivery }

// registerWebhooks registers the webhook endpoints and their deliveries.
func registerWebhooks(api huma.API, d Deps) {
	tags := []string{"Webhooks (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "createWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints",
		Summary: "Create a webhook endpoint", Tags: tags,
		Description: "Events are POSTed to the URL signed per Standard Webhooks (webhook-id, webhook-timestamp, " +
			"webhook-signature), so OpenAI SDKs' webhooks.unwrap verifies them with the signing secret, which only this answer shows.",
	}, d.createWebhookEndpoint)

	huma.Register(api, huma.Operation{
		OperationID: "listWebhookEndpoints", Method: http.MethodGet, Path: "/v1/webhook_endpoints",
		Summary: "List webhook endpoints", Description: "Newest first.", Tags: tags,
	}, d.listWebhookEndpoints)

	huma.Register(api, huma.Operation{
		OperationID: "retrieveWebhookEndpoint", Method: http.MethodGet, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Retrieve a webhook endpoint", Tags: tags,
	}, d.retrieveWebhookEndpoint)

	huma.Register(api, huma.Operation{
		OperationID: "updateWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Update a webhook endpoint", Tags: tags, Description: "Changes the URL, name or event types given.",
	}, d.updateWebhookEndpoint)

	huma.Register(api, huma.Operation{
		OperationID: "rotateWebhookSecret", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
		Summary: "Rotate a webhook endpoint's signing secret", Tags: tags,
		Description: "Answers the new secret, shown only here. With keep_old_secret_active_for_24_hours, deliveries carry " +
			"signatures by both secrets for 24 hours, so receivers can switch without losing any.",
	}, d.rotateWebhookSecret)

	huma.Register(api, huma.Operation{
		OperationID: "testWebhookEndpoint", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/test",
		Summary: "Send a test event", Tags: tags,
		Description: "Sends one signed event of the type given, about no real object (data.id is a made-up ID), once, now, and answers the outcome.",
	}, d.testWebhookEndpoint)

	huma.Register(api, huma.Operation{
		OperationID: "deleteWebhookEndpoint", Method: http.MethodDelete, Path: "/v1/webhook_endpoints/{endpoint_id}",
		Summary: "Delete a webhook endpoint", Tags: tags,
		Description: "Nothing more is sent to it; its pending deliveries fail at their next attempt.",
	}, d.deleteWebhookEndpoint)

	huma.Register(api, huma.Operation{
		OperationID: "listWebhookDeliveries", Method: http.MethodGet, Path: "/v1/webhook_endpoints/{endpoint_id}/deliveries",
		Summary: "List an endpoint's deliveries", Description: "The delivery log, newest first.", Tags: tags,
	}, d.listWebhookDeliveries)

	huma.Register(api, huma.Operation{
		OperationID: "redeliverWebhook", Method: http.MethodPost, Path: "/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
		Summary: "Redeliver", Tags: tags,
		Description: "Sends a finished delivery again, with the same webhook-id, and retries it as a new one.",
	}, d.redeliverWebhook)
}

func (d Deps) createWebhookEndpoint(ctx context.Context, in *endpointCreateInput) (*webhookEndpointOutput, error) {
	b := in.Body
	if err := checkEndpointURL(b.URL, d.WebhookAllowPrivate); err != nil {
		return nil, err
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
		Secret: functions.NewSecret(), CreatedAt: t, UpdatedAt: t, ProjectID: auth.Project(ctx)}
	if err := d.Store.WebhookEndpointCreate(ctx, e); err != nil {
		return nil, err
	}
	out := endpointOf(e)
	out.SigningSecret = e.Secret
	return &webhookEndpointOutput{Body: out}, nil
}

func (d Deps) listWebhookEndpoints(ctx context.Context, in *PageParams) (*webhookEndpointListOutput, error) {
	list, more, err := d.Store.WebhookEndpointList(ctx, auth.Project(ctx), in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := WebhookEndpointList{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, endpointOf, func(e store.WebhookEndpoint) string { return e.ID })
	return &webhookEndpointListOutput{Body: out}, nil
}

func (d Deps) retrieveWebhookEndpoint(ctx context.Context, in *EndpointIDParam) (*webhookEndpointOutput, error) {
	e, err := d.endpoint(ctx, in.EndpointID)
	if err != nil {
		return nil, err
	}
	return &webhookEndpointOutput{Body: endpointOf(e)}, nil
}

func (d Deps) updateWebhookEndpoint(ctx context.Context, in *endpointUpdateInput) (*webhookEndpointOutput, error) {
	e, err := d.endpoint(ctx, in.EndpointID)
	if err != nil {
		return nil, err
	}
	if err := in.apply(&e, d.WebhookAllowPrivate); err != nil {
		return nil, err
	}
	if e, err = d.Store.WebhookEndpointUpdate(ctx, e); err != nil {
		return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
	}
	return &webhookEndpointOutput{Body: endpointOf(e)}, nil
}

// apply makes the changes the update asks for to e, once they pass the
// checks a new endpoint's do.
func (in *endpointUpdateInput) apply(e *store.WebhookEndpoint, allowPrivate bool) error {
	b := in.Body
	if b.URL != nil {
		if err := checkEndpointURL(*b.URL, allowPrivate); err != nil {
			return err
		}
		e.URL = *b.URL
	}
	if b.Name != nil {
		e.Name = *b.Name
	}
	if b.EventTypes != nil {
		if err := checkEventTypes(b.EventTypes); err != nil {
			return err
		}
		e.EventTypes = b.EventTypes
	}
	return nil
}

func (d Deps) rotateWebhookSecret(ctx context.Context, in *rotateInput) (*webhookEndpointOutput, error) {
	var keep time.Duration
	if in.Body != nil && in.Body.KeepOld {
		keep = 24 * time.Hour
	}
	if _, err := d.endpoint(ctx, in.EndpointID); err != nil {
		return nil, err
	}
	e, err := d.Store.WebhookEndpointRotate(ctx, in.EndpointID, functions.NewSecret(), keep)
	if err != nil {
		return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
	}
	out := endpointOf(e)
	out.SigningSecret = e.Secret
	return &webhookEndpointOutput{Body: out}, nil
}

func (d Deps) testWebhookEndpoint(ctx context.Context, in *testInput) (*webhookEndpointTestOutput, error) {
	e, err := d.endpoint(ctx, in.EndpointID)
	if err != nil {
		return nil, err
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
	return &webhookEndpointTestOutput{Body: out}, nil
}

func (d Deps) deleteWebhookEndpoint(ctx context.Context, in *EndpointIDParam) (*webhookEndpointDeletedOutput, error) {
	if _, err := d.endpoint(ctx, in.EndpointID); err != nil {
		return nil, err
	}
	if err := d.Store.WebhookEndpointDelete(ctx, in.EndpointID); err != nil {
		return nil, notFoundOr(err, "webhook endpoint", in.EndpointID)
	}
	return &webhookEndpointDeletedOutput{Body: deleted{ID: in.EndpointID, Object: "webhook_endpoint.deleted", Deleted: true}}, nil
}

func (d Deps) listWebhookDeliveries(ctx context.Context, in *deliveryListInput) (*deliveryListOutput, error) {
	if _, err := d.endpoint(ctx, in.EndpointID); err != nil {
		return nil, err
	}
	list, more, err := d.Store.DeliveryList(ctx, in.EndpointID, in.Status, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := WebhookDeliveryList{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, deliveryOf, func(x store.Delivery) string { return x.ID })
	return &deliveryListOutput{Body: out}, nil
}

func (d Deps) redeliverWebhook(ctx context.Context, in *redeliverInput) (*deliveryOutput, error) {
	if _, err := d.endpoint(ctx, in.EndpointID); err != nil {
		return nil, err
	}
	cur, err := d.Store.DeliveryGet(ctx, in.DeliveryID)
	if err == nil && cur.EndpointID != in.EndpointID {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, notFoundOr(err, "delivery", in.DeliveryID)
	}
	if _, err := d.endpoint(ctx, in.EndpointID); err != nil {
		return nil, err
	}
	out, err := d.Store.DeliveryRedeliver(ctx, in.DeliveryID)
	if errors.Is(err, store.ErrConflict) {
		return nil, apierror.New(http.StatusConflict, "delivery_pending", "", "The delivery is still pending; it is being retried.")
	}
	if err != nil {
		return nil, notFoundOr(err, "delivery", in.DeliveryID)
	}
	return &deliveryOutput{Body: deliveryOf(out)}, nil
}

// endpoint is a webhook endpoint of the request's project, or a 404.
func (d Deps) endpoint(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	e, err := d.Store.WebhookEndpointGet(ctx, id)
	if err == nil && !auth.Sees(ctx, e.ProjectID) {
		err = store.ErrNotFound
	}
	return e, notFoundOr(err, "webhook endpoint", id)
}
