package llmsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// testSchemas are non-trivial schemas of the kinds structured outputs use.
var testSchemas = map[string]string{
	"Person": `{
		"type": "object",
		"properties": {
			"name": {"type": "string", "minLength": 2, "maxLength": 40},
			"age": {"type": "integer", "minimum": 0, "maximum": 120},
			"email": {"type": "string", "format": "email"},
			"website": {"type": ["string", "null"], "format": "uri"},
			"address": {
				"type": "object",
				"properties": {
					"street": {"type": "string"},
					"city": {"type": "string", "minLength": 1},
					"zip": {"type": "string", "pattern": "^[0-9]{5}$"},
					"country": {"enum": ["US", "CA", "MX"]}
				},
				"required": ["street", "city", "zip", "country"],
				"additionalProperties": false
			},
			"tags": {
				"type": "array",
				"items": {"type": "string", "enum": ["admin", "dev", "ops", "qa", "pm"]},
				"minItems": 1,
				"maxItems": 5,
				"uniqueItems": true
			}
		},
		"required": ["name", "age", "email", "address", "tags"],
		"additionalProperties": false
	}`,
	"OrderWithDefs": `{
		"$defs": {
			"item": {
				"type": "object",
				"properties": {
					"sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
					"qty": {"type": "integer", "minimum": 1, "exclusiveMaximum": 100},
					"price": {"type": "number", "minimum": 0, "multipleOf": 0.01},
					"discount": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
				},
				"required": ["sku", "qty", "price"],
				"additionalProperties": false
			},
			"status": {"type": "string", "enum": ["pending", "paid", "shipped"]}
		},
		"type": "object",
		"properties": {
			"id": {"type": "string", "format": "uuid"},
			"created": {"type": "string", "format": "date-time"},
			"due": {"type": "string", "format": "date"},
			"status": {"$ref": "#/$defs/status"},
			"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
			"total": {"type": "integer", "multipleOf": 5, "minimum": 10, "maximum": 20}
		},
		"required": ["id", "created", "due", "status", "items", "total"],
		"additionalProperties": false
	}`,
	"AnyOfOneOf": `{
		"type": "object",
		"properties": {
			"when": {"anyOf": [
				{"type": "string", "format": "date"},
				{"type": "integer", "minimum": 1900, "maximum": 2100},
				{"type": "null"}
			]},
			"shape": {"oneOf": [
				{"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number", "exclusiveMinimum": 0}}, "required": ["kind", "r"], "additionalProperties": false},
				{"type": "object", "properties": {"kind": {"const": "rect"}, "w": {"type": "number"}, "h": {"type": "number"}}, "required": ["kind", "w", "h"], "additionalProperties": false}
			]},
			"overlap": {"oneOf": [
				{"type": "integer", "minimum": 0},
				{"type": "integer", "maximum": 10}
			]}
		},
		"required": ["when", "shape", "overlap"]
	}`,
	"AllOf": `{
		"allOf": [
			{"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}, "required": ["a"]},
			{"properties": {"b": {"type": "integer", "minimum": 3}, "a": {"minLength": 3}}, "required": ["b"]},
			{"properties": {"c": {"type": "boolean"}}}
		]
	}`,
	"RecursiveTree": `{
		"$ref": "#/definitions/node",
		"definitions": {
			"node": {
				"type": "object",
				"properties": {
					"value": {"type": "integer", "minimum": -5, "maximum": -1},
					"label": {"type": "string", "const": "node"},
					"children": {"type": "array", "items": {"$ref": "#/definitions/node"}, "maxItems": 3}
				},
				"required": ["value", "label", "children"],
				"additionalProperties": false
			}
		}
	}`,
	"OpenAIStrict": `{
		"type": "object",
		"properties": {
			"answer": {"type": "string"},
			"confidence": {"type": "number", "minimum": 0, "maximum": 1},
			"sources": {"type": "array", "items": {
				"type": "object",
				"properties": {"title": {"type": "string"}, "url": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}]}},
				"required": ["title", "url"],
				"additionalProperties": false
			}},
			"verdict": {"type": "string", "enum": ["yes", "no", "unsure"]},
			"notes": {"type": ["string", "null"]},
			"flag": {"type": "boolean"},
			"nothing": {"type": "null"}
		},
		"required": ["answer", "confidence", "sources", "verdict", "notes", "flag", "nothing"],
		"additionalProperties": false
	}`,
	"Formats": `{
		"type": "object",
		"properties": {
			"date": {"type": "string", "format": "date"},
			"time": {"type": "string", "format": "time"},
			"datetime": {"type": "string", "format": "date-time"},
			"email": {"type": "string", "format": "email"},
			"uri": {"type": "string", "format": "uri"},
			"uriref": {"type": "string", "format": "uri-reference"},
			"host": {"type": "string", "format": "hostname"},
			"ipv4": {"type": "string", "format": "ipv4"},
			"ipv6": {"type": "string", "format": "ipv6"},
			"uuid": {"type": "string", "format": "uuid"},
			"duration": {"type": "string", "format": "duration"},
			"pointer": {"type": "string", "format": "json-pointer"},
			"regex": {"type": "string", "format": "regex"}
		},
		"required": ["date", "time", "datetime", "email", "uri", "uriref", "host", "ipv4", "ipv6", "uuid", "duration", "pointer", "regex"]
	}`,
	"Numbers": `{
		"type": "array",
		"prefixItems": [
			{"type": "integer", "minimum": -1000000000000, "maximum": -999999999990},
			{"type": "number", "multipleOf": 0.25, "minimum": 1.1, "maximum": 1.9},
			{"type": "integer", "multipleOf": 7, "exclusiveMinimum": 14, "exclusiveMaximum": 28},
			{"type": "number", "minimum": 0.001, "maximum": 0.002},
			{"type": "number", "multipleOf": 0.1},
			{"type": "integer", "multipleOf": 2.5},
			{"type": "number", "maximum": -3.5}
		],
		"items": false,
		"minItems": 7
	}`,
	"ExtraProperties": `{
		"type": "object",
		"properties": {"id": {"type": "integer"}},
		"required": ["id", "extra"],
		"additionalProperties": {"type": "string", "pattern": "^x+$"},
		"minProperties": 4
	}`,
	"NestedArrays": `{
		"type": "array",
		"items": {"type": "array", "items": {"type": ["integer", "boolean"]}, "minItems": 2, "maxItems": 2},
		"minItems": 3,
		"maxItems": 3
	}`,
	"Not": `{
		"type": "object",
		"properties": {
			"color": {"type": "string", "enum": ["red", "green", "blue"], "not": {"const": "green"}},
			"n": {"type": "integer", "minimum": 0, "maximum": 3, "not": {"enum": [0, 1, 2]}},
			"s": {"type": "string", "not": {"pattern": "e"}}
		},
		"required": ["color", "n", "s"]
	}`,
	"ScalarRoot": `{"type": "string", "pattern": "^(yes|no|maybe)!?$"}`,
	"Untyped":    `{"properties": {"x": {}, "y": true, "z": {"minimum": 5}}, "required": ["x", "y", "z"]}`,
}

