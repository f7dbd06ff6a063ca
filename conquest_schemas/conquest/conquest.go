// Package conquest loads the conquest type definitions kept in
// conquest_schemas/ (one JSON file per type and version, <id>.v<N>.json,
// embedded by the root package) and does what
// they drive: the prompts sent to the model, the JSON Schema the model's
// answer must match (sent as a strict json_schema response format, which
// vLLM enforces), the checks on data records and on what came back, and
// the rendering hints curators see.
package conquest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/santhosh-tekuri/jsonschema/v6"

	kiln "github.com/kilnhq/kiln"
)

// Field types of data records: JSON's.
var fieldTypes = []string{"string", "integer", "number", "boolean", "array", "object"}

// Field is a named input field of a data record.
type Field struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required"`
	Description string `json:"description"`
}

// Question is what the model must answer, with guidance; its ID is a
// property of the output.
type Question struct {
	ID       string `json:"id"`
	Question string `json:"question"`
	Guidance string `json:"guidance"`
}

// Prompt holds the Go text/template sources of the messages.
type Prompt struct {
	System string `json:"system"`
	User   string `json:"user"`
}

// DataView is a data field as curators see it.
type DataView struct {
	Field  string `json:"field"`
	Label  string `json:"label"`
	Format string `json:"format"`
}

