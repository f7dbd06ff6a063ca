// Package kiln holds what the binary embeds from the repository's
// top-level folders, which Go can embed only from here: the conquest type
// definitions in conquest_schemas/. The code that reads them is the
// conquest package (conquest_schemas/conquest).
package kiln

import "embed"

// ConquestSchemas are the conquest type definitions, conquest_schemas/*.json.
//
//go:embed conquest_schemas/*.json
var ConquestSchemas embed.FS
