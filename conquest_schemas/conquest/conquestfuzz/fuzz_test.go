package conquestfuzz

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// FuzzCheckOutput: the output check never panics, and what it accepts is
// one JSON object holding an answer to every question.
//
//	go test -run '^$' -fuzz '^FuzzCheckOutput$' ./conquest_schemas/conquest/conquestfuzz/
func FuzzCheckOutput(f *testing.F) {
	r, err := conquest.Load()
	if err != nil {
		f.Fatal(err)
	}
	d, _ := r.Get("cv_parsing", 0)
	for seed := range uint64(4) {
		out, err := llmsim.GenerateJSON(d.OutputSchema, seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(out), "stop")
		f.Add(string(out[:len(out)/3]), "length")
		f.Add(strings.Replace(string(out), `"skills"`, `"skill"`, 1), "stop")
	}
	for _, s := range []string{"", "null", "{}", "[]", `{"summary":1}`, "Sure! Here it is:", `{"a":1} {"b":2}`, "\xff\xfe", `{"x":1e999}`} {
		f.Add(s, "stop")
	}
	f.Fuzz(func(t *testing.T, content, finish string) {
		v, e := d.CheckOutput(content, finish)
		if e != nil {
			if e.Reason == "" || e.Message == "" {
				t.Fatalf("an error without its reason: %+v", e)
			}
			return
		}
		if !json.Valid([]byte(content)) {
			t.Fatalf("accepted output that is not JSON: %q", content)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("accepted a %T, not an object", v)
		}
		for _, q := range d.Questions {
			if _, ok := obj[q.ID]; !ok {
				t.Fatalf("accepted output without %q", q.ID)
			}
		}
	})
}

// FuzzRender: any record of the right types renders into a request the
// batch validator accepts, with the data in the prompt verbatim (never
// evaluated as a template), and any line of input either becomes one
// request or one reported problem.
//
//	go test -run '^$' -fuzz '^FuzzRender$' ./conquest_schemas/conquest/conquestfuzz/
func FuzzRender(f *testing.F) {
	r, err := conquest.Load()
	if err != nil {
		f.Fatal(err)
	}
	d, _ := r.Get("cv_parsing", 0)
	f.Add("Ada Example\nEngineer at Northwind", "cand_1", "en", "")
	f.Add("{{.Data.candidate_id}} {{range .Questions}}x{{end}}", "c", "", "r-1")
	f.Add("\x00\xff\"\\\n\t</s>", "", "de", "custom")
	// Short: the fuzzer minimises every new input it keeps, in time
	// quadratic in its length, and counts no runs until it is done.
	f.Add(strings.Repeat("é", 24), "c2", "es", "")
	f.Fuzz(func(t *testing.T, resume, candidate, lang, customID string) {
		rec := map[string]any{"resume_text": resume, "candidate_id": candidate}
		if lang != "" {
			rec["target_language"] = lang
		}
		if customID != "" {
			rec[conquest.CustomIDField] = customID
		}
		line, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		rep, err := d.Build(bytes.NewReader(line), &out, conquest.BuildOptions{Model: "m"}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests+len(rep.Errors) != 1 {
			t.Fatalf("one record gave %d requests and %d errors", rep.Requests, len(rep.Errors))
		}
		if rep.Requests == 0 {
			return
		}
		in, model, p := batchline.ParseInput(bytes.TrimSpace(out.Bytes()), "/v1/chat/completions")
		if p != nil {
			t.Fatalf("the batch validator refused the request: %s", p.Message)
		}
		if model != "m" || in.CustomID == "" {
			t.Fatalf("model %q, custom_id %q", model, in.CustomID)
		}
		var body struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if err := json.Unmarshal(in.Body, &body); err != nil || len(body.Messages) != 2 {
			t.Fatalf("body: %v", err)
		}
		if utf8.ValidString(resume) && !strings.Contains(body.Messages[1].Content, resume) {
			t.Fatalf("the prompt lacks the resume verbatim")
		}
	})
}

// FuzzBuildLine: any input line becomes one request or one reported
// problem, never a panic.
func FuzzBuildLine(f *testing.F) {
	r, err := conquest.Load()
	if err != nil {
		f.Fatal(err)
	}
	d, _ := r.Get("quil_email", 0)
	f.Add([]byte(`{"candidate":{},"role":{}}`))
	f.Add([]byte(`{"candidate":[],"role":"x"}`))
	f.Add([]byte(`nul`))
	f.Add([]byte(`{"custom_id":"","candidate":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		line = bytes.ReplaceAll(line, []byte("\n"), nil)
		var out bytes.Buffer
		rep, err := d.Build(bytes.NewReader(line), &out, conquest.BuildOptions{Model: "m"}, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		blank := len(bytes.TrimSpace(line)) == 0
		if got := rep.Requests + len(rep.Errors); (blank && got != 0) || (!blank && got != 1) {
			t.Fatalf("line %q: %d requests, %d errors", line, rep.Requests, len(rep.Errors))
		}
	})
}