// OutputView is a part of the output as curators see it: a JSON pointer
// into the output and how to show it.
type OutputView struct {
	Pointer string   `json:"pointer"`
	Label   string   `json:"label"`
	Format  string   `json:"format"`
	Columns []string `json:"columns,omitempty"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	// Tones, for a badge: each value's tone (true and false for a boolean).
	Tones map[string]Tone `json:"tones,omitempty"`
	// ColumnTones, for a table: a column's values' tones.
	ColumnTones map[string]map[string]Tone `json:"column_tones,omitempty"`
	// LowerIsBetter, for a score: a low score is positive (a score bar is
	// positive in its top third and negative in its bottom third).
	LowerIsBetter bool `json:"lower_is_better,omitempty"`
}

// Rendering holds the hints for curators: which fields to show, in what
// order, and how to show the output.
type Rendering struct {
	Data   []DataView   `json:"data"`
	Output []OutputView `json:"output"`
	// Preview names the data fields (a.b for a field of an object) that
	// tell tasks apart in the queue, such as the candidate's name and role.
	Preview []string `json:"preview,omitempty"`
}

var (
	dataFormats   = []string{"text", "markdown", "list", "json", "email"}
	outputFormats = []string{"text", "markdown", "table", "list", "score", "badge", "json"}
)

// Definition is one version of one conquest type.
type Definition struct {
	ID           string          `json:"id"`
	Version      int             `json:"version"`
	Title        string          `json:"title"`
	Description  string          `json:"description"`
	Data         []Field         `json:"data"`
	Questions    []Question      `json:"questions"`
	OutputSchema json.RawMessage `json:"output_schema"`
	Prompt       Prompt          `json:"prompt"`
	Rendering    Rendering       `json:"rendering"`

	schema      *jsonschema.Schema
	schemaValue any // OutputSchema parsed
	// schemaJSON is schemaValue marshalled, for response_format: once, as
	// every request carries it and it is most of a request's cost.
	schemaJSON   json.RawMessage
	system, user *template.Template
}

// SchemaName is the name of the definition's response format: it tells a
// request, and the batch it is in, which conquest it is.
func (d *Definition) SchemaName() string { return fmt.Sprintf("conquest-%s-v%d", d.ID, d.Version) }

var schemaNameRE = regexp.MustCompile(`^conquest-([a-z][a-z0-9_]*)-v([0-9]+)$`)

// ParseSchemaName reads a response format name SchemaName made.
func ParseSchemaName(name string) (id string, version int, ok bool) {
	m := schemaNameRE.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	v, err := strconv.Atoi(m[2])
	return m[1], v, err == nil
}

// Registry holds every version of every conquest type.
type Registry struct {
	byID map[string][]*Definition // versions in ascending order
}

// Load reads and checks the embedded definitions.
func Load() (*Registry, error) { return LoadFS(kiln.ConquestSchemas, "conquest_schemas") }

var fileRE = regexp.MustCompile(`^([a-z][a-z0-9_]*)\.v([0-9]+)\.json$`)

// LoadFS reads and checks the definitions in dir of fsys. The first broken
// one is an error naming its file and the path inside it.
func LoadFS(fsys fs.FS, dir string) (*Registry, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	r := &Registry{byID: map[string][]*Definition{}}
	for _, name := range names {
		file := "conquest_schemas/" + path.Base(name)
		m := fileRE.FindStringSubmatch(path.Base(name))
		if m == nil {
			return nil, fmt.Errorf("%s: the file name must be <id>.v<version>.json", file)
		}
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		d, err := parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if d.ID != m[1] || strconv.Itoa(d.Version) != m[2] {
			return nil, fmt.Errorf("%s: /id and /version (%s, %d) differ from the file name", file, d.ID, d.Version)
		}
		r.byID[d.ID] = append(r.byID[d.ID], d)
	}
	for _, vs := range r.byID {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Version < vs[j].Version })
	}
	return r, nil
}

// pathError is a problem at a JSON pointer inside a definition.
func pathError(ptr, format string, args ...any) error {
	return fmt.Errorf("%s: %s", ptr, fmt.Sprintf(format, args...))
}

// parse decodes and checks one definition.
func parse(raw []byte) (*Definition, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := position(raw, syn.Offset)
			return nil, fmt.Errorf("line %d, column %d: %v", line, col, syn)
		case errors.As(err, &typ):
			return nil, pathError("/"+strings.ReplaceAll(typ.Field, ".", "/"), "want %s, got JSON %s", typ.Type, typ.Value)
		}
		return nil, err
	}
	if !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(d.ID) {
		return nil, pathError("/id", "%q: use lower case letters, digits and _", d.ID)
	}
	if d.Version < 1 {
		return nil, pathError("/version", "must be at least 1")
	}
	if strings.TrimSpace(d.Title) == "" {
		return nil, pathError("/title", "is empty")
	}
	fields := map[string]Field{}
	for i, f := range d.Data {
		at := fmt.Sprintf("/data/%d", i)
		if f.Name == "" {
			return nil, pathError(at+"/name", "is empty")
		}
		if _, dup := fields[f.Name]; dup {
			return nil, pathError(at+"/name", "%q is defined twice", f.Name)
		}
		if !slices.Contains(fieldTypes, f.Type) {
			return nil, pathError(at+"/type", "%q: want one of %v", f.Type, fieldTypes)
		}
		fields[f.Name] = f
	}
	if len(d.Data) == 0 {
		return nil, pathError("/data", "defines no field")
	}
	if len(d.Questions) == 0 {
		return nil, pathError("/questions", "asks nothing")
	}
	if err := json.Unmarshal(d.OutputSchema, &d.schemaValue); err != nil {
		return nil, pathError("/output_schema", "%v", err)
	}
	schemaJSON, err := json.Marshal(d.schemaValue)
	if err != nil {
		return nil, pathError("/output_schema", "%v", err)
	}
	d.schemaJSON = schemaJSON
	if err := checkStrict(d.schemaValue, "/output_schema"); err != nil {
		return nil, err
	}
	props := map[string]bool{}
	if obj, ok := d.schemaValue.(map[string]any); ok {
		if p, ok := obj["properties"].(map[string]any); ok {
			for k := range p {
				props[k] = true
			}
		}
	}
	qs := map[string]bool{}
	for i, q := range d.Questions {
		at := fmt.Sprintf("/questions/%d/id", i)
		if qs[q.ID] {
			return nil, pathError(at, "%q is asked twice", q.ID)
		}
		qs[q.ID] = true
		if !props[q.ID] {
			return nil, pathError(at, "%q is no property of the output schema", q.ID)
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.OutputSchema))
	if err != nil {
		return nil, pathError("/output_schema", "%v", err)
	}
	if err := c.AddResource("output.json", doc); err != nil {
		return nil, pathError("/output_schema", "%v", err)
	}
	if d.schema, err = c.Compile("output.json"); err != nil {
		return nil, pathError("/output_schema", "%v", err)
	}
	for name, src := range map[string]string{"system": d.Prompt.System, "user": d.Prompt.User} {
		if strings.TrimSpace(src) == "" {
			return nil, pathError("/prompt/"+name, "is empty")
		}
		t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, pathError("/prompt/"+name, "%v", err)
		}
		if name == "system" {
			d.system = t
		} else {
			d.user = t
		}
	}
	// Render a record with every field, so that a template naming a field
	// the data does not define fails now, not on a user's batch.
	if _, _, err := d.render(sampleRecord(d.Data)); err != nil {
		return nil, pathError("/prompt", "%v", err)
	}
	for i, v := range d.Rendering.Data {
		at := fmt.Sprintf("/rendering/data/%d", i)
		if _, ok := fields[v.Field]; !ok {
			return nil, pathError(at+"/field", "%q is no data field", v.Field)
		}
		if !slices.Contains(dataFormats, v.Format) {
			return nil, pathError(at+"/format", "%q: want one of %v", v.Format, dataFormats)
		}
	}
	for i, v := range d.Rendering.Output {
		at := fmt.Sprintf("/rendering/output/%d", i)
		if !slices.Contains(outputFormats, v.Format) {
			return nil, pathError(at+"/format", "%q: want one of %v", v.Format, outputFormats)
		}
		if !pointerResolves(d.schemaValue, v.Pointer) {
			return nil, pathError(at+"/pointer", "%q names no property of the output schema", v.Pointer)
		}
		if v.Format == "score" && (v.Min == nil || v.Max == nil || *v.Min >= *v.Max) {
			return nil, pathError(at, "a score needs min < max")
		}
		if v.Format == "table" && len(v.Columns) == 0 {
			return nil, pathError(at+"/columns", "a table needs columns")
		}
	}
	if err := d.CheckHints(); err != nil {
		return nil, err
	}
	return &d, nil
}

// position turns a byte offset into a line and column, from 1.
func position(raw []byte, off int64) (int, int) {
	off = min(off, int64(len(raw)))
	before := raw[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	return line, int(off) - bytes.LastIndexByte(before, '\n')
}

// checkStrict enforces what strict structured outputs demand (OpenAI's
// rules, which vLLM follows): every object closes its properties and
// requires them all.
func checkStrict(v any, at string) error {
	switch s := v.(type) {
	case map[string]any:
		if props, ok := s["properties"].(map[string]any); ok {
			if s["additionalProperties"] != false {
				return pathError(at+"/additionalProperties", "must be false (strict structured output)")
			}
			req, _ := s["required"].([]any)
			have := map[string]bool{}
			for _, r := range req {
				if name, ok := r.(string); ok {
					have[name] = true
				}
			}
			for _, k := range sortedKeys(props) {
				if !have[k] {
					return pathError(at+"/required", "must list %q: strict structured output requires every property", k)
				}
			}
		}
		for _, k := range sortedKeys(s) {
			if err := checkStrict(s[k], at+"/"+escapePointer(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, x := range s {
			if err := checkStrict(x, fmt.Sprintf("%s/%d", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// pointerResolves reports whether ptr names a property path of the schema:
// through properties, and through items for array indices or arrays.
func pointerResolves(schema any, ptr string) bool {
	if ptr == "" {
		return true
	}
	if !strings.HasPrefix(ptr, "/") {
		return false
	}
	cur := schema
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		obj, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if props, ok := obj["properties"].(map[string]any); ok {
			if next, ok := props[tok]; ok {
				cur = next
				continue
			}
		}
		if items, ok := obj["items"]; ok {
			if _, err := strconv.Atoi(tok); err == nil {
				cur = items
				continue
			}
		}
		return false
	}
	return true
}

// Get returns a version of a type; version 0 is the newest.
func (r *Registry) Get(id string, version int) (*Definition, error) {
	vs, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q (kiln knows %v)", ErrUnknownType, id, r.IDs())
	}
	if version == 0 {
		return vs[len(vs)-1], nil
	}
	for _, d := range vs {
		if d.Version == version {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no version %d (it has %v)", ErrUnknownVersion, id, version, r.Versions(id))
}

// Sentinel errors of Get.
var (
	ErrUnknownType    = errors.New("unknown conquest type")
	ErrUnknownVersion = errors.New("unknown conquest version")
)

// IDs lists the types, sorted.
func (r *Registry) IDs() []string { return sortedKeys(r.byID) }

// Versions lists a type's versions, ascending.
func (r *Registry) Versions(id string) []int {
	var out []int
	for _, d := range r.byID[id] {
		out = append(out, d.Version)
	}
	return out
}

// Latest lists the newest version of every type, by ID.
func (r *Registry) Latest() []*Definition {
	var out []*Definition
	for _, id := range r.IDs() {
		vs := r.byID[id]
		out = append(out, vs[len(vs)-1])
	}
	return out
}
