package curation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/dbtext"
	"github.com/kilnhq/kiln/internal/store"
)

// BulkRecord is one line of an external JSONL import: a prompt and one
// model's answer to it.
type BulkRecord struct {
	// Type is the conquest type (or any name for other tasks).
	Type string `json:"type"`
	// Key identifies the task within its type; default: the hash of the
	// messages.
	Key      string          `json:"key,omitempty"`
	Messages json.RawMessage `json:"messages"`
	Model    string          `json:"model"`
	// Output is the model's answer: a string, or JSON (kept as JSON text).
	Output json.RawMessage `json:"output"`
	// Source tells outputs of one task and model apart (default
	// "import"): one output per task and source.
	Source string `json:"source,omitempty"`
}

// maxBulkLine bounds one line of a bulk import.
const maxBulkLine = MaxOutputBytes + (1 << 20)

// parseBulk reads an external JSONL import into items of a project's
// tasks.
func (d Deps) parseBulk(project string, body []byte) ([]store.ImportItem, ImportResult) {
	res := ImportResult{Object: "curation.import"}
	fail := func(line int, msg string) {
		if len(res.Errors) < 100 {
			res.Errors = append(res.Errors, importError{Line: line, Message: msg})
		}
	}
	var items []store.ImportItem
	sc := batchline.NewScanner(bytes.NewReader(body), maxBulkLine)
	for sc.Next() {
		if sc.TooLong() {
			fail(sc.Line(), fmt.Sprintf("the line is longer than %d bytes", maxBulkLine))
			continue
		}
		if batchline.Blank(sc.Bytes()) {
			continue
		}
		if path, err := dbtext.CheckJSON(sc.Bytes()); err != nil {
			fail(sc.Line(), fmt.Sprintf("%s: the value %v", path, err))
			continue
		}
		var r BulkRecord
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			fail(sc.Line(), "not a record: "+err.Error())
			continue
		}
		if r.Type == "" || r.Model == "" || len(r.Messages) == 0 || len(r.Output) == 0 {
			fail(sc.Line(), "type, messages, model and output are required")
			continue
		}
		if err := checkTaskType(r.Type); err != nil {
			fail(sc.Line(), err.Error())
			continue
		}
		var msgs []map[string]any
		if json.Unmarshal(r.Messages, &msgs) != nil {
			fail(sc.Line(), "messages must be an array of {role, content}")
			continue
		}
		content := string(r.Output)
		var s string
		if json.Unmarshal(r.Output, &s) == nil {
			content = s
		}
		key := r.Key
		if key == "" {
			key = KeyOf(r.Messages)
		}
		source := r.Source
		if source == "" {
			source = "import"
		}
		o := store.CurationOutput{BatchID: "import:" + source + ":" + r.Model, Model: r.Model, Content: content, Valid: true}
		version := int64(0)
		if def, err := d.Schemas.Get(r.Type, 0); err == nil {
			version = int64(def.Version)
			if _, e := def.CheckOutput(content, "stop"); e != nil {
				o.Valid, o.Reason, o.Message = false, e.Reason, e.Message
			}
		}
		input, _ := json.Marshal(map[string]json.RawMessage{"messages": r.Messages})
		items = append(items, store.ImportItem{ProjectID: project, ConquestType: r.Type, ConquestVersion: version, Key: key, Input: input,
			SearchText: SearchText(r.Messages), Output: o})
	}
	return items, res
}

