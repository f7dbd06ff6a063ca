package provider

import (
	"context"
	"errors"
	"net/http"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var errNoAPIKey = errors.New("no API key to read with: set the data source's api_key, the provider's api_key or KILN_API_KEY")

// conquestTypesDataSource is kiln_conquest_types: the conquest types kiln
// knows (GET /v1/conquests), read with a project API key.
type conquestTypesDataSource struct{ client *Client }

var _ datasource.DataSourceWithConfigure = (*conquestTypesDataSource)(nil)

func newConquestTypesDataSource() datasource.DataSource { return &conquestTypesDataSource{} }

type conquestTypesModel struct {
	APIKey types.String        `tfsdk:"api_key"`
	IDs    types.List          `tfsdk:"ids"`
	Types  []conquestTypeModel `tfsdk:"types"`
}

type conquestTypeModel struct {
	ID          types.String `tfsdk:"id"`
	Version     types.Int64  `tfsdk:"version"`
	Versions    types.List   `tfsdk:"versions"`
	Title       types.String `tfsdk:"title"`
	Description types.String `tfsdk:"description"`
}

func (d *conquestTypesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_conquest_types"
}

func (d *conquestTypesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The conquest types kiln knows (GET /v1/conquests): structured-output task definitions, each at its newest version.",
		Attributes: map[string]schema.Attribute{
			"api_key": apiKeyAttribute(),
			"ids": schema.ListAttribute{
				ElementType: types.StringType, Computed: true, Description: "The types' IDs.",
			},
			"types": schema.ListNestedAttribute{
				Computed: true, Description: "The types.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"id":          schema.StringAttribute{Computed: true},
					"version":     schema.Int64Attribute{Computed: true, Description: "The newest version."},
					"versions":    schema.ListAttribute{ElementType: types.Int64Type, Computed: true, Description: "Every version kiln knows."},
					"title":       schema.StringAttribute{Computed: true},
					"description": schema.StringAttribute{Computed: true},
				}},
			},
		},
	}
}

func (d *conquestTypesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientOf(req.ProviderData, &resp.Diagnostics)
}

func (d *conquestTypesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m conquestTypesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var got list[conquestType]
	if err := d.client.project(ctx, m.APIKey, http.MethodGet, "/v1/conquests", &got); err != nil {
		resp.Diagnostics.AddError("Could not list kiln's conquest types", err.Error())
		return
	}
	ids := make([]string, len(got.Data))
	m.Types = make([]conquestTypeModel, len(got.Data))
	for i, x := range got.Data {
		ids[i] = x.ID
		versions, diags := types.ListValueFrom(ctx, types.Int64Type, x.Versions)
		resp.Diagnostics.Append(diags...)
		m.Types[i] = conquestTypeModel{ID: types.StringValue(x.ID), Version: types.Int64Value(x.Version), Versions: versions,
			Title: types.StringValue(x.Title), Description: types.StringValue(x.Description)}
	}
	var diags diagnostics
	m.IDs, diags = types.ListValueFrom(ctx, types.StringType, ids)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