// compileReference compiles schema with the reference validator.
func compileReference(t testing.TB, schema string, assertFormat bool) (*jsonschema.Schema, error) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if assertFormat {
		c.AssertFormat()
	}
	if err := c.AddResource("schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("schema.json")
}

func compileOurs(t testing.TB, schemaText string) *schema {
	t.Helper()
	doc, err := decodeOrdered([]byte(schemaText))
	require.NoError(t, err)
	s, err := compileSchema(doc)
	require.NoError(t, err)
	return s
}

func validateReference(t testing.TB, ref *jsonschema.Schema, out []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	require.NoError(t, err, "output is not JSON: %s", out)
	return ref.Validate(inst)
}

func TestGenerateJSON(t *testing.T) {
	t.Parallel()

	for name, text := range testSchemas {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			ref, err := compileReference(t, text, true)
			require.NoError(t, err)
			s := compileOurs(t, text)

			distinct := map[string]bool{}
			for seed := range uint64(150) {
				out, err := generateJSON(s, requestHash(seed).rng(0))
				require.NoError(t, err, "seed %d", seed)
				require.NoError(t, validateReference(t, ref, out), "seed %d: %s", seed, out)
				distinct[string(out)] = true

				again, err := generateJSON(s, requestHash(seed).rng(0))
				require.NoError(t, err)
				require.Equal(t, string(out), string(again), "seed %d: not deterministic", seed)
			}
			require.GreaterOrEqual(t, len(distinct), 5, "generated values hardly vary")
		})
	}
}

func TestGenerateJSONKeepsPropertyOrder(t *testing.T) {
	t.Parallel()

	s := compileOurs(t, `{"type": "object", "properties": {"zeta": {"type": "integer"}, "alpha": {"type": "integer"}, "mid": {"type": "integer"}}, "required": ["zeta", "alpha", "mid"]}`)
	out, err := generateJSON(s, requestHash(1).rng(0))
	require.NoError(t, err)
	z, a, m := bytes.Index(out, []byte(`"zeta"`)), bytes.Index(out, []byte(`"alpha"`)), bytes.Index(out, []byte(`"mid"`))
	require.True(t, z < a && a < m, "order not kept: %s", out)
}

