package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// defs runs extract on the component schemas of the OpenAPI document
// specYAML and returns the $defs as schemas.json would hold them.
func defs(t *testing.T, specYAML string, roots ...string) map[string]any {
	t.Helper()
	var doc openAPIDoc
	require.NoError(t, yaml.Unmarshal([]byte(specYAML), &doc))
	got, err := extract(doc.Components.Schemas, roots)
	require.NoError(t, err)
	b, err := json.Marshal(got)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v))
	return v
}

func TestExtract(t *testing.T) {
	t.Parallel()

	t.Run("RefsComeAlongUnderDefs", func(t *testing.T) {
		t.Parallel()
		got := defs(t, `
components:
  schemas:
    A:
      type: object
      properties:
        b: {$ref: "#/components/schemas/B"}
      required: [b]
    B:
      type: object
      properties:
        c: {$ref: "#/components/schemas/C"}
      required: [c]
    C: {type: string}
    Unused: {type: string}
`, "A")
		require.Equal(t, jsonOf(t, `{
			"A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}, "required": ["b"]},
			"B": {"type": "object", "properties": {"c": {"$ref": "#/$defs/C"}}, "required": ["c"]},
			"C": {"type": "string"}
		}`), any(got))
	})

	t.Run("Nullable", func(t *testing.T) {
		t.Parallel()
		got := defs(t, `
components:
  schemas:
    A:
      type: object
      required: [typed, enum, union, all, list]
      properties:
        typed: {type: string, nullable: true}
        enum: {type: string, enum: [a, b], nullable: true}
        union:
          description: d
          nullable: true
          anyOf: [{type: string}, {type: integer}]
        all:
          allOf:
            - $ref: "#/components/schemas/B"
            - nullable: true
              description: d
        list: {type: [string, integer], nullable: true}
    B: {type: object}
`, "A")
		require.Equal(t, jsonOf(t, `{
			"typed": {"type": ["string", "null"]},
			"enum": {"type": ["string", "null"], "enum": ["a", "b", null]},
			"union": {"description": "d", "anyOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "null"}]},
			"all": {"anyOf": [{"allOf": [{"$ref": "#/$defs/B"}, {"description": "d"}]}, {"type": "null"}]},
			"list": {"type": ["string", "integer", "null"]}
		}`), got["A"].(map[string]any)["properties"])
	})

	t.Run("OptionalPropertiesAcceptNull", func(t *testing.T) {
		t.Parallel()
		got := defs(t, `
components:
  schemas:
    A:
      type: object
      required: [req]
      properties:
        req: {type: string}
        opt: {type: integer, format: unixtime}
        ref: {$ref: "#/components/schemas/B"}
        already: {anyOf: [{type: string}, {type: "null"}]}
        nested:
          type: object
          properties:
            deep: {type: boolean}
    B: {type: object}
`, "A")
		require.Equal(t, jsonOf(t, `{
			"req": {"type": "string"},
			"opt": {"type": ["integer", "null"], "format": "unixtime"},
			"ref": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "null"}]},
			"already": {"anyOf": [{"type": "string"}, {"type": "null"}]},
			"nested": {"type": ["object", "null"], "properties": {"deep": {"type": ["boolean", "null"]}}}
		}`), got["A"].(map[string]any)["properties"])
	})

	t.Run("DropsOpenAPIOnlyKeywordsNotProperties", func(t *testing.T) {
		t.Parallel()
		got := defs(t, `
components:
  schemas:
    A:
      type: object
      x-oaiMeta: {name: The A object, example: "{}"}
      example: {}
      discriminator: {propertyName: type}
      required: [example, x-custom]
      properties:
        example: {type: string, x-stainless-const: true, example: abc}
        x-custom: {type: string, deprecated: true}
`, "A")
		require.Equal(t, jsonOf(t, `{
			"A": {
				"type": "object",
				"required": ["example", "x-custom"],
				"properties": {
					"example": {"type": "string"},
					"x-custom": {"type": "string", "deprecated": true}
				}
			}
		}`), any(got))
	})

	t.Run("UntypedObjectGetsTypeObject", func(t *testing.T) {
		t.Parallel()
		got := defs(t, `
components:
  schemas:
    A:
      required: [id]
      properties:
        id: {type: string}
    Union:
      anyOf: [{type: string}, {properties: {id: {type: string}}, required: [id]}]
`, "A", "Union")
		require.Equal(t, "object", got["A"].(map[string]any)["type"])
		require.NotContains(t, got["Union"], "type")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		for name, tt := range map[string]struct {
			spec string
			want string
		}{
			"MissingRoot": {`components: {schemas: {}}`, "schema A not found"},
			"MissingRef":  {`components: {schemas: {A: {$ref: "#/components/schemas/B"}}}`, "schema B not found"},
			"ForeignRef":  {`components: {schemas: {A: {$ref: "other.yaml#/B"}}}`, `/A/$ref: unsupported $ref "other.yaml#/B"`},
			"NotASchema":  {`components: {schemas: {A: {properties: {b: 3}}}}`, "/A/properties/b: schema is a int"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var doc openAPIDoc
				require.NoError(t, yaml.Unmarshal([]byte(tt.spec), &doc))
				_, err := extract(doc.Components.Schemas, []string{"A"})
				require.ErrorContains(t, err, tt.want)
			})
		}
	})
}

func TestGenerate(t *testing.T) {
	t.Parallel()

	t.Run("RejectsDuplicateNames", func(t *testing.T) {
		t.Parallel()
		_, err := generate(
			[]byte(`components: {schemas: {BatchRequestInput: {type: object}}}`),
			[]byte(`components: {schemas: {BatchRequestInput: {type: object}}}`),
		)
		require.ErrorContains(t, err, "schema BatchRequestInput is in both")
	})

	// schemas.json is committed; regenerating from the shared spec must
	// reproduce it byte for byte, or it is stale.
	t.Run("SchemasJSONUpToDate", func(t *testing.T) {
		t.Parallel()
		shared := filepath.Join("..", "..", "..", "..", "shared", "openai")
		spec, err := os.ReadFile(filepath.Join(shared, "openapi.yaml"))
		if errors.Is(err, fs.ErrNotExist) && os.Getenv("CI") == "" {
			// The spec lives beside the repository, where CI always has
			// it; a developer's checkout may not.
			t.Skip("OpenAI spec not found at ", shared)
		}
		require.NoError(t, err)
		lines, err := os.ReadFile(filepath.Join(shared, "batch-lines.yaml"))
		require.NoError(t, err)

		got, err := generate(spec, lines)
		require.NoError(t, err)
		again, err := generate(spec, lines)
		require.NoError(t, err)
		require.Equal(t, string(got), string(again), "generate is not deterministic")

		committed, err := os.ReadFile(filepath.Join("..", "schemas.json"))
		require.NoError(t, err)
		require.Equal(t, string(committed), string(got), "schemas.json is stale: run go generate ./internal/openaispec")
	})
}
