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
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// curatorResource is kiln_curator: a curator of the curation workbench and
// their key. kiln changes no curator in place, so any change makes a new
// one (with a new key) and revokes the old.
type curatorResource struct{ client *Client }

var (
	_ resource.ResourceWithConfigure   = (*curatorResource)(nil)
	_ resource.ResourceWithImportState = (*curatorResource)(nil)
)

func newCuratorResource() resource.Resource { return &curatorResource{} }

type curatorModel struct {
	ID        types.String `tfsdk:"id"`
	Name      types.String `tfsdk:"name"`
	Role      types.String `tfsdk:"role"`
	Projects  types.Set    `tfsdk:"projects"`
	Key       types.String `tfsdk:"key"`
	KeyPrefix types.String `tfsdk:"key_prefix"`
	CreatedAt types.Int64  `tfsdk:"created_at"`
}

func (r *curatorResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_curator"
}

func (r *curatorResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A curator of kiln's curation workbench, with their key (ck-…). Changing any argument makes a new curator " +
			"with a new key and revokes the old one. Destroying revokes the key; a curator revoked outside Terraform is made " +
			"again at the next apply. Import by ID; an imported curator's key is unknown (null).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, Description: "The curator's ID (cur_…).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true, Description: "Who the curator is: a name or an email address.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"role": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString("curator"),
				Description:   "curator (the default), or admin: manages the workbench and may work in several projects.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"projects": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				Description: "The IDs of the projects the curator works in: one for a curator. Default: " + defaultProject + ".",
				PlanModifiers: []planmodifier.Set{
					setplanmodifier.RequiresReplace(),
					setplanmodifier.UseStateForUnknown(),
				},
			},
			"key": schema.StringAttribute{
				Computed: true, Sensitive: true,
				Description:   "The curator's key, which kiln shows only when it makes the curator; they sign in to /curation/ with it.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"key_prefix": schema.StringAttribute{
				Computed: true, Description: "The start of the key, to tell keys apart.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"created_at": schema.Int64Attribute{
				Computed: true, Description: "When the curator was made (Unix seconds).",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *curatorResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientOf(req.ProviderData, &resp.Diagnostics)
}

func (r *curatorResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan curatorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body := map[string]any{"name": plan.Name.ValueString(), "role": plan.Role.ValueString()}
	if !plan.Projects.IsNull() && !plan.Projects.IsUnknown() {
		var projects []string
		resp.Diagnostics.Append(plan.Projects.ElementsAs(ctx, &projects, false)...)
		body["projects"] = projects
	}
	if resp.Diagnostics.HasError() {
		return
	}
	var c curator
	if err := r.client.admin(ctx, http.MethodPost, "/v1/organization/curators", body, &c); err != nil {
		resp.Diagnostics.AddError("Could not create the curator", err.Error())
		return
	}
	plan.Key = types.StringValue(c.Key)
	resp.Diagnostics.Append(plan.set(ctx, c)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *curatorResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state curatorModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var c curator
	err := r.client.admin(ctx, http.MethodGet, curatorPath(state.ID.ValueString()), nil, &c)
	if isStatus(err, http.StatusNotFound) || err == nil && c.RevokedAt != nil {
		// A revoked curator's key is dead: the plan makes a new one.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Could not read the curator", err.Error())
		return
	}
	resp.Diagnostics.Append(state.set(ctx, c)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update is never called with a change kiln could make: every argument
// replaces the curator. It keeps the planned state.
func (r *curatorResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan curatorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *curatorResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state curatorModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	err := r.client.admin(ctx, http.MethodDelete, curatorPath(state.ID.ValueString()), nil, nil)
	if err != nil && !isStatus(err, http.StatusNotFound) && !isStatus(err, http.StatusConflict) {
		resp.Diagnostics.AddError("Could not revoke the curator", err.Error())
	}
}

func (r *curatorResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// set copies what kiln says of the curator into m; the key stays m's.
func (m *curatorModel) set(ctx context.Context, c curator) (diags diagnostics) {
	m.ID = types.StringValue(c.ID)
	m.Name = types.StringValue(c.Name)
	m.Role = types.StringValue(c.Role)
	m.KeyPrefix = types.StringValue(c.KeyPrefix)
	m.CreatedAt = types.Int64Value(c.CreatedAt)
	m.Projects, diags = types.SetValueFrom(ctx, types.StringType, nonNil(c.Projects))
	if m.Key.IsUnknown() {
		m.Key = types.StringNull()
	}
	return diags
}

func curatorPath(id string) string { return "/v1/organization/curators/" + url.PathEscape(id) }
