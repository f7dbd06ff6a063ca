package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client sends the workload's requests to the engine.
type client struct {
	base   string // the engine's base URL, without a trailing slash
	key    string
	http   *http.Client
	opts   Options
	nextID atomic.Int64 // numbers the prompts across points, so none repeats
}

func newClient(o Options) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1024 // one connection per request in flight, kept
	return &client{base: strings.TrimRight(o.EngineURL, "/"), key: o.APIKey, opts: o,
		http: &http.Client{Transport: tr}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// Models lists the engine's models (GET /models).
func Models(ctx context.Context, engineURL, apiKey string) ([]string, error) {
	c := newClient(Options{EngineURL: engineURL, APIKey: apiKey})
	defer c.close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/models", nil)
	if err != nil {
		return nil, err
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list the engine's models: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("list the engine's models: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("list the engine's models: %w", err)
	}
	var out []string
	for _, m := range list.Data {
		out = append(out, m.ID)
	}
	if len(out) == 0 {
		return nil, errors.New("the engine lists no models")
	}
	return out, nil
}

func (c *client) auth(req *http.Request) {
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
}

// sample is one streamed request's measurement.
type sample struct {
	ttft, tpot   time.Duration
	promptTokens int
	outputTokens int
	err          error
}

// stream sends the i-th request streamed and times its tokens.
func (c *client) stream(ctx context.Context, model string, i int) sample {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	body, err := json.Marshal(request(model, i, c.opts.InputTokens, c.opts.OutputTokens, true))
	if err != nil {
		return sample{err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return sample{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	c.auth(req)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return sample{err: fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))}
	}
	var (
		s            sample
		first, last  time.Time
		chunks       int
		sawUsage     bool
		sc           = bufio.NewScanner(resp.Body)
		done         bool
		chunkPayload struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
	)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for !done && sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			done = true
			break
		}
		now := time.Now()
		chunkPayload.Choices, chunkPayload.Usage = nil, nil
		if err := json.Unmarshal(data, &chunkPayload); err != nil {
			return sample{err: fmt.Errorf("a stream chunk: %w", err)}
		}
		for _, ch := range chunkPayload.Choices {
			if ch.Delta.Content == "" {
				continue
			}
			if first.IsZero() {
				first = now
			}
			last = now
			chunks++
		}
		if u := chunkPayload.Usage; u != nil {
			s.promptTokens, s.outputTokens, sawUsage = u.PromptTokens, u.CompletionTokens, true
		}
	}
	if err := sc.Err(); err != nil {
		return sample{err: fmt.Errorf("the stream: %w", err)}
	}
	if !done {
		return sample{err: errors.New("the stream ended without [DONE]")}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // to EOF, so the connection is reused
	if first.IsZero() {
		return sample{err: errors.New("the stream had no tokens")}
	}
	if !sawUsage {
		s.outputTokens = chunks // an engine without include_usage: a chunk is about a token
	}
	s.ttft = first.Sub(start)
	if s.outputTokens > 1 {
		s.tpot = last.Sub(first) / time.Duration(s.outputTokens-1)
	}
	return s
}

// measure runs one point: n requests for model, concurrency at a time.
func (c *client) measure(ctx context.Context, model string, concurrency, n int) (Point, error) {
	samples := make([]sample, n)
	var next atomic.Int64
	base := int(c.nextID.Add(int64(n))) - n
	var wg sync.WaitGroup
	start := time.Now()
	for range min(concurrency, n) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= n || ctx.Err() != nil {
					return
				}
				samples[k] = c.stream(ctx, model, base+k)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return Point{}, err
	}
	return summarize(concurrency, samples, elapsed), nil
}

// summarize makes a point of its samples.
func summarize(concurrency int, samples []sample, elapsed time.Duration) Point {
	p := Point{Concurrency: concurrency, Requests: len(samples), Seconds: elapsed.Seconds()}
	var ttft, tpot []time.Duration
	var prompt, output int
	for _, s := range samples {
		if s.err != nil {
			if p.Failed == 0 {
				p.Error = s.err.Error()
			}
			p.Failed++
			continue
		}
		ttft = append(ttft, s.ttft)
		if s.outputTokens > 1 {
			tpot = append(tpot, s.tpot)
		}
		prompt += s.promptTokens
		output += s.outputTokens
	}
	if ok := len(samples) - p.Failed; ok > 0 {
		p.PromptTokens = float64(prompt) / float64(ok)
		if secs := elapsed.Seconds(); secs > 0 {
			p.RequestsPerSecond = float64(ok) / secs
			p.OutputTokensPerSecond = float64(output) / secs
		}
	}
	p.TTFT, p.TPOT = percentiles(ttft), percentiles(tpot)
	return p
}

// percentiles are the nearest-rank p50 and p90 of ds, in milliseconds.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	rank := func(q float64) float64 {
		i := max(int(math.Ceil(q*float64(len(ds))))-1, 0)
		return float64(ds[min(i, len(ds)-1)]) / float64(time.Millisecond)
	}
	return Percentiles{P50: rank(0.5), P90: rank(0.9)}
}
