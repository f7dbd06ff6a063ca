package conquest

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"

	"github.com/kilnhq/kiln/internal/dbtext"
)

// funcs are the functions prompt templates may call.
var funcs = template.FuncMap{
	// json renders a value as compact JSON, for array and object fields.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// CustomIDField is the record key, beside the data fields, that names the
// request a record becomes. Without it, DefaultCustomID names it.
const CustomIDField = "custom_id"

// DefaultCustomID names a record's request by its content:
// <type>-<12 hex digits of the SHA-256 of the record>. The same record
// sent to several models gets the same ID, so curation lines their answers
// up side by side; different records, in any batch, get different ones.
func DefaultCustomID(typ string, rec map[string]any) string {
	b, _ := json.Marshal(rec) // map keys sorted: the same record, the same bytes
	sum := sha256.Sum256(b)
	return typ + "-" + hex.EncodeToString(sum[:6])
}

// RecordError is a problem with one data record.
type RecordError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e RecordError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Message)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Message)
}

// CheckRecord reports the first problem of a data record: a required field
// missing, a field of the wrong type, or a field the type does not define.
// Numbers must be json.Number (decode with UseNumber) for integers to be
// told from other numbers.
func (d *Definition) CheckRecord(rec map[string]any) *RecordError {
	known := map[string]Field{}
	for _, f := range d.Data {
		known[f.Name] = f
		v, ok := rec[f.Name]
		if !ok || v == nil {
			if f.Required {
				return &RecordError{Field: f.Name, Message: "is required"}
			}
			continue
		}
		if got := jsonType(v); !typeFits(f.Type, got, v) {
			return &RecordError{Field: f.Name, Message: fmt.Sprintf("must be %s, got %s", article(f.Type), article(got))}
		}
	}
	for _, k := range sortedKeys(rec) {
		if _, ok := known[k]; !ok && k != CustomIDField {
			return &RecordError{Field: k, Message: fmt.Sprintf("is no field of %s (fields: %s)", d.ID, fieldNames(d.Data))}
		}
	}
	if id, ok := rec[CustomIDField]; ok {
		s, isStr := id.(string)
		if !isStr || s == "" {
			return &RecordError{Field: CustomIDField, Message: "must be a non-empty string"}
		}
		// The batch validator refuses a custom_id the store cannot hold.
		if err := dbtext.Check(s); err != nil {
			return &RecordError{Field: CustomIDField, Message: err.Error()}
		}
	}
	return nil
}

