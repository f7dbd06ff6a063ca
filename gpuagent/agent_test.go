package gpuagent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// faultyBackend answers each request as its prompt says: "ok", "malformed"
// (a body that is not JSON), "flaky" (500 twice, then 200), "busy" (429
// once, then 200), "hang" (no answer until the client gives up), "reject"
// (400), "down" (500 always), "huge" (an answer over the agent's limit),
// "array" (200 with a JSON array) or "wrong" (200 with a JSON object that
// is not a chat completion).
type faultyBackend struct {
	mu    sync.Mutex
	tries map[string]int
}

func (f *faultyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"test"}]}`)
		return
	}
	var body struct {
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	prompt := body.Messages[0].Content
	mode, _, _ := strings.Cut(prompt, " ")
	f.mu.Lock()
	f.tries[prompt]++
	try := f.tries[prompt]
	f.mu.Unlock()
	ok := func() {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}
	switch {
	case mode == "malformed":
		fmt.Fprint(w, `{"id": "c", "choices": [`)
	case mode == "array":
		fmt.Fprint(w, `[]`)
	case mode == "wrong":
		fmt.Fprint(w, `{"object":"error","message":"the model is loading"}`)
	case mode == "flaky" && try <= 2, mode == "down":
		http.Error(w, `{"error":{"message":"engine error","type":"InternalServerError"}}`, http.StatusInternalServerError)
	case mode == "busy" && try == 1:
		http.Error(w, `{"error":{"message":"busy"}}`, http.StatusTooManyRequests)
	case mode == "hang":
		<-r.Context().Done()
	case mode == "huge":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"%s"}}]}`, strings.Repeat("x", 64<<10))
	case mode == "reject":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"bad request","type":"BadRequestError","param":null,"code":400}}`)
	default:
		ok()
	}
}

// asked is how often the engine was asked prompt.
func (f *faultyBackend) asked(prompt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[prompt]
}

// TestBackendFaults: whatever the engine does, every request ends in the
// output or the error file exactly once, with the right status or code.
func TestBackendFaults(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			be := &faultyBackend{tries: map[string]int{}}
			srv := httptest.NewServer(be)
			t.Cleanup(srv.Close)
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.LLMURL = srv.URL + "/v1"
				c.RequestTimeout = 300 * time.Millisecond
				c.MaxResponseBytes = 32 << 10
			}})
			c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(env.Key), option.WithMaxRetries(0))
			ctx := context.Background()

			modes := []string{"ok", "malformed", "flaky", "busy", "hang", "reject", "down", "huge", "array", "wrong"}
			var input bytes.Buffer
			for i, mode := range modes {
				for j := range 3 {
					line, _ := json.Marshal(map[string]any{"custom_id": fmt.Sprintf("%s-%d", mode, j), "method": "POST", "url": "/v1/chat/completions",
						"body": map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("%s %d %d", mode, i, j)}}}})
					input.Write(line)
					input.WriteByte('\n')
				}
			}
			f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(&input, "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
			require.NoError(t, err)
			b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: "24h"})
			require.NoError(t, err)
			deadline := time.Now().Add(time.Minute)
			for b.Status != openai.BatchStatusCompleted {
				require.True(t, time.Now().Before(deadline), "batch still %s", b.Status)
				<-time.After(50 * time.Millisecond)
				b, err = c.Batches.Get(ctx, b.ID)
				require.NoError(t, err)
			}

			got := map[string]map[string]any{}
			for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
				resp, err := c.Files.Content(ctx, id)
				require.NoError(t, err)
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					var l map[string]any
					require.NoError(t, json.Unmarshal(sc.Bytes(), &l))
					cid := l["custom_id"].(string)
					require.NotContains(t, got, cid, "duplicate custom_id")
					got[cid] = l
				}
				resp.Body.Close()
			}
			require.Len(t, got, len(modes)*3)
			require.EqualValues(t, 3*3, b.RequestCounts.Completed) // ok, flaky, busy
			require.EqualValues(t, 7*3, b.RequestCounts.Failed)
			for j := range 3 {
				status := func(mode string) any {
					return got[fmt.Sprintf("%s-%d", mode, j)]["response"].(map[string]any)["status_code"]
				}
				code := func(mode string) any { return got[fmt.Sprintf("%s-%d", mode, j)]["error"].(map[string]any)["code"] }
				require.EqualValues(t, 200, status("ok"))
				require.EqualValues(t, 200, status("flaky"), "retried after 500s")
				require.EqualValues(t, 200, status("busy"), "retried after 429")
				require.EqualValues(t, 400, status("reject"))
				require.EqualValues(t, 500, status("down"), "the last status after the retries")
				require.Equal(t, "invalid_response", code("malformed"))
				require.Equal(t, "invalid_response", code("array"), "a 200 whose JSON is no object")
				require.Equal(t, "invalid_response", code("wrong"), "a 200 whose JSON is no chat completion")
				require.Equal(t, "request_timeout", code("hang"))
				require.Equal(t, "response_too_large", code("huge"))
			}
			require.EqualValues(t, 9*3, b.Usage.InputTokens)
		})
	}
}
