package conquest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Tone is what a value means to a curator, which the workbench shows as a
// colour: a badge or a score bar is coloured from its tone, never from the
// look of the word (strong_no is negative although it starts with
// "strong").
type Tone string

// Tones.
const (
	TonePositive Tone = "positive"
	ToneNeutral  Tone = "neutral"
	ToneNegative Tone = "negative"
)

// Tones lists the tones.
var Tones = []Tone{TonePositive, ToneNeutral, ToneNegative}

// UnmarshalJSON refuses a tone that is not one of Tones, so that a
// definition with a typo does not load.
func (t *Tone) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if !slices.Contains(Tones, Tone(s)) {
		return fmt.Errorf("tone %q: want one of %v", s, Tones)
	}
	*t = Tone(s)
	return nil
}

// CheckHints checks the rendering hints' previews and tones, as loading a
// definition does: preview paths name data fields, and every tone names a
// value of its property's enum (or true and false for a boolean), with
// every enum value given a tone.
func (d *Definition) CheckHints() error {
	fields := map[string]bool{}
	for _, f := range d.Data {
		fields[f.Name] = true
	}
	for i, p := range d.Rendering.Preview {
		if !fields[strings.Split(p, ".")[0]] {
			return pathError(fmt.Sprintf("/rendering/preview/%d", i), "%q is no data field", p)
		}
	}
	for i, v := range d.Rendering.Output {
		at := fmt.Sprintf("/rendering/output/%d", i)
		if len(v.Tones) > 0 {
			if err := checkTones(d.schemaValue, v.Pointer, v.Tones, at+"/tones"); err != nil {
				return err
			}
		}
		for _, col := range sortedKeys(v.ColumnTones) {
			if !slices.Contains(v.Columns, col) {
				return pathError(at+"/column_tones/"+col, "%q is no column of the table", col)
			}
			if err := checkTones(d.schemaValue, v.Pointer+"/0/"+col, v.ColumnTones[col], at+"/column_tones/"+col); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTones checks tones against the enum of the property at ptr.
func checkTones(schema any, ptr string, tones map[string]Tone, at string) error {
	values, ok := enumAt(schema, ptr)
	if !ok {
		return pathError(at, "%s has no enum or boolean to give tones to", ptr)
	}
	for _, k := range sortedKeys(tones) {
		if !slices.Contains(values, k) {
			return pathError(at+"/"+k, "%q is no value of %s (it has %v)", k, ptr, values)
		}
	}
	for _, v := range values {
		if _, ok := tones[v]; !ok {
			return pathError(at, "gives %q of %s no tone", v, ptr)
		}
	}
	return nil
}

// enumAt returns the values of the enum (or boolean) at a property path,
// as strings.
func enumAt(schema any, ptr string) ([]string, bool) {
	cur := schema
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		obj, _ := cur.(map[string]any)
		if props, ok := obj["properties"].(map[string]any); ok && props[tok] != nil {
			cur = props[tok]
			continue
		}
		if items, ok := obj["items"]; ok {
			cur = items
			continue
		}
		return nil, false
	}
	obj, _ := cur.(map[string]any)
	if obj["type"] == "boolean" {
		return []string{"true", "false"}, true
	}
	raw, ok := obj["enum"].([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		out = append(out, fmt.Sprint(v))
	}
	return out, true
}
