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

// hardSchemas are schemas on which the generator once took exponential or
// quadratic time, or gigabytes: users send their own schemas, so each must
// end well within the generator's budget. want says whether a value exists.
func hardSchemas() map[string]struct {
	text string
	want bool
} {
	type hard = struct {
		text string
		want bool
	}
	// allOf of two references to the next level, 12 levels deep: flattening
	// doubled with each level. (So does the reference validator's check.)
	var chain strings.Builder
	chain.WriteString(`{"$ref": "#/$defs/d0", "$defs": {`)
	for i := range 12 {
		fmt.Fprintf(&chain, `"d%d": {"allOf": [{"$ref": "#/$defs/d%d"}, {"$ref": "#/$defs/d%d", "minimum": %d}]}, `, i, i+1, i+1, i)
	}
	chain.WriteString(`"d12": {"type": "integer", "maximum": 100}}}`)

	enum := make([]string, 2000)
	props := make([]string, 2000)
	required := make([]string, 2000)
	for i := range enum {
		enum[i] = fmt.Sprintf(`"value %d"`, i)
		props[i] = fmt.Sprintf(`"p%d": {"type": "integer"}`, i)
		required[i] = fmt.Sprintf(`"p%d"`, i)
	}
	return map[string]hard{
		// A required property the node forbids, under recursion: every
		// retry regenerated the subtree below it, at every level.
		"RecursiveUnsatisfiable": {`{
			"$ref": "#/$defs/node",
			"$defs": {"node": {
				"type": "object",
				"properties": {
					"value": {"type": "integer", "minimum": -5, "maximum": -1},
					"children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}
				},
				"required": ["value", "label", "children"],
				"additionalProperties": false
			}}
		}`, false},
		"AllOfDoubling": {chain.String(), true},
		// anyOf over a cycle of references, checked through not: a check
		// doubled with each level of depth.
		"AnyOfCycle": {`{
			"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}},
			"enum": [1, 2, 3],
			"not": {"$ref": "#/$defs/a"}
		}`, true},
		// A recursive oneOf whose branches overlap deep down.
		"OneOfRecursive": {`{
			"$ref": "#/$defs/t",
			"$defs": {"t": {"oneOf": [
				{"type": "array", "items": {"$ref": "#/$defs/t"}, "minItems": 2, "maxItems": 2},
				{"type": "array", "items": {"$ref": "#/$defs/t"}, "minItems": 2}
			]}}
		}`, false},
		// Gigabytes of text before the bounds were compared.
		"LongStringConflict": {`{"type": "string", "minLength": 1000000, "maxLength": 10}`, false},
		"NestedMinItems":     {`{"type": "array", "minItems": 1000, "items": {"type": "array", "minItems": 1000, "items": {"type": "array", "minItems": 1000}}}`, false},
		// More unique items than values: every item was compared with every
		// other, for each of many retries.
		"UniqueItemsImpossible": {`{"type": "array", "minItems": 1000, "uniqueItems": true, "items": {"type": "integer", "minimum": 0, "maximum": 500}}`, false},
		"UniqueItemsLarge":      {`{"type": "array", "minItems": 1000, "maxItems": 1000, "uniqueItems": true, "items": {"type": "string", "format": "uuid"}}`, true},
		// Long enums and property lists were searched value by value.
		"LargeEnum":      {`{"type": "array", "minItems": 200, "items": {"enum": [` + strings.Join(enum, ", ") + `], "not": {"const": "value 7"}}}`, true},
		"ManyProperties": {`{"type": "object", "properties": {` + strings.Join(props, ", ") + `}, "required": [` + strings.Join(required, ", ") + `], "additionalProperties": false}`, true},
	}
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

func TestGenerateJSONHardSchemas(t *testing.T) {
	t.Parallel()

	for name, tt := range hardSchemas() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			ref, err := compileReference(t, tt.text, true)
			require.NoError(t, err)
			s := compileOurs(t, tt.text)
			for seed := range uint64(5) {
				// The work follows from the schema and the output: these
				// end well within the budget, not by running out of it.
				g := newGenerator(requestHash(seed).rng(0))
				_, _ = g.gen(s, 0, 0)
				require.Less(t, genBudget-g.steps, genBudget/10, "seed %d: steps", seed)

				out, err := generateJSON(s, requestHash(seed).rng(0))
				if !tt.want {
					require.Error(t, err, "seed %d: %s", seed, out)
					continue
				}
				require.NoError(t, err, "seed %d", seed)
				require.NoError(t, validateReference(t, ref, out), "seed %d: %s", seed, out)
			}
		})
	}
}

func TestGenerateJSONBudget(t *testing.T) {
	t.Parallel()

	// allOf over 4^8 combinations of anyOf branches, of which one is
	// satisfiable: a search the budget ends.
	var groups []string
	for i := range 8 {
		groups = append(groups, fmt.Sprintf(`{"anyOf": [{"minimum": %d}, {"maximum": -%d}, {"multipleOf": 3}, {"type": "string"}]}`, 1000+i, 1000+i))
	}
	s := compileOurs(t, `{"type": "integer", "minimum": 0, "maximum": 10, "not": {"multipleOf": 3}, "allOf": [`+strings.Join(groups, ", ")+`]}`)
	g := newGenerator(requestHash(1).rng(0))
	_, ok := g.gen(s, 0, 0)
	require.False(t, ok)
	require.LessOrEqual(t, g.steps, 0, "the search ended before the budget did")
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

func TestCheckerRemembersByValue(t *testing.T) {
	t.Parallel()

	// anyOf makes the checker remember results: null and [] must not share
	// one.
	s := compileOurs(t, `{"anyOf": [{"type": "null"}, {"type": "boolean"}]}`)
	var c checker
	c.steps = genBudget
	require.True(t, c.valid(s, nil, 0))
	require.False(t, c.valid(s, []any{}, 0))
	require.False(t, c.valid(s, []any{nil}, 0))
	require.True(t, c.valid(s, true, 0))
	require.False(t, c.valid(s, jsonNumber("1"), 0))
}

func TestAppendCanonicalMatchesJSONEqual(t *testing.T) {
	t.Parallel()

	docs := []string{
		`null`, `false`, `true`, `0`, `-0`, `1`, `1.0`, `1e0`, `10e-1`, `2`, `0.1`, `1e999`, `1E999`,
		`""`, `"1"`, `"s1:a"`, `"a"`, `"\u0000"`,
		`[]`, `[1]`, `[1.0]`, `["1"]`, `[[]]`, `[null]`, `[1, 2]`, `[2, 1]`,
		`{}`, `{"a": 1}`, `{"a": 1.0}`, `{"a": 1, "b": 2}`, `{"b": 2, "a": 1}`, `{"a": [1]}`, `{"s1:a": 1}`,
	}
	values := make([]any, len(docs))
	for i, d := range docs {
		v, err := decodeOrdered([]byte(d))
		require.NoError(t, err, d)
		values[i] = v
	}
	for i, a := range values {
		for j, b := range values {
			same := string(appendCanonical(nil, a)) == string(appendCanonical(nil, b))
			require.Equal(t, jsonEqual(a, b), same, "%s and %s", docs[i], docs[j])
		}
	}
}
