// Command terraform-provider-kiln is kiln's Terraform and OpenTofu
// provider (terraform/provider). Terraform starts it; it is not run by
// hand, except with -debug to attach a debugger.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/kilnhq/kiln/terraform/provider"
)

// version is the provider's version, set at build time with
// -ldflags "-X main.version=…".
var version = "0.1.0"

func main() {
	debug := flag.Bool("debug", false, "run with support for debuggers such as delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: provider.Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