// importLabelStudioTasks imports Label Studio's JSON export as tasks of
// type typ, in the request's project.
func (d Deps) importLabelStudioTasks(ctx context.Context, typ string, body []byte) (ImportResult, error) {
	project := projectOf(ctx)
	var tasks []struct {
		ID   any            `json:"id"`
		Data map[string]any `json:"data"`
		// Predictions and annotations share a shape.
		Predictions []lsResult `json:"predictions"`
		Annotations []lsResult `json:"annotations"`
	}
	if err := json.Unmarshal(body, &tasks); err != nil {
		return ImportResult{}, apierror.InvalidCode("", "invalid_label_studio", "The body is not a Label Studio JSON export (an array of tasks): "+err.Error())
	}
	if len(tasks) == 0 { // [] or null
		return ImportResult{}, apierror.InvalidCode("", "invalid_label_studio", "The body holds no task: a Label Studio JSON export is an array of one task or more.")
	}
	res := ImportResult{Object: "curation.import"}
	var items []store.ImportItem
	gold := map[string]string{} // task key → gold answer text
	for i, t := range tasks {
		msgs := json.RawMessage(nil)
		if m, ok := t.Data["messages"]; ok {
			msgs, _ = json.Marshal(m)
		} else {
			prompt := ""
			for _, k := range []string{"prompt", "text", "input"} {
				if s, ok := t.Data[k].(string); ok {
					prompt = s
					break
				}
			}
			if prompt == "" {
				res.Errors = append(res.Errors, importError{Line: i + 1, Message: "task has no data.prompt, data.text, data.input or data.messages"})
				continue
			}
			msgs, _ = json.Marshal([]map[string]string{{"role": "user", "content": prompt}})
		}
		key := fmt.Sprint(t.Data["kiln_task_id"])
		if t.Data["key"] != nil {
			key = fmt.Sprint(t.Data["key"])
		}
		if key == "<nil>" || key == "" {
			key = KeyOf(msgs)
		}
		input, _ := json.Marshal(map[string]json.RawMessage{"messages": msgs})
		add := func(model, source, text string) {
			items = append(items, store.ImportItem{ProjectID: project, ConquestType: typ, Key: key, Input: input, SearchText: SearchText(msgs),
				Output: store.CurationOutput{BatchID: "label_studio:" + source, Model: model, Content: text, Valid: true}})
		}
		for j, p := range t.Predictions {
			model := p.ModelVersion
			if model == "" {
				model = fmt.Sprintf("prediction-%d", j+1)
			}
			add(model, "prediction:"+model, p.text())
		}
		for j, a := range t.Annotations {
			if a.GroundTruth {
				add("annotator", fmt.Sprintf("annotation:%d", j), a.text())
				gold[key] = a.text()
			}
		}
	}
	r, err := d.Store.CurationImport(ctx, "", items)
	if err != nil {
		return res, err
	}
	res.Tasks, res.Outputs = r.Tasks, r.Outputs
	// Ground truth becomes the gold star (unless the task has one): the
	// annotator's output.
	for key := range gold {
		id, err := d.Store.CurationTaskIDByKey(ctx, project, typ, key)
		if err != nil {
			return res, err
		}
		t, outs, _, err := d.Store.CurationTaskGet(ctx, id)
		if err != nil {
			return res, err
		}
		if t.GoldOutputID != nil {
			continue
		}
		for _, o := range outs {
			if strings.HasPrefix(o.BatchID, "label_studio:annotation:") {
				g := o.ID
				if err := d.Store.CurationAnnotate(ctx, t.ID, t.Version, "label-studio-import", store.Annotation{Gold: &g}); err != nil {
					return res, err
				}
				break
			}
		}
	}
	return res, nil
}

type lsResult struct {
	ModelVersion string `json:"model_version"`
	GroundTruth  bool   `json:"ground_truth"`
	Result       []struct {
		Value map[string]any `json:"value"`
	} `json:"result"`
}

// text is the answer a Label Studio result holds: a textarea's text, or
// the value as JSON.
func (r lsResult) text() string {
	if len(r.Result) == 0 {
		return ""
	}
	v := r.Result[0].Value
	if t, ok := v["text"].([]any); ok && len(t) > 0 {
		if s, ok := t[0].(string); ok {
			return s
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// taskTypeLen bounds a task type's name.
const taskTypeLen = 64

// checkTaskType checks the name of a task type that an import gives: a
// conquest type's ID or a name of the same shape (lower-case letters,
// digits, _ and -), so that it is safe in URLs, file names and pages.
func checkTaskType(typ string) error {
	if typ == "" || len(typ) > taskTypeLen {
		return fmt.Errorf("a type is 1 to %d characters", taskTypeLen)
	}
	for _, r := range typ {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("type %q may hold only lower-case letters, digits, _ and -", typ)
		}
	}
	return nil
}
