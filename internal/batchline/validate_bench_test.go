package batchline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// benchInput is a batch input file of n chat completion requests as
// clients write them: a system and a user message of prose (some of it
// escaped or not ASCII), sampling settings and a response_format schema.
func benchInput(tb testing.TB, n int) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields(`the of and to in a is that for it as was with be by on not he this are or
		his from at which but have an they you were her she there been one all we their résumé
		naïve café Zürich 東京 データ "quoted" tab\there line\nbreak 5% $12.50 C:\path back\slash`)
	text := func(n int) string {
		var s strings.Builder
		for s.Len() < n {
			s.WriteString(words[rng.IntN(len(words))])
			s.WriteByte(' ')
		}
		return s.String()
	}
	schema := map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"name", "skills", "summary"},
		"properties": map[string]any{
			"name":    map[string]any{"type": "string"},
			"skills":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"summary": map[string]any{"type": "string", "maxLength": 2000},
		},
	}
	var buf bytes.Buffer
	for i := range n {
		line, err := json.Marshal(map[string]any{
			"custom_id": fmt.Sprintf("request-%07d", i),
			"method":    "POST",
			"url":       "/v1/chat/completions",
			"body": map[string]any{
				"model": "qwen2.5-7b-instruct",
				"messages": []map[string]any{
					{"role": "system", "content": text(100 + rng.IntN(400))},
					{"role": "user", "content": text(200 + rng.IntN(2800))},
				},
				"max_tokens":  512,
				"temperature": 0.2,
				"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{
					"name": "conquest-cv_parsing-v1", "strict": true, "schema": schema,
				}},
			},
		})
		if err != nil {
			tb.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// BenchmarkValidate measures Validate's throughput on a file of 10,000 chat
// completion requests (about 25 MB) against a baseline that only reads the
// same file's lines with the Scanner, in the same run; ratio's of-scan is
// Validate's throughput over the baseline's, the two taking turns.
//
//	go test -run '^$' -bench '^BenchmarkValidate$' -cpu 1 ./internal/batchline
func BenchmarkValidate(b *testing.B) {
	data := benchInput(b, 10_000)
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	opts := ValidateOpts{Endpoint: "/v1/chat/completions", MaxLineSize: 1 << 20, MaxRequests: 50_000}
	scan := func() {
		r, _ := open()
		sc := NewScanner(r, opts.MaxLineSize)
		n := 0
		for sc.Next() {
			if !Blank(sc.Bytes()) {
				n++
			}
		}
		if sc.Err() != nil || n != 10_000 {
			b.Fatal(n, sc.Err())
		}
	}
	validate := func() {
		sum, problems, err := Validate(open, opts)
		if err != nil || len(problems) > 0 || sum.Requests != 10_000 {
			b.Fatal(err, problems, sum.Requests)
		}
	}
	b.Run("scan-only-baseline", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			scan()
		}
	})
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			validate()
		}
	})
	// The ratio: the file scanned, then validated, in turn, so that both
	// share whatever else the machine runs.
	b.Run("ratio", func(b *testing.B) {
		var scanTime, validateTime time.Duration
		for b.Loop() {
			t0 := time.Now()
			scan()
			t1 := time.Now()
			validate()
			scanTime, validateTime = scanTime+t1.Sub(t0), validateTime+time.Since(t1)
		}
		b.ReportMetric(float64(scanTime)/float64(validateTime), "of-scan")
	})
}
