package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/auth"
)

// A project's webhook endpoints, managed with an admin key: the routes of
// /v1/webhook_endpoints (webhooks.go), acting for the project in the path
// as a key of that project would. They are what a provisioning tool needs
// to register a project's receivers without holding one of its keys.

type adminEndpointCreateInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	Body      struct {
		_          struct{} `additionalProperties:"true"`
		URL        string   `json:"url" doc:"Where events are POSTed. A batch's metadata webhook_url must fall under a registered URL."`
		Name       string   `json:"name,omitempty" maxLength:"256" doc:"A human-readable name."`
		EventTypes []string `json:"event_types,omitempty" doc:"Event types to send; default: every batch.* event."`
	}
}

type adminEndpointInput struct {
	ProjectID  string `path:"project_id" doc:"The project's ID."`
	EndpointID string `path:"endpoint_id"`
}

type adminEndpointListInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	PageParams
}

type adminEndpointUpdateInput struct {
	ProjectID  string `path:"project_id" doc:"The project's ID."`
	EndpointID string `path:"endpoint_id"`
	Body       struct {
		_          struct{} `additionalProperties:"true"`
		URL        *string  `json:"url,omitempty"`
		Name       *string  `json:"name,omitempty" maxLength:"256"`
		EventTypes []string `json:"event_types,omitempty"`
	}
}

type adminEndpointRotateInput struct {
	ProjectID  string `path:"project_id" doc:"The project's ID."`
	EndpointID string `path:"endpoint_id"`
	Body       *struct {
		_       struct{} `additionalProperties:"true"`
		KeepOld bool     `json:"keep_old_secret_active_for_24_hours,omitempty" doc:"Sign with both secrets for 24 hours."`
	}
}

func registerAdminWebhooks(api huma.API, d Deps) {
	tags := []string{"Webhooks (kiln extension)"}
	const base = "/v1/organization/projects/{project_id}/webhook_endpoints"
	note := " kiln extension: POST /v1/webhook_endpoints and its kin for the project in the path, with an admin key."
	huma.Register(api, huma.Operation{
		OperationID: "adminCreateWebhookEndpoint", Method: http.MethodPost, Path: base,
		Summary: "Create a project's webhook endpoint", Tags: tags, Security: adminSecurity,
		Description: "The answer alone shows the signing secret." + note,
	}, d.adminCreateWebhookEndpoint)
	huma.Register(api, huma.Operation{
		OperationID: "adminListWebhookEndpoints", Method: http.MethodGet, Path: base,
		Summary: "List a project's webhook endpoints", Tags: tags, Security: adminSecurity,
		Description: "Newest first." + note,
	}, d.adminListWebhookEndpoints)
	huma.Register(api, huma.Operation{
		OperationID: "adminRetrieveWebhookEndpoint", Method: http.MethodGet, Path: base + "/{endpoint_id}",
		Summary: "Retrieve a project's webhook endpoint", Tags: tags, Security: adminSecurity, Description: note[1:],
	}, d.adminRetrieveWebhookEndpoint)
	huma.Register(api, huma.Operation{
		OperationID: "adminUpdateWebhookEndpoint", Method: http.MethodPost, Path: base + "/{endpoint_id}",
		Summary: "Update a project's webhook endpoint", Tags: tags, Security: adminSecurity,
		Description: "Changes the URL, name or event types given." + note,
	}, d.adminUpdateWebhookEndpoint)
	huma.Register(api, huma.Operation{
		OperationID: "adminRotateWebhookSecret", Method: http.MethodPost, Path: base + "/{endpoint_id}/rotate_secret",
		Summary: "Rotate a project's webhook signing secret", Tags: tags, Security: adminSecurity,
		Description: "Answers the new secret, shown only here." + note,
	}, d.adminRotateWebhookSecret)
	huma.Register(api, huma.Operation{
		OperationID: "adminDeleteWebhookEndpoint", Method: http.MethodDelete, Path: base + "/{endpoint_id}",
		Summary: "Delete a project's webhook endpoint", Tags: tags, Security: adminSecurity,
		Description: "Nothing more is sent to it." + note,
	}, d.adminDeleteWebhookEndpoint)
}

// asProject is ctx acting for a project as one of its keys with every
// scope, once the project is there; the actor of the audit log stays the
// admin key.
func (d Deps) asProject(ctx context.Context, project string, live bool) (context.Context, error) {
	check := d.project
	if live {
		check = d.liveProject
	}
	if _, err := check(ctx, project); err != nil {
		return nil, err
	}
	return auth.NewContext(ctx, auth.Principal{ProjectID: project}), nil
}

func (d Deps) adminCreateWebhookEndpoint(ctx context.Context, in *adminEndpointCreateInput) (*webhookEndpointOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, true)
	if err != nil {
		return nil, err
	}
	return d.createWebhookEndpoint(ctx, &endpointCreateInput{Body: in.Body})
}

func (d Deps) adminListWebhookEndpoints(ctx context.Context, in *adminEndpointListInput) (*webhookEndpointListOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, false)
	if err != nil {
		return nil, err
	}
	return d.listWebhookEndpoints(ctx, &in.PageParams)
}

func (d Deps) adminRetrieveWebhookEndpoint(ctx context.Context, in *adminEndpointInput) (*webhookEndpointOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, false)
	if err != nil {
		return nil, err
	}
	return d.retrieveWebhookEndpoint(ctx, &EndpointIDParam{EndpointID: in.EndpointID})
}

func (d Deps) adminUpdateWebhookEndpoint(ctx context.Context, in *adminEndpointUpdateInput) (*webhookEndpointOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, true)
	if err != nil {
		return nil, err
	}
	return d.updateWebhookEndpoint(ctx, &endpointUpdateInput{EndpointIDParam: EndpointIDParam{EndpointID: in.EndpointID}, Body: in.Body})
}

func (d Deps) adminRotateWebhookSecret(ctx context.Context, in *adminEndpointRotateInput) (*webhookEndpointOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, true)
	if err != nil {
		return nil, err
	}
	return d.rotateWebhookSecret(ctx, &rotateInput{EndpointIDParam: EndpointIDParam{EndpointID: in.EndpointID}, Body: in.Body})
}

func (d Deps) adminDeleteWebhookEndpoint(ctx context.Context, in *adminEndpointInput) (*webhookEndpointDeletedOutput, error) {
	ctx, err := d.asProject(ctx, in.ProjectID, false)
	if err != nil {
		return nil, err
	}
	return d.deleteWebhookEndpoint(ctx, &EndpointIDParam{EndpointID: in.EndpointID})
}
