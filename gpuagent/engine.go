package gpuagent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Engine is the LLM engine an agent drives: vLLM, attached or managed, or
// kiln's simulator. A GPU holds one model at a time, so the agent loads one
// model, runs its work, and switches only when it must.
type Engine interface {
	// Models lists the models the engine can serve.
	Models(ctx context.Context) ([]Model, error)
	// Load makes model the loaded one, unloading the previous one where the
	// engine holds one at a time, and returns the backend that serves it.
	// It returns once the model answers /health, or when ctx ends.
	Load(ctx context.Context, model string) (Backend, error)
	// Ready waits until the loaded model's engine is healthy, after a
	// failure restarting it if the engine is managed, and returns how many
	// times it has been (re)started so far: a request that failed on an
	// earlier generation failed because the engine died, not because of the
	// request.
	Ready(ctx context.Context) (generation int, err error)
	// Close stops what the engine started.
	Close(ctx context.Context) error
}

// AttachEngine drives engines that run on their own: one OpenAI-compatible
// endpoint per model (kiln agent --endpoint model=url), or one endpoint for
// every model it lists (KILN_LLM_URL). Loading a model is switching
// endpoints.
type AttachEngine struct {
	byModel  map[string]*HTTPBackend
	fallback *HTTPBackend // serves the models it lists itself

	mu     sync.Mutex
	loaded string
}

// NewAttachEngine attaches to endpoints (model -> base URL) and, if not
// empty, to fallbackURL for the models it lists. maxResponseBytes bounds one
// answer (0: MaxResponseBytesDefault).
func NewAttachEngine(endpoints map[string]string, fallbackURL string, concurrency int, maxResponseBytes int64) *AttachEngine {
	e := &AttachEngine{byModel: map[string]*HTTPBackend{}}
	for m, u := range endpoints {
		e.byModel[m] = NewHTTPBackend(u, concurrency)
		e.byModel[m].MaxResponseBytes = maxResponseBytes
	}
	if fallbackURL != "" {
		e.fallback = NewHTTPBackend(fallbackURL, concurrency)
		e.fallback.MaxResponseBytes = maxResponseBytes
	}
	return e
}

// ParseEndpoints reads --endpoint values of the form model=url.
func ParseEndpoints(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		m, u, ok := strings.Cut(v, "=")
		if !ok || m == "" || !strings.HasPrefix(u, "http") {
			return nil, fmt.Errorf("endpoint %q: want model=http://host:port/v1", v)
		}
		out[m] = u
	}
	return out, nil
}

// Models implements Engine.
func (e *AttachEngine) Models(ctx context.Context) ([]Model, error) {
	var out []Model
	for _, m := range slices.Sorted(maps.Keys(e.byModel)) {
		out = append(out, Model{ID: m, OwnedBy: "attached"})
	}
	if e.fallback != nil {
		listed, err := e.fallback.Models(ctx)
		if err != nil {
			if len(out) == 0 {
				return nil, err
			}
			return out, nil
		}
		for _, m := range listed {
			if _, ok := e.byModel[m.ID]; !ok {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// Load implements Engine.
func (e *AttachEngine) Load(_ context.Context, model string) (Backend, error) {
	b := e.byModel[model]
	if b == nil {
		b = e.fallback
	}
	if b == nil {
		return nil, fmt.Errorf("no endpoint serves model %q", model)
	}
	e.mu.Lock()
	e.loaded = model
	e.mu.Unlock()
	return b, nil
}

// Ready implements Engine: an attached engine is someone else's to restart.
func (e *AttachEngine) Ready(context.Context) (int, error) { return 1, nil }

// Close implements Engine.
func (e *AttachEngine) Close(context.Context) error { return nil }
