package llmsimfuzz

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/kilnhq/kiln/internal/llmsim"
)

// seeds cover the keywords the generator supports, each in a few hundred
// bytes at most: the fuzzer minimises every new input it keeps, in time
// quadratic in its length, and counts no runs until it is done.
var seeds = []string{
	`{"type":"object","properties":{"name":{"type":"string","minLength":2,"maxLength":40},"age":{"type":"integer","minimum":0,"maximum":120},"tags":{"type":"array","items":{"enum":["a","b","c"]},"maxItems":3,"uniqueItems":true}},"required":["name","age"],"additionalProperties":false}`,
	`{"type":"array","prefixItems":[{"format":"date"},{"format":"date-time"},{"format":"uuid"},{"format":"email"},{"format":"uri"},{"format":"ipv6"}],"items":false}`,
	`{"type":"array","prefixItems":[{"type":"number","multipleOf":0.25,"minimum":1.1,"maximum":1.9},{"type":"integer","multipleOf":7,"exclusiveMinimum":14},{"type":"number","exclusiveMaximum":-3.5}],"minItems":3}`,
	`{"type":"string","pattern":"^[A-Z]{3}-\\d{4}(x|yz)?$"}`,
	`{"$ref":"#/$defs/n","$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"c":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":3}},"required":["v","c"],"additionalProperties":false}}}`,
	`{"anyOf":[{"type":"string","format":"date"},{"type":"integer","minimum":1900},{"type":"null"}]}`,
	`{"oneOf":[{"type":"integer","minimum":0},{"type":"integer","maximum":10}]}`,
	`{"allOf":[{"type":"object","properties":{"a":{"type":"string","maxLength":5}},"required":["a"]},{"properties":{"a":{"minLength":3},"b":{"type":"boolean"}},"required":["b"]}]}`,
	`{"type":"object","properties":{"c":{"enum":["red","green","blue"],"not":{"const":"green"}},"s":{"type":"string","not":{"pattern":"e"}}},"required":["c","s"]}`,
	`{"type":"object","properties":{"id":{"type":"integer"}},"required":["id","x"],"additionalProperties":{"type":"string","pattern":"^x+$"},"minProperties":4}`,
	`{"type":["string","null"],"enum":[1,"a",null,{"b":[true]}]}`,
	`{"properties":{"x":{},"y":true,"z":{"minimum":5}},"required":["x","y","z"]}`,
}

// supported are the keywords the generator understands, and annotations:
// the fuzz test holds it only to schemas made of them.
var supported = map[string]bool{
	"$ref": true, "$defs": true, "definitions": true, "$schema": true,
	"type": true, "enum": true, "const": true, "properties": true, "required": true,
	"additionalProperties": true, "minProperties": true, "maxProperties": true,
	"items": true, "prefixItems": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"multipleOf": true, "allOf": true, "anyOf": true, "oneOf": true, "not": true,
	"title": true, "description": true, "default": true, "examples": true,
}

// onlySupported reports whether every key in the schema document is a
// supported keyword or a name (of a property or a definition).
func onlySupported(v any, names bool) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, sub := range t {
			if names {
				if !onlySupported(sub, false) {
					return false
				}
				continue
			}
			switch {
			case !supported[k]:
				return false
			case k == "enum" || k == "const" || k == "default" || k == "examples":
			case !onlySupported(sub, k == "properties" || k == "$defs" || k == "definitions"):
				return false
			}
		}
	case []any:
		for _, e := range t {
			if !onlySupported(e, false) {
				return false
			}
		}
	}
	return true
}

// FuzzSchemaOutput checks that whatever the generator produces for a schema
// is valid under the reference validator.
func FuzzSchemaOutput(f *testing.F) {
	for _, s := range seeds {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, schema string, seed uint64) {
		var doc any
		if json.Unmarshal([]byte(schema), &doc) != nil || !onlySupported(doc, false) {
			return
		}
		out, err := llmsim.GenerateJSON([]byte(schema), seed)
		if err != nil {
			return // unsatisfiable, or beyond what kiln sim supports
		}
		// Compiling the reference costs more than generating: only for
		// schemas the generator answered.
		ref, err := compileReference(schema)
		if err != nil {
			return
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("output is not JSON: %v\nschema %s\noutput %s", err, schema, out)
		}
		if err := ref.Validate(inst); err != nil {
			t.Fatalf("invalid output: %v\nschema %s\noutput %s", err, schema, out)
		}
	})
}

func compileReference(schema string) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("schema.json")
}
