package provider

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
)

// BatchEventTypes are the events an endpoint gets without event_types, as
// kiln's own default (api/webhooks.go).
var BatchEventTypes = []string{"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}

// webhookEndpointResource is kiln_webhook_endpoint: a project's webhook
// receiver. Its URL, name and events change in place; a new
// rotation_trigger rotates its signing secret.
type webhookEndpointResource struct{ client *Client }

var (
	_ resource.ResourceWithConfigure   = (*webhookEndpointResource)(nil)
	_ resource.ResourceWithImportState = (*webhookEndpointResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*webhookEndpointResource)(nil)
)

func newWebhookEndpointResource() resource.Resource { return &webhookEndpointResource{} }

type webhookEndpointModel struct {
	ID              types.String `tfsdk:"id"`
	Project         types.String `tfsdk:"project"`
	URL             types.String `tfsdk:"url"`
	Name            types.String `tfsdk:"name"`
	EventTypes      types.Set    `tfsdk:"event_types"`
	Secret          types.String `tfsdk:"secret"`
	SecretHint      types.String `tfsdk:"secret_hint"`
	RotationTrigger types.String `tfsdk:"rotation_trigger"`
	CreatedAt       types.Int64  `tfsdk:"created_at"`
}

func (r *webhookEndpointResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_webhook_endpoint"
}

func (r *webhookEndpointResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	events, _ := types.SetValueFrom(context.Background(), types.StringType, BatchEventTypes)
	resp.Schema = schema.Schema{
		Description: "A project's webhook endpoint: kiln POSTs the events to its URL, signed with its secret (Standard Webhooks). " +
			"Import with ID or PROJECT_ID/ID; an imported endpoint's secret is unknown (null) until rotated.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "The endpoint's ID (we_…).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"project": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(defaultProject),
				Description:   "The project whose events the endpoint gets. Default: " + defaultProject + ".",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"url": schema.StringAttribute{
				Required:    true,
				Description: "Where kiln POSTs events. kiln refuses private and loopback addresses unless it runs with KILN_WEBHOOK_ALLOW_PRIVATE.",
			},
			"name": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(""),
				Description: "A human-readable name.",
			},
			"event_types": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true, Default: setdefault.StaticValue(events),
				Description: "The event types sent. Default: every batch.* event.",
			},
			"secret": schema.StringAttribute{
				Computed: true, Sensitive: true,
				Description:   "The whsec_ signing secret, which kiln shows only when it makes or rotates it.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"secret_hint": schema.StringAttribute{
				Computed: true, Description: "The end of the signing secret, to tell secrets apart.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"rotation_trigger": schema.StringAttribute{
				Optional:    true,
				Description: "Any value; changing it rotates the signing secret (the old one stops at once).",
			},
			"created_at": schema.Int64Attribute{
				Computed: true, Description: "When the endpoint was made (Unix seconds).",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *webhookEndpointResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientOf(req.ProviderData, &resp.Diagnostics)
}

// ModifyPlan marks the secret as changing when rotation_trigger does, so
// that what depends on the secret is planned with the new one.
func (r *webhookEndpointResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return // a create or a destroy
	}
	var plan, state webhookEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || plan.RotationTrigger.Equal(state.RotationTrigger) {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("secret"), types.StringUnknown())...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("secret_hint"), types.StringUnknown())...)
}

func (r *webhookEndpointResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan webhookEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body, diags := plan.body(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	var e webhookEndpoint
	if err := r.client.admin(ctx, http.MethodPost, endpointsPath(plan.Project.ValueString()), body, &e); err != nil {
		resp.Diagnostics.AddError("Could not create the webhook endpoint", err.Error())
		return
	}
	plan.Secret = types.StringValue(e.SigningSecret)
	resp.Diagnostics.Append(plan.set(ctx, e)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *webhookEndpointResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state webhookEndpointModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var e webhookEndpoint
	err := r.client.admin(ctx, http.MethodGet, state.path(), nil, &e)
	if isStatus(err, http.StatusNotFound) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Could not read the webhook endpoint", err.Error())
		return
	}
	resp.Diagnostics.Append(state.set(ctx, e)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *webhookEndpointResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state webhookEndpointModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.ID = state.ID
	body, diags := plan.body(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	var e webhookEndpoint
	if err := r.client.admin(ctx, http.MethodPost, plan.path(), body, &e); err != nil {
		resp.Diagnostics.AddError("Could not update the webhook endpoint", err.Error())
		return
	}
	plan.Secret = state.Secret
	if !plan.RotationTrigger.Equal(state.RotationTrigger) {
		if err := r.client.admin(ctx, http.MethodPost, plan.path()+"/rotate_secret", nil, &e); err != nil {
			resp.Diagnostics.AddError("Could not rotate the webhook endpoint's secret", err.Error())
			return
		}
		plan.Secret = types.StringValue(e.SigningSecret)
	}
	resp.Diagnostics.Append(plan.set(ctx, e)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *webhookEndpointResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state webhookEndpointModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := r.client.admin(ctx, http.MethodDelete, state.path(), nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
		resp.Diagnostics.AddError("Could not delete the webhook endpoint", err.Error())
	}
}

func (r *webhookEndpointResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	project, id, err := splitImportID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("project"), project)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("secret"), types.StringNull())...)
}

// body is the create or update request.
func (m *webhookEndpointModel) body(ctx context.Context) (map[string]any, diagnostics) {
	var events []string
	diags := m.EventTypes.ElementsAs(ctx, &events, false)
	return map[string]any{"url": m.URL.ValueString(), "name": m.Name.ValueString(), "event_types": events}, diags
}

// set copies what kiln says of the endpoint into m; the secret stays m's.
func (m *webhookEndpointModel) set(ctx context.Context, e webhookEndpoint) (diags diagnostics) {
	m.ID = types.StringValue(e.ID)
	m.URL = types.StringValue(e.URL)
	m.Name = types.StringValue(e.Name)
	m.SecretHint = types.StringValue(e.SigningSecretHint)
	m.CreatedAt = types.Int64Value(e.CreatedAt)
	m.EventTypes, diags = types.SetValueFrom(ctx, types.StringType, nonNil(e.EventTypes))
	if m.Secret.IsUnknown() {
		m.Secret = basetypes.NewStringNull()
	}
	return diags
}

func (m *webhookEndpointModel) path() string {
	return endpointsPath(m.Project.ValueString()) + "/" + url.PathEscape(m.ID.ValueString())
}

func endpointsPath(project string) string {
	return "/v1/organization/projects/" + url.PathEscape(project) + "/webhook_endpoints"
}