func TestGenerateJSONErrors(t *testing.T) {
	t.Parallel()

	invalid := []struct {
		name, schema string
	}{
		{"NotJSON", `{"type": `},
		{"UnknownType", `{"type": "text"}`},
		{"BadRef", `{"$ref": "#/$defs/missing"}`},
		{"RemoteRef", `{"$ref": "https://example.com/schema.json"}`},
		{"BadPattern", `{"type": "string", "pattern": "(?<=a)b"}`},
		{"NegativeMinItems", `{"type": "array", "minItems": -1}`},
		{"NotASchema", `[1, 2]`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, err := decodeOrdered([]byte(tt.schema))
			if err == nil {
				_, err = compileSchema(doc)
			}
			require.Error(t, err)
		})
	}

	unsatisfiable := []struct {
		name, schema string
	}{
		{"False", `false`},
		{"EmptyEnum", `{"type": "string", "enum": [1, 2]}`},
		{"Bounds", `{"type": "integer", "minimum": 5, "maximum": 4}`},
		{"TypeClash", `{"allOf": [{"type": "string"}, {"type": "integer"}]}`},
		{"RequiredForbidden", `{"type": "object", "required": ["a"], "additionalProperties": false}`},
		{"InfiniteRecursion", `{"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}}, "$ref": "#/$defs/n"}`},
		{"OneOfAllOverlap", `{"oneOf": [{"type": "integer"}, {"type": "integer"}]}`},
	}
	for _, tt := range unsatisfiable {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := generateJSON(compileOurs(t, tt.schema), requestHash(1).rng(0))
			require.Error(t, err)
		})
	}
}

// supportedKeywords are the keywords the generator understands; the fuzz test
// only holds it to schemas made of them (and annotations).
var supportedKeywords = map[string]bool{
	"$ref": true, "$defs": true, "definitions": true, "$schema": true, "$id": false,
	"type": true, "enum": true, "const": true, "properties": true, "required": true,
	"additionalProperties": true, "minProperties": true, "maxProperties": true,
	"items": true, "prefixItems": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"multipleOf": true, "allOf": true, "anyOf": true, "oneOf": true, "not": true,
	"title": true, "description": true, "default": true, "examples": true,
}

// onlySupportedKeywords reports whether every key in the schema document is a
// supported keyword or a property name.
func onlySupportedKeywords(v any, inProperties bool) bool {
	switch t := v.(type) {
	case *jsonObject:
		for i, k := range t.keys {
			if !inProperties && !supportedKeywords[k] {
				return false
			}
			if !inProperties && (k == "enum" || k == "const" || k == "default" || k == "examples") {
				continue
			}
			if !onlySupportedKeywords(t.vals[i], !inProperties && (k == "properties" || k == "$defs" || k == "definitions")) {
				return false
			}
		}
	case []any:
		for _, e := range t {
			if !onlySupportedKeywords(e, false) {
				return false
			}
		}
	}
	return true
}

// FuzzSchemaOutput checks that whatever the generator produces for a schema
// it accepts is valid under the reference validator.
func FuzzSchemaOutput(f *testing.F) {
	for _, text := range testSchemas {
		f.Add(text, uint64(1))
	}
	f.Add(`{"type": "integer", "minimum": 3, "maximum": 3}`, uint64(7))
	f.Add(`{"enum": [1, "a", null, {"b": [true]}]}`, uint64(3))
	f.Add(`{"type": "string", "minLength": 30, "maxLength": 30}`, uint64(5))
	f.Add(`{"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": true}`, uint64(9))

	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		doc, err := decodeOrdered([]byte(text))
		if err != nil || !onlySupportedKeywords(doc, false) {
			return
		}
		s, err := compileSchema(doc)
		if err != nil {
			return
		}
		ref, err := compileReference(t, text, false)
		if err != nil {
			return
		}
		out, err := generateJSON(s, requestHash(seed).rng(0))
		if err != nil {
			return
		}
		require.NoError(t, validateReference(t, ref, out), "schema %s\noutput %s", text, out)
	})
}

func TestFormatRat(t *testing.T) {
	t.Parallel()

	tests := []struct{ in, want string }{
		{"3", "3"}, {"-7", "-7"}, {"0.25", "0.25"}, {"1.1", "1.1"}, {"-0.001", "-0.001"}, {"1e3", "1000"}, {"12.50", "12.5"},
	}
	for _, tt := range tests {
		r, ok := jsonNumber(tt.in).rat()
		require.True(t, ok)
		require.Equal(t, jsonNumber(tt.want), formatRat(r), "formatRat(%s)", tt.in)
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()

	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "new\nline\ttab\r", "\x00\x1f", "ünïcødé ☃", "<>&", "\u2028"} {
		var got string
		require.NoError(t, json.Unmarshal(appendJSONString(nil, s), &got), "%q", s)
		require.Equal(t, s, got)
	}
	require.Equal(t, `"\ufffd"`, string(appendJSONString(nil, "\xff")))
}

func ExampleCountTokens() {
	fmt.Println(CountTokens(`Hello, world! {"ok": true}`))
	// Output: 11
}