func fieldNames(fs []Field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func article(t string) string {
	switch t {
	case "integer", "array", "object":
		return "an " + t
	case "null":
		return "null"
	}
	return "a " + t
}

func jsonType(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil && !strings.ContainsAny(string(x), ".eE") {
			return "integer"
		}
		return "number"
	case float64, int, int64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func typeFits(want, got string, v any) bool {
	if want == got {
		return true
	}
	if want == "number" && got == "integer" {
		return true
	}
	if want == "integer" && got == "number" {
		if f, ok := v.(float64); ok {
			return f == float64(int64(f))
		}
	}
	return false
}

// render executes the prompt templates for a checked record.
func (d *Definition) render(rec map[string]any) (system, user string, err error) {
	data := make(map[string]any, len(d.Data))
	for _, f := range d.Data {
		data[f.Name] = rec[f.Name] // absent optional fields are nil: {{if}} is false
	}
	view := map[string]any{"Data": data, "Questions": d.Questions, "Title": d.Title, "Description": d.Description}
	var s, u bytes.Buffer
	if err := d.system.Execute(&s, view); err != nil {
		return "", "", fmt.Errorf("system prompt: %w", err)
	}
	if err := d.user.Execute(&u, view); err != nil {
		return "", "", fmt.Errorf("user prompt: %w", err)
	}
	return s.String(), u.String(), nil
}

// sampleRecord has every field, with a value of its type.
func sampleRecord(fields []Field) map[string]any {
	rec := map[string]any{}
	for _, f := range fields {
		switch f.Type {
		case "string":
			rec[f.Name] = "sample"
		case "integer":
			rec[f.Name] = json.Number("1")
		case "number":
			rec[f.Name] = json.Number("1.5")
		case "boolean":
			rec[f.Name] = true
		case "array":
			rec[f.Name] = []any{"sample"}
		case "object":
			rec[f.Name] = map[string]any{"sample": "value"}
		}
	}
	return rec
}

// BuildOptions shape the requests built from records.
type BuildOptions struct {
	// Model is the model every request names.
	Model string
	// MaxTokens bounds each answer; 0 leaves it to the server.
	MaxTokens int
	// Temperature, when set, is sent as is.
	Temperature *float64
	// Endpoint is the batch endpoint the requests call: EndpointChat
	// (the default, for "") or EndpointResponses.
	Endpoint string
	// OnRequest, when set, is told each request built and the record it
	// came from.
	OnRequest func(customID string, rec map[string]any)
}

// The batch endpoints conquest requests can call.
const (
	EndpointChat      = "/v1/chat/completions"
	EndpointResponses = "/v1/responses"
)

// Endpoints are the batch endpoints conquest requests can call.
var Endpoints = []string{EndpointChat, EndpointResponses}

// ErrEndpoint is BuildOptions.Endpoint naming an endpoint conquest requests
// cannot call.
var ErrEndpoint = errors.New("conquest requests call /v1/chat/completions or /v1/responses")

// Request is the batch input line of a checked record: the rendered
// prompts, and the output schema as a strict json_schema format: for chat
// completions messages and response_format, for the Responses API input
// and text.format.
func (d *Definition) Request(customID string, rec map[string]any, o BuildOptions) ([]byte, error) {
	endpoint := cmp.Or(o.Endpoint, EndpointChat)
	if !slices.Contains(Endpoints, endpoint) {
		return nil, fmt.Errorf("%w, not %q", ErrEndpoint, endpoint)
	}
	system, user, err := d.render(rec)
	if err != nil {
		return nil, err
	}
	messages := []map[string]string{
		{"role": "system", "content": system},
		{"role": "user", "content": user},
	}
	body := map[string]any{"model": o.Model}
	if endpoint == EndpointResponses {
		body["input"] = messages
		body["text"] = map[string]any{"format": map[string]any{
			"type":   "json_schema",
			"name":   d.SchemaName(),
			"schema": d.schemaJSON,
			"strict": true,
		}}
		if o.MaxTokens > 0 {
			body["max_output_tokens"] = o.MaxTokens
		}
	} else {
		body["messages"] = messages
		body["response_format"] = map[string]any{
			"type": "json_schema",
			"json_schema": map[string]any{
				"name":   d.SchemaName(),
				"schema": d.schemaJSON,
				"strict": true,
			},
		}
		if o.MaxTokens > 0 {
			body["max_tokens"] = o.MaxTokens
		}
	}
	if o.Temperature != nil {
		body["temperature"] = *o.Temperature
	}
	return json.Marshal(map[string]any{"custom_id": customID, "method": "POST", "url": endpoint, "body": body})
}

// BuildReport is what Build did.
type BuildReport struct {
	Requests int           `json:"requests"`
	Errors   []RecordError `json:"errors"`
	// MoreErrors counts the problems beyond the first MaxBuildErrors.
	MoreErrors int `json:"more_errors,omitempty"`
}

// MaxBuildErrors is how many record problems Build reports one by one.
const MaxBuildErrors = 100

// Build reads data records, one JSON object per line, and writes one batch
// input line per valid record to w. Bad records are reported with their
// line numbers and skipped; blank lines are skipped. An error is returned
// only when reading or writing fails, or when a line is longer than
// maxLine bytes.
func (d *Definition) Build(r io.Reader, w io.Writer, o BuildOptions, maxLine int) (BuildReport, error) {
	var rep BuildReport
	if o.Endpoint != "" && !slices.Contains(Endpoints, o.Endpoint) {
		return rep, fmt.Errorf("%w, not %q", ErrEndpoint, o.Endpoint)
	}
	report := func(e RecordError) {
		if len(rep.Errors) < MaxBuildErrors {
			rep.Errors = append(rep.Errors, e)
		} else {
			rep.MoreErrors++
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	seen := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		rec, err := decodeRecord(raw)
		if err != nil {
			report(RecordError{Line: line, Message: err.Error()})
			continue
		}
		if p := d.CheckRecord(rec); p != nil {
			p.Line = line
			report(*p)
			continue
		}
		id, _ := rec[CustomIDField].(string)
		if id == "" {
			id = DefaultCustomID(d.ID, rec)
		}
		if first, dup := seen[id]; dup {
			report(RecordError{Line: line, Field: CustomIDField, Message: fmt.Sprintf("%q is also line %d's", id, first)})
			continue
		}
		seen[id] = line
		out, err := d.Request(id, rec, o)
		if err != nil {
			report(RecordError{Line: line, Message: err.Error()})
			continue
		}
		out = append(out, '\n')
		if _, err := w.Write(out); err != nil {
			return rep, err
		}
		rep.Requests++
		if o.OnRequest != nil {
			o.OnRequest(id, rec)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return rep, fmt.Errorf("a data record is longer than %d bytes", maxLine)
		}
		return rep, err
	}
	return rep, nil
}

// decodeRecord parses one JSON object, keeping numbers exact.
func decodeRecord(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("not one JSON value: more follows on the line")
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a data record must be a JSON object, got %s", article(jsonType(v)))
	}
	return rec, nil
}
