package llmsim

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
)

// Structured outputs: OpenAI's response_format, vLLM's structured_outputs
// and its older guided_* fields. Output is generated to satisfy the
// constraint, as vLLM's grammar-constrained decoding guarantees.

type rawJSON = json.RawMessage

// responseFormat is OpenAI's response_format.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string  `json:"name"`
		Schema rawJSON `json:"schema"`
		Strict *bool   `json:"strict"`
	} `json:"json_schema"`
}

// structuredOpts is vLLM's structured_outputs (vLLM 0.10.2 and later).
type structuredOpts struct {
	JSON          rawJSON  `json:"json"`
	Regex         *string  `json:"regex"`
	Choice        []string `json:"choice"`
	Grammar       *string  `json:"grammar"`
	JSONObject    *bool    `json:"json_object"`
	StructuralTag *string  `json:"structural_tag"`
}

// structuredFormat is the constraint on a request's output: exactly one of
// its fields is set.
type structuredFormat struct {
	schema  *schema
	regex   *pattern
	choices []string
}

// jsonObjectSchema shapes the answers to response_format json_object.
var jsonObjectSchema = func() *schema {
	doc, err := decodeOrdered([]byte(`{
		"type": "object",
		"properties": {
			"answer": {"type": "string", "minLength": 1},
			"confidence": {"type": "number", "minimum": 0, "maximum": 1},
			"tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}
		},
		"required": ["answer", "confidence"]
	}`))
	if err != nil {
		panic(err)
	}
	s, err := compileSchema(doc)
	if err != nil {
		panic(err)
	}
	return s
}()

func isNull(raw rawJSON) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// parseStructuredFormat reads the request's output constraint; nil means
// free text. vLLM's own fields win over response_format.
func parseStructuredFormat(p *samplingParams) (*structuredFormat, *apiError) {
	if so := p.StructuredOutputs; so != nil {
		var formats []*structuredFormat
		if !isNull(so.JSON) {
			f, err := schemaFormat(so.JSON, "structured_outputs.json")
			if err != nil {
				return nil, err
			}
			formats = append(formats, f)
		}
		if so.JSONObject != nil && *so.JSONObject {
			formats = append(formats, &structuredFormat{schema: jsonObjectSchema})
		}
		if so.Regex != nil {
			f, err := regexFormat(*so.Regex, "structured_outputs.regex")
			if err != nil {
				return nil, err
			}
			formats = append(formats, f)
		}
		if so.Choice != nil {
			f, err := choiceFormat(so.Choice, "structured_outputs.choice")
			if err != nil {
				return nil, err
			}
			formats = append(formats, f)
		}
		if so.Grammar != nil || so.StructuralTag != nil {
			return nil, badRequest("structured_outputs", "kiln sim does not support grammar or structural_tag structured outputs")
		}
		switch len(formats) {
		case 0:
		case 1:
			return formats[0], nil
		default:
			return nil, badRequest("structured_outputs", "You can only use one kind of structured outputs constraint but multiple are specified")
		}
	}
	switch {
	case !isNull(p.GuidedJSON):
		return schemaFormat(p.GuidedJSON, "guided_json")
	case p.GuidedRegex != nil:
		return regexFormat(*p.GuidedRegex, "guided_regex")
	case p.GuidedChoice != nil:
		return choiceFormat(p.GuidedChoice, "guided_choice")
	}
	rf := p.ResponseFormat
	if rf == nil {
		return nil, nil
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &structuredFormat{schema: jsonObjectSchema}, nil
	case "json_schema":
		if rf.JSONSchema == nil {
			return nil, badRequest("response_format.json_schema", "response_format.json_schema is required when type is json_schema")
		}
		if isNull(rf.JSONSchema.Schema) {
			// OpenAI requires a schema; vLLM accepts none and allows any
			// JSON object.
			return &structuredFormat{schema: jsonObjectSchema}, nil
		}
		return schemaFormat(rf.JSONSchema.Schema, "response_format.json_schema.schema")
	}
	return nil, badRequest("response_format.type", "response_format.type must be one of text, json_object, json_schema; got "+strings.TrimSpace(rf.Type))
}

// schemaFormat compiles a schema given as a JSON object, or as a string
// holding one (vLLM accepts both).
func schemaFormat(raw rawJSON, param string) (*structuredFormat, *apiError) {
	data := []byte(raw)
	var str string
	if json.Unmarshal(raw, &str) == nil {
		data = []byte(str)
	}
	doc, err := decodeOrdered(data)
	if err != nil {
		return nil, badRequest(param, "Invalid JSON schema: "+err.Error())
	}
	s, err := compileSchema(doc)
	if err != nil {
		return nil, badRequest(param, "Invalid JSON schema: "+err.Error())
	}
	return &structuredFormat{schema: s}, nil
}

func regexFormat(src, param string) (*structuredFormat, *apiError) {
	p, err := compilePattern(src)
	if err != nil {
		return nil, badRequest(param, err.Error())
	}
	return &structuredFormat{regex: &p}, nil
}

func choiceFormat(choices []string, param string) (*structuredFormat, *apiError) {
	if len(choices) == 0 {
		return nil, badRequest(param, param+" must not be empty")
	}
	return &structuredFormat{choices: choices}, nil
}

// generate returns output text satisfying the constraint.
func (f *structuredFormat) generate(rng *rand.Rand) (string, *apiError) {
	switch {
	case f.schema != nil:
		doc, err := generateJSON(f.schema, rng)
		if err != nil {
			return "", badRequest("", "kiln sim: "+err.Error())
		}
		return string(doc), nil
	case f.regex != nil:
		g := newGenerator(rng)
		for range 16 {
			var sb strings.Builder
			if g.genRegex(&sb, f.regex.syn, 0) && f.regex.re.MatchString(sb.String()) {
				return sb.String(), nil
			}
		}
		return "", badRequest("", "kiln sim: cannot generate a string matching the regex")
	default:
		return f.choices[rng.IntN(len(f.choices))], nil
	}
}
