// Package openaispec validates JSON documents against OpenAI's published
// schemas, so that tests can prove kiln's /v1 responses, webhook payloads and
// batch result lines are what the official OpenAI SDKs expect.
//
// The schemas live in schemas.json, extracted from OpenAI's openapi.yaml and
// rewritten for JSON Schema 2020-12 by ./gen. That file is embedded, so
// validation needs nothing outside the repository.
//
// Like OpenAI's SDKs, validation treats null as absent for every property an
// object does not list as required: OpenAI's own responses send null for
// optional properties the spec types plainly (Batch.output_file_id,
// Batch.completed_at). The generator bakes this into schemas.json by letting
// each such property also be null, rather than stripping nulls from the
// document, so that the schema reported in an error is the one applied.
// Required properties stay strict: a required string must not be null.
//
// Formats (such as OpenAI's "unixtime") are annotations only and are not
// asserted.
package openaispec

//go:generate go run ./gen -spec ../../../shared/openai/openapi.yaml -lines ../../../shared/openai/batch-lines.yaml -out schemas.json

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ErrUnknownSchema is returned by Validate for a schema name that
// schemas.json does not define.
var ErrUnknownSchema = errors.New("openaispec: unknown schema")

//go:embed schemas.json
var schemasJSON []byte

// schemasURL names schemas.json for the compiler; .invalid keeps it from
// ever being fetched.
const schemasURL = "https://kiln.invalid/openaispec/schemas.json"

var compiled = sync.OnceValues(compile)

// compile compiles every schema of schemas.json. A failure is a bug in the
// generator or a hand edit of schemas.json, so it is reported on each use.
func compile() (map[string]*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemasJSON))
	if err != nil {
		return nil, fmt.Errorf("openaispec: parse schemas.json: %w", err)
	}
	names, err := defNames()
	if err != nil {
		return nil, err
	}

	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(schemasURL, doc); err != nil {
		return nil, fmt.Errorf("openaispec: load schemas.json: %w", err)
	}
	schemas := make(map[string]*jsonschema.Schema, len(names))
	for _, name := range names {
		sch, err := c.Compile(schemasURL + "#/$defs/" + name)
		if err != nil {
			return nil, fmt.Errorf("openaispec: compile %s: %w", name, err)
		}
		schemas[name] = sch
	}
	return schemas, nil
}

// Schemas returns the names of the schemas Validate knows, sorted: those
// kiln serves (Batch, OpenAIFile, ErrorResponse, ...) and the ones they
// reference (BatchError, Metadata, ...).
func Schemas() []string {
	names, _ := defNames() // A broken schemas.json fails every Validate.
	return names
}

// defNames returns the names under $defs in schemas.json, sorted.
func defNames() ([]string, error) {
	var doc struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(schemasJSON, &doc); err != nil {
		return nil, fmt.Errorf("openaispec: parse schemas.json: %w", err)
	}
	return slices.Sorted(maps.Keys(doc.Defs)), nil
}

// Validate checks the JSON document doc against the named schema, such as
// "Batch", "ListFilesResponse", "ErrorResponse" or "BatchRequestOutput".
// A null property that the schema does not require passes as if absent.
// A document that does not match yields an error wrapping a
// *jsonschema.ValidationError, whose GoString (%#v) also names the schema
// keyword that failed.
func Validate(schema string, doc []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	sch, ok := schemas[schema]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownSchema, schema)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("openaispec: %s: document is not JSON: %w", schema, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("openaispec: %s: %w", schema, err)
	}
	return nil
}

// MustValidate fails the test at once, require-style, unless doc is valid
// against the named schema. The failure shows where the document broke the
// schema and the document itself.
func MustValidate(t testing.TB, schema string, doc []byte) {
	t.Helper()
	err := Validate(schema, doc)
	if err == nil {
		return
	}
	msg := err.Error()
	if verr, ok := errors.AsType[*jsonschema.ValidationError](err); ok {
		msg = fmt.Sprintf("openaispec: %s: %#v", schema, verr)
	}
	t.Fatalf("document does not match OpenAI schema %s:\n%s\ndocument:\n%s", schema, msg, doc)
}
