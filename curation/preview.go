package curation

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kilnhq/kiln/internal/store"
)

// The queue's previews: what tells one task from another at a glance.

// previewPart is the most one field gives a preview; previewMax the most
// of a whole preview.
const (
	previewPart = 80
	previewMax  = 200
)

// clip keeps the first line of s, its spaces folded, up to n bytes.
func clip(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// dataPreview joins the values of a record's preview fields (a.b for a
// field of an object), each cut to its first line; "" when none has one.
func dataPreview(data map[string]any, paths []string) string {
	var parts []string
	for _, p := range paths {
		var v any = data
		for _, k := range strings.Split(p, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		var s string
		switch x := v.(type) {
		case nil:
		case string:
			s = x
		case []any:
			var items []string
			for _, it := range x {
				items = append(items, fmt.Sprint(it))
			}
			s = strings.Join(items, ", ")
		case map[string]any:
			b, _ := json.Marshal(x)
			s = string(b)
		default:
			s = fmt.Sprint(x)
		}
		if s = clip(s, previewPart); s != "" {
			parts = append(parts, s)
		}
	}
	return clip(strings.Join(parts, " · "), previewMax)
}

// promptPreview is the first line of the prompt's last message that says
// something of this task: not the conquest type's "# Task: …" header, nor
// its description (description, "" when unknown), nor a heading or a
// delimiter line.
func promptPreview(input json.RawMessage, description string) string {
	var in struct {
		Messages []struct {
			Content any `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(input, &in)
	if len(in.Messages) == 0 {
		return ""
	}
	s, _ := in.Messages[len(in.Messages)-1].Content.(string)
	description = strings.TrimSpace(description)
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, "<<<"), strings.HasSuffix(line, ">>>"),
			description != "" && line == description:
			continue
		}
		return clip(line, previewMax)
	}
	return ""
}

// withPreviews completes a page of the queue: each task's preview from its
// data record when the type names preview fields, and how many of its
// outputs are valid and rated. The records are read in one query per type
// on the page, not one per task.
func (d Deps) withPreviews(ctx context.Context, list []TaskSummary) error {
	if len(list) == 0 {
		return nil
	}
	at := map[string]int{}
	ids := make([]string, len(list))
	for i, t := range list {
		at[t.ID], ids[i] = i, t.ID
	}
	type wanted struct {
		at     int
		key    string
		fields []string
	}
	byType := map[string][]wanted{}
	err := d.Store.CurationEach(ctx, store.TaskFilter{Project: projectOf(ctx), IDs: ids}, func(t store.CurationTask, outs []store.CurationOutput) error {
		s := &list[at[t.ID]]
		for _, o := range outs {
			if o.Valid {
				s.Valid++
			}
			if o.Rating != nil {
				s.Rated++
			}
		}
		def, err := d.Schemas.Get(t.ConquestType, int(t.ConquestVersion))
		if err != nil {
			return nil // not a conquest type: the prompt's start will do
		}
		s.Preview = promptPreview(t.Input, def.Description)
		if len(def.Rendering.Preview) > 0 {
			byType[t.ConquestType] = append(byType[t.ConquestType], wanted{at[t.ID], t.Key, def.Rendering.Preview})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for typ, ws := range byType {
		keys := make([]string, len(ws))
		for i, w := range ws {
			keys[i] = w.key
		}
		records, err := d.Store.ConquestRecordList(ctx, projectOf(ctx), typ, keys)
		if err != nil {
			return err
		}
		for _, w := range ws {
			raw, ok := records[w.key]
			if !ok {
				continue // no record: its requests were built elsewhere
			}
			var data map[string]any
			if json.Unmarshal(raw, &data) == nil {
				if p := dataPreview(data, w.fields); p != "" {
					list[w.at].Preview = p
				}
			}
		}
	}
	return nil
}
