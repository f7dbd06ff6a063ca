package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
)

// Defaults of KilnOptions' fields.
const (
	// KilnRequestsPerSlotDefault sizes the batch: this many requests per
	// unit of the agent's concurrency, and at least KilnMinRequestsDefault,
	// so that kiln's fixed costs (upload, chunk flushes, finalization) weigh
	// as they would in a real batch, not more.
	KilnRequestsPerSlotDefault = 8
	KilnMinRequestsDefault     = 64
	KilnTimeoutDefault         = time.Hour
)

// KilnOptions configure the run through kiln.
type KilnOptions struct {
	// Requests is the batch's size. Default: KilnRequestsPerSlotDefault ×
	// the model's best concurrency, at least KilnMinRequestsDefault.
	Requests int
	// Dir keeps kiln's SQLite database and files. Default: a temporary
	// folder, removed at the end.
	Dir string
	// Timeout bounds each batch. Default: 1h.
	Timeout time.Duration
	// Log receives kiln's logs. Default: discarded.
	Log *slog.Logger
	// Version is reported by the in-process kiln. Default: "bench".
	Version string
}

// runKiln runs each model's workload through an in-process kiln on SQLite
// and a folder, its agent attached to the engine with the model's best
// concurrency, one model after the other.
func runKiln(ctx context.Context, o Options, models []ModelResult) error {
	ko := *o.Kiln
	ko.Timeout = cmp.Or(ko.Timeout, KilnTimeoutDefault)
	if ko.Log == nil {
		ko.Log = slog.New(slog.DiscardHandler)
	}
	for i := range models {
		m := &models[i]
		if m.Best == 0 {
			return fmt.Errorf("%s: no point of the sweep succeeded, so there is nothing to compare kiln with", m.Model)
		}
		r, err := kilnModel(ctx, o, ko, m.Model, m.Best)
		if err != nil {
			return fmt.Errorf("%s through kiln: %w", m.Model, err)
		}
		if p, ok := m.point(m.Best); ok && p.OutputTokensPerSecond > 0 {
			r.Ratio = r.OutputTokensPerSecond / p.OutputTokensPerSecond
		}
		m.Kiln = r
	}
	return nil
}

// kilnModel starts a kiln whose agent keeps concurrency requests in flight
// and runs one batch of model's workload through it. A kiln per model keeps
// each run's agent concurrency its own.
func kilnModel(ctx context.Context, o Options, ko KilnOptions, model string, concurrency int) (*KilnResult, error) {
	dir := ko.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kiln-bench-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else {
		dir = filepath.Join(dir, fmt.Sprintf("kiln-%d", time.Now().UnixNano()))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key := apikey.Prefix + "bench-" + rand.Text()
	cfg := config.Config{
		Addr:             "127.0.0.1:0",
		DatabaseURL:      "sqlite://" + filepath.ToSlash(filepath.Join(dir, "kiln.db")),
		ObjectStore:      "file://" + filepath.ToSlash(filepath.Join(dir, "objects")),
		APIKey:           key,
		Agent:            "on",
		LLMURL:           o.EngineURL,
		AgentConcurrency: concurrency,
		RequestTimeout:   o.RequestTimeout,
		ChunkInterval:    200 * time.Millisecond,
		LogLevel:         "error",
	}
	a, err := app.New(ctx, cfg, app.Options{Serve: true, Agent: true, Version: cmp.Or(ko.Version, "bench")}, ko.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Cfg.ShutdownTimeout)
		defer cancel()
		_ = a.Stop(stopCtx)
	}()
	if err := a.Start(ctx); err != nil {
		return nil, err
	}

	n := ko.Requests
	if n == 0 {
		n = max(KilnRequestsPerSlotDefault*concurrency, KilnMinRequestsDefault)
	}
	input, err := BatchInput(model, n, o.InputTokens, o.OutputTokens)
	if err != nil {
		return nil, err
	}
	cl := openai.NewClient(option.WithBaseURL("http://"+a.Addr()+"/v1/"), option.WithAPIKey(key))
	ctx, cancel := context.WithTimeout(ctx, ko.Timeout)
	defer cancel()

	start := time.Now()
	f, err := cl.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(input), "bench.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	b, err := cl.Batches.New(ctx, openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         map[string]string{"kiln_bench": model},
	})
	if err != nil {
		return nil, fmt.Errorf("create batch: %w", err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for b.Status != openai.BatchStatusCompleted {
		switch b.Status {
		case openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
			return nil, fmt.Errorf("batch %s %s", b.ID, b.Status)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("batch %s: %w", b.ID, ctx.Err())
		case <-tick.C:
		}
		if b, err = cl.Batches.Get(ctx, b.ID); err != nil {
			return nil, fmt.Errorf("batch %s: %w", b.ID, err)
		}
	}
	elapsed := time.Since(start)

	r := &KilnResult{Concurrency: concurrency, Requests: n, Completed: int(b.RequestCounts.Completed),
		Failed: int(b.RequestCounts.Failed), Seconds: elapsed.Seconds()}
	tokens := 0
	if b.OutputFileID != "" {
		if tokens, err = outputTokens(ctx, cl, b.OutputFileID); err != nil {
			return nil, err
		}
	}
	if secs := elapsed.Seconds(); secs > 0 {
		r.RequestsPerSecond = float64(r.Completed) / secs
		r.OutputTokensPerSecond = float64(tokens) / secs
	}
	return r, nil
}

// outputTokens sums the completion tokens of a batch's output file.
func outputTokens(ctx context.Context, cl openai.Client, fileID string) (int, error) {
	resp, err := cl.Files.Content(ctx, fileID)
	if err != nil {
		return 0, fmt.Errorf("download the output: %w", err)
	}
	defer resp.Body.Close()
	sum := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), config.MaxLineBytesDefault)
	for sc.Scan() {
		var line struct {
			Response struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Usage struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return 0, fmt.Errorf("the output: %w", err)
		}
		if line.Response.StatusCode == 200 {
			sum += line.Response.Body.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("the output: %w", err)
	}
	return sum, nil
}
