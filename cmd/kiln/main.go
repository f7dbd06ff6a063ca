// Command kiln is an OpenAI-compatible Batch API for local LLMs. See the
// README, or run kiln --help.
package main

import (
	"os"

	"github.com/kilnhq/kiln/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
