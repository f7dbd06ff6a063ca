package provider

import (
	"cmp"
	"context"
	"net/http"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// modelsDataSource is kiln_models: the models kiln's live GPU agents serve
// now (GET /v1/models), read with a project API key.
type modelsDataSource struct{ client *Client }

var _ datasource.DataSourceWithConfigure = (*modelsDataSource)(nil)

func newModelsDataSource() datasource.DataSource { return &modelsDataSource{} }

type modelsModel struct {
	APIKey types.String `tfsdk:"api_key"`
	IDs    types.List   `tfsdk:"ids"`
	Models []modelModel `tfsdk:"models"`
}

type modelModel struct {
	ID        types.String `tfsdk:"id"`
	OwnedBy   types.String `tfsdk:"owned_by"`
	Synthetic types.Bool   `tfsdk:"synthetic"`
	Agents    types.Int64  `tfsdk:"agents"`
}

func (d *modelsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_models"
}

func (d *modelsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The models that kiln's live GPU agents serve (GET /v1/models). A model of the built-in simulator has owned_by kiln-sim and synthetic true.",
		Attributes: map[string]schema.Attribute{
			"api_key": apiKeyAttribute(),
			"ids": schema.ListAttribute{
				ElementType: types.StringType, Computed: true, Description: "The models' IDs, as batch requests name them.",
			},
			"models": schema.ListNestedAttribute{
				Computed: true, Description: "The models.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"id":        schema.StringAttribute{Computed: true},
					"owned_by":  schema.StringAttribute{Computed: true},
					"synthetic": schema.BoolAttribute{Computed: true, Description: "Served by kiln's simulator: its outputs are synthetic."},
					"agents":    schema.Int64Attribute{Computed: true, Description: "How many live agents serve it."},
				}},
			},
		},
	}
}

// apiKeyAttribute is the data sources' own API key.
func apiKeyAttribute() schema.StringAttribute {
	return schema.StringAttribute{
		Optional: true, Sensitive: true,
		Description: "A project API key to read with (a kiln_api_key's secret, say). Default: the provider's api_key.",
	}
}

func (d *modelsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientOf(req.ProviderData, &resp.Diagnostics)
}

func (d *modelsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m modelsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var got list[model]
	if err := d.client.project(ctx, m.APIKey, http.MethodGet, "/v1/models", &got); err != nil {
		resp.Diagnostics.AddError("Could not list kiln's models", err.Error())
		return
	}
	ids := make([]string, len(got.Data))
	m.Models = make([]modelModel, len(got.Data))
	for i, x := range got.Data {
		ids[i] = x.ID
		m.Models[i] = modelModel{ID: types.StringValue(x.ID), OwnedBy: types.StringValue(x.OwnedBy),
			Synthetic: types.BoolValue(x.Synthetic), Agents: types.Int64Value(x.Agents)}
	}
	var diags diagnostics
	m.IDs, diags = types.ListValueFrom(ctx, types.StringType, ids)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// project calls a project route with key, else the provider's API key.
func (c *Client) project(ctx context.Context, key types.String, method, path string, out any) error {
	if c == nil {
		return errNotConfigured
	}
	token := cmp.Or(key.ValueString(), c.APIKey)
	if token == "" {
		return errNoAPIKey
	}
	return c.do(ctx, token, method, path, nil, out)
}
