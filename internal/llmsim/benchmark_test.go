package llmsim

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
)

// BenchmarkChatCompletion measures the simulator's own cost per request, with
// no simulated latency: what a benchmark of kiln pays for its stand-in LLM.
func BenchmarkChatCompletion(b *testing.B) {
	newSim := func(b *testing.B) *Server {
		sim, err := New(Config{TTFT: -1, TPOT: -1})
		if err != nil {
			b.Fatal(err)
		}
		return sim
	}
	body := func(b *testing.B, extra map[string]any) []byte {
		req := map[string]any{
			"model": ModelDefault,
			"messages": []any{
				map[string]any{"role": "system", "content": "You are a helpful assistant."},
				map[string]any{"role": "user", "content": "Summarise the following paragraph in one sentence: kilns fire clay at high heat."},
			},
			"max_tokens": 100,
		}
		for k, v := range extra {
			req[k] = v
		}
		data, err := json.Marshal(req)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"summary":  map[string]any{"type": "string"},
			"score":    map[string]any{"type": "integer", "minimum": 1, "maximum": 5},
			"keywords": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "maxItems": 4},
		},
		"required":             []string{"summary", "score", "keywords"},
		"additionalProperties": false,
	}
	cases := []struct {
		name  string
		extra map[string]any
	}{
		{"Text", nil},
		{"JSONSchema", map[string]any{"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "s", "schema": schema, "strict": true}}}},
		{"Stream", map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true}}},
	}

	for _, c := range cases {
		b.Run(c.name+"/Handler", func(b *testing.B) {
			h := newSim(b).Handler()
			data := body(b, c.extra)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(data))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}

	b.Run("Text/HTTP", func(b *testing.B) {
		sim := newSim(b)
		srv := httptest.NewServer(sim.Handler())
		defer srv.Close()
		client := srv.Client()
		client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		data := body(b, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader(data))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Error("status " + strconv.Itoa(resp.StatusCode))
					return
				}
			}
		})
		b.ReportMetric(float64(sim.Stats().PeakInFlight), "peak_in_flight")
	})
}

// BenchmarkGenerateJSON measures generating a document for schemas of the
// kinds structured outputs use, and for schemas that once took the generator
// exponential time (hardSchemas).
func BenchmarkGenerateJSON(b *testing.B) {
	run := func(b *testing.B, text string) {
		s := compileOurs(b, text)
		b.ReportAllocs()
		seed := uint64(0)
		for b.Loop() {
			seed++
			_, _ = generateJSON(s, requestHash(seed).rng(0))
		}
	}
	for _, name := range []string{"Person", "OrderWithDefs", "AnyOfOneOf", "RecursiveTree", "OpenAIStrict"} {
		b.Run(name, func(b *testing.B) { run(b, testSchemas[name]) })
	}
	hard := hardSchemas()
	for _, name := range slices.Sorted(maps.Keys(hard)) {
		b.Run("Hard/"+name, func(b *testing.B) { run(b, hard[name].text) })
	}
}
