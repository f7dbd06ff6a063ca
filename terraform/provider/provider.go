// Package provider is kiln's Terraform (and OpenTofu) provider, on
// terraform-plugin-framework: project API keys, curators and webhook
// endpoints as resources, and the models and conquest types a kiln serves
// as data sources. It talks to kiln's Administration API with an admin key;
// cmd/terraform-provider-kiln serves it.
package provider

import (
	"cmp"
	"context"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// Address is the provider's source address, which a filesystem mirror
// serves it under.
const Address = "registry.opentofu.org/kiln/kiln"

// BaseURLDefault is where the provider finds kiln without base_url or
// KILN_BASE_URL: `kiln serve`'s default address.
const BaseURLDefault = "http://localhost:4080"

// The environment variables the provider reads when its configuration
// leaves an attribute out.
const (
	EnvBaseURL  = "KILN_BASE_URL"
	EnvAdminKey = "KILN_ADMIN_KEY"
	EnvAPIKey   = "KILN_API_KEY"
)

// kilnProvider is the provider; version is the build's.
type kilnProvider struct {
	version string
}

var _ provider.Provider = (*kilnProvider)(nil)

// New returns the provider's factory, as providerserver.Serve takes it.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &kilnProvider{version: version} }
}

type providerModel struct {
	BaseURL  types.String `tfsdk:"base_url"`
	AdminKey types.String `tfsdk:"admin_key"`
	APIKey   types.String `tfsdk:"api_key"`
}

func (p *kilnProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "kiln"
	resp.Version = p.version
}

func (p *kilnProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Manages a kiln server's project API keys, curators and webhook endpoints through its Administration API.",
		Attributes: map[string]schema.Attribute{
			"base_url": schema.StringAttribute{
				Optional:    true,
				Description: "kiln's address, such as http://127.0.0.1:4080 (a trailing /v1 is ignored). Default: KILN_BASE_URL, else " + BaseURLDefault + ".",
			},
			"admin_key": schema.StringAttribute{
				Optional: true, Sensitive: true,
				Description: "An admin key (KILN_ADMIN_KEY of the server, or one made by `kiln admin-keys create`). Default: KILN_ADMIN_KEY.",
			},
			"api_key": schema.StringAttribute{
				Optional: true, Sensitive: true,
				Description: "A project API key, which the data sources read with unless they name their own. Default: KILN_API_KEY.",
			},
		},
	}
}

func (p *kilnProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.BaseURL.IsUnknown() || cfg.AdminKey.IsUnknown() || cfg.APIKey.IsUnknown() {
		// Known at apply; the plan goes on without a client, as the
		// framework's documentation advises.
		return
	}
	base, err := NormalizeBaseURL(cmp.Or(cfg.BaseURL.ValueString(), os.Getenv(EnvBaseURL), BaseURLDefault))
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("base_url"), "Invalid kiln base URL", err.Error())
		return
	}
	c := &Client{
		BaseURL:  base,
		AdminKey: cmp.Or(cfg.AdminKey.ValueString(), os.Getenv(EnvAdminKey)),
		APIKey:   cmp.Or(cfg.APIKey.ValueString(), os.Getenv(EnvAPIKey)),
	}
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *kilnProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newAPIKeyResource, newCuratorResource, newWebhookEndpointResource}
}

func (p *kilnProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{newModelsDataSource, newConquestTypesDataSource}
}

// clientOf is the provider's client from a resource's or data source's
// Configure, or nil before the provider is configured.
func clientOf(data any, diags interface{ AddError(string, string) }) *Client {
	if data == nil {
		return nil
	}
	c, ok := data.(*Client)
	if !ok {
		diags.AddError("Unexpected provider data", "The kiln provider passed its resources something other than its client; this is a bug.")
		return nil
	}
	return c
}
