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
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// apiKeyResource is kiln_api_key: a project API key. kiln cannot rename a
// key or change its scopes, so any change replaces it; its secret is known
// only to the state of the apply that made it.
type apiKeyResource struct{ client *Client }

var (
	_ resource.ResourceWithConfigure   = (*apiKeyResource)(nil)
	_ resource.ResourceWithImportState = (*apiKeyResource)(nil)
)

func newAPIKeyResource() resource.Resource { return &apiKeyResource{} }

type apiKeyModel struct {
	ID            types.String `tfsdk:"id"`
	Project       types.String `tfsdk:"project"`
	Name          types.String `tfsdk:"name"`
	Scopes        types.Set    `tfsdk:"scopes"`
	Secret        types.String `tfsdk:"secret"`
	RedactedValue types.String `tfsdk:"redacted_value"`
	CreatedAt     types.Int64  `tfsdk:"created_at"`
}

func (r *apiKeyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_api_key"
}

func (r *apiKeyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A project API key (sk-kiln-…). Changing any argument replaces the key. Deleting it, here or elsewhere, " +
			"revokes it; a key revoked outside Terraform is made again at the next apply. Import with ID or PROJECT_ID/ID; " +
			"an imported key's secret is unknown (null).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "The key's ID (key_…).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"project": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(defaultProject),
				Description:   "The project the key opens. Default: " + defaultProject + ".",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"name": schema.StringAttribute{
				Required: true, Description: "The key's name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"scopes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				Default:       setdefault.StaticValue(types.SetValueMust(types.StringType, nil)),
				Description:   "The scopes the key is limited to: api.read, api.batches, api.agent. Empty (the default): every scope.",
				PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()},
			},
			"secret": schema.StringAttribute{
				Computed: true, Sensitive: true,
				Description:   "The key's secret, which kiln shows only when it makes the key.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"redacted_value": schema.StringAttribute{
				Computed: true, Description: "The start of the secret, to tell keys apart.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"created_at": schema.Int64Attribute{
				Computed: true, Description: "When the key was made (Unix seconds).",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *apiKeyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientOf(req.ProviderData, &resp.Diagnostics)
}

func (r *apiKeyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan apiKeyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var scopes []string
	resp.Diagnostics.Append(plan.Scopes.ElementsAs(ctx, &scopes, false)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var k apiKey
	err := r.client.admin(ctx, http.MethodPost, keysPath(plan.Project.ValueString()), map[string]any{"name": plan.Name.ValueString(), "scopes": scopes}, &k)
	if err != nil {
		resp.Diagnostics.AddError("Could not create the API key", err.Error())
		return
	}
	plan.Secret = types.StringValue(k.Value)
	resp.Diagnostics.Append(plan.set(ctx, k)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *apiKeyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state apiKeyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var k apiKey
	err := r.client.admin(ctx, http.MethodGet, keysPath(state.Project.ValueString())+"/"+url.PathEscape(state.ID.ValueString()), nil, &k)
	if isStatus(err, http.StatusNotFound) {
		// Revoked, rotated away or gone: the plan makes it again.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Could not read the API key", err.Error())
		return
	}
	resp.Diagnostics.Append(state.set(ctx, k)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update is never called with a change kiln could make: every argument
// replaces the key. It keeps the planned state.
func (r *apiKeyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan apiKeyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *apiKeyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state apiKeyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	err := r.client.admin(ctx, http.MethodDelete, keysPath(state.Project.ValueString())+"/"+url.PathEscape(state.ID.ValueString()), nil, nil)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		resp.Diagnostics.AddError("Could not revoke the API key", err.Error())
	}
}

func (r *apiKeyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	project, id, err := splitImportID(req.ID)
	if err != nil {
		resp.Diagnostics.AddError("Invalid import ID", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("project"), project)...)
}

// set copies what kiln says of the key into m; the secret stays m's.
func (m *apiKeyModel) set(ctx context.Context, k apiKey) (diags diagnostics) {
	m.ID = types.StringValue(k.ID)
	m.Name = types.StringValue(k.Name)
	m.RedactedValue = types.StringValue(k.RedactedValue)
	m.CreatedAt = types.Int64Value(k.CreatedAt)
	m.Scopes, diags = types.SetValueFrom(ctx, types.StringType, nonNil(k.Scopes))
	return diags
}

func keysPath(project string) string {
	return "/v1/organization/projects/" + url.PathEscape(project) + "/api_keys"
}

// nonNil is s, or an empty slice for nil, so that a set is empty rather
// than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
