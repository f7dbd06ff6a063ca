// Package llmsim is kiln's vLLM-like simulator (`kiln sim`): an
// OpenAI-compatible server that answers chat completions, completions,
// responses and embeddings the way vLLM's OpenAI server does, with
// configurable latency, capacity and fault injection, and with deterministic
// output.
//
// It is the stand-in for the LLM in kiln's tests and benchmarks, so it is
// exact where clients look (response shapes, error envelopes, usage, finish
// reasons, JSON that validates against the requested schema) and cheap per
// request: a request costs one timer, not one per token.
//
// Capacity follows vLLM's scheduler: at most MaxNumSeqs requests generate at
// once and the rest wait in a FIFO queue. A completion holds its slot for
// TTFT + TPOT × output tokens; a streamed one sends its first chunk at TTFT
// and one token per TPOT after that. The same request (model, messages or
// prompt, seed, schema) always gets the same output, and different prompts get
// different outputs.
//
// Routes: POST /v1/chat/completions and /v1/completions (with stream and
// stream_options.include_usage), POST /v1/responses (OpenAI's Responses
// API, not streamed, with text.format for structured outputs),
// POST /v1/embeddings, GET /v1/models,
// GET /health and GET /metrics (Prometheus: kiln_sim_* and vLLM's
// vllm:num_requests_running, vllm:num_requests_waiting and token counters),
// and sleep mode's POST /sleep, POST /wake_up and GET /is_sleeping (see
// sleep.go).
// Structured outputs (response_format json_schema or json_object, vLLM's
// structured_outputs and guided_* fields) produce JSON valid against the
// schema; see json_schema.go for the supported keywords. ErrorRate500,
// ErrorRate429 and TimeoutRate inject faults into valid requests.
package llmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is a simulated vLLM OpenAI server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg        Config
	ttft, tpot time.Duration
	faultRate  float64
	created    int64 // reported as the models' creation time
	idBase     uint64

	slots   *slotQueue
	metrics *metrics
	handler http.Handler

	// stopStalls releases requests held by timeout injection when Serve
	// shuts down; they would otherwise hold the shutdown until the clients
	// give up.
	stopStalls     chan struct{}
	stopStallsOnce sync.Once

	requests         atomic.Int64
	completed        atomic.Int64
	failed           atomic.Int64
	canceled         atomic.Int64
	stalled          atomic.Int64
	promptTokens     atomic.Int64
	completionTokens atomic.Int64
	firstRequestAt   atomic.Int64 // Unix nanoseconds, 0 before the first
	lastCompletedAt  atomic.Int64 // Unix nanoseconds, 0 before the first
	faultDraws       atomic.Uint64
	ids              atomic.Uint64
	sleepLevel       atomic.Int32 // 0 while awake; see sleep.go
	sleeps           atomic.Int64
	wakeUps          atomic.Int64

	// holdHook, set only by tests, replaces the wait for the generation
	// time while a request holds its slot, so tests control when it ends.
	holdHook func(ctx context.Context) error
}

// Stats are a Server's counters, for tests and benchmarks.
type Stats struct {
	// Requests counts the inference requests received (chat completions,
	// completions, responses, embeddings), whatever their outcome. Each ends up in
	// exactly one of Completed, Failed or Canceled.
	Requests int64
	// Completed counts requests answered 200 in full.
	Completed int64
	// Failed counts requests answered with an error status, injected or not.
	Failed int64
	// Canceled counts requests whose client went away before the answer,
	// including those held by timeout injection.
	Canceled int64
	// InFlight is how many requests hold a generation slot now.
	InFlight int64
	// Queued is how many requests wait for a slot now.
	Queued int64
	// Stalled is how many requests timeout injection holds now.
	Stalled int64
	// PeakInFlight is the most requests that ever held a slot at once.
	PeakInFlight int64
	// PromptTokens and CompletionTokens sum the usage of completed requests.
	PromptTokens     int64
	CompletionTokens int64
	// FirstRequestAt is when the first inference request arrived; zero if
	// none has.
	FirstRequestAt time.Time
	// LastCompletedAt is when the latest completed request finished; zero
	// if none has.
	LastCompletedAt time.Time
	// SleepLevel is the level the engine sleeps at (POST /sleep), or 0 while
	// it is awake.
	SleepLevel int
	// Sleeps and WakeUps count the times the engine went to sleep and woke
	// up; a /sleep or /wake_up that finds it so already is not counted.
	Sleeps  int64
	WakeUps int64
}

// New returns a Server for cfg, with defaults applied.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Models = append([]string(nil), cfg.Models...)
	now := time.Now()
	s := &Server{
		cfg:        cfg,
		ttft:       max(cfg.TTFT, 0),
		tpot:       max(cfg.TPOT, 0),
		faultRate:  cfg.ErrorRate500 + cfg.ErrorRate429 + cfg.TimeoutRate,
		created:    now.Unix(),
		idBase:     mix64(uint64(now.UnixNano())),
		slots:      newSlotQueue(cfg.MaxNumSeqs),
		stopStalls: make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests:         s.requests.Load(),
		Completed:        s.completed.Load(),
		Failed:           s.failed.Load(),
		Canceled:         s.canceled.Load(),
		InFlight:         s.slots.running.Load(),
		Queued:           s.slots.waiting.Load(),
		Stalled:          s.stalled.Load(),
		PeakInFlight:     s.slots.peak.Load(),
		PromptTokens:     s.promptTokens.Load(),
		CompletionTokens: s.completionTokens.Load(),
		SleepLevel:       int(s.sleepLevel.Load()),
		Sleeps:           s.sleeps.Load(),
		WakeUps:          s.wakeUps.Load(),
	}
	if ns := s.firstRequestAt.Load(); ns != 0 {
		st.FirstRequestAt = time.Unix(0, ns)
	}
	if ns := s.lastCompletedAt.Load(); ns != 0 {
		st.LastCompletedAt = time.Unix(0, ns)
	}
	return st
}

// ShutdownTimeout is how long Serve waits for in-flight requests when its
// context ends before it closes the remaining connections.
const ShutdownTimeout = 10 * time.Second

// Serve runs a simulator for cfg on addr until ctx ends, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish for up to
// ShutdownTimeout, and returns nil. log may be nil.
func Serve(ctx context.Context, addr string, cfg Config, log *slog.Logger) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.serve(ctx, ln, log)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("kiln sim listening",
		"addr", ln.Addr().String(),
		"models", s.cfg.Models,
		"max_num_seqs", s.cfg.MaxNumSeqs,
		"ttft", s.ttft,
		"tpot", s.tpot,
		"output_tokens", s.cfg.OutputTokens)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	s.stopStallsOnce.Do(func() { close(s.stopStalls) })
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("kiln sim: in-flight requests outlived the shutdown timeout; closing them", "err", err)
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("kiln sim stopped", "requests", s.requests.Load(), "completed", s.completed.Load())
	return nil
}

// Route names, as the metrics label them.
const (
	routeChat       = "chat_completions"
	routeCompletion = "completions"
	routeEmbedding  = "embeddings"
	routeResponses  = "responses"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/chat/completions", onlyMethod(http.MethodPost, s.awake(routeChat, http.HandlerFunc(s.handleChatCompletion))))
	mux.Handle("/v1/completions", onlyMethod(http.MethodPost, s.awake(routeCompletion, http.HandlerFunc(s.handleCompletion))))
	mux.Handle("/v1/responses", onlyMethod(http.MethodPost, s.awake(routeResponses, http.HandlerFunc(s.handleResponse))))
	mux.Handle("/v1/embeddings", onlyMethod(http.MethodPost, s.awake(routeEmbedding, http.HandlerFunc(s.handleEmbedding))))
	mux.Handle("/v1/models", onlyMethod(http.MethodGet, http.HandlerFunc(s.handleModels)))
	mux.Handle("/health", onlyMethod(http.MethodGet, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	mux.Handle("/sleep", onlyMethod(http.MethodPost, http.HandlerFunc(s.handleSleep)))
	mux.Handle("/wake_up", onlyMethod(http.MethodPost, http.HandlerFunc(s.handleWakeUp)))
	mux.Handle("/is_sleeping", onlyMethod(http.MethodGet, http.HandlerFunc(s.handleIsSleeping)))
	mux.Handle("/metrics", onlyMethod(http.MethodGet, promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeRaw(w, http.StatusNotFound, []byte(`{"detail":"Not Found"}`))
	})
	return mux
}

// onlyMethod answers other methods as vLLM's FastAPI app does.
func onlyMethod(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeRaw(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// received records the arrival of an inference request.
func (s *Server) received() {
	s.requests.Add(1)
	if s.firstRequestAt.Load() == 0 {
		s.firstRequestAt.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (s *Server) complete(route string, promptTokens, completionTokens int) {
	s.promptTokens.Add(int64(promptTokens))
	s.completionTokens.Add(int64(completionTokens))
	s.lastCompletedAt.Store(time.Now().UnixNano())
	s.completed.Add(1)
	s.metrics.observe(route, http.StatusOK)
}

func (s *Server) cancel(route string) {
	s.canceled.Add(1)
	s.metrics.observe(route, statusCanceled)
}

// apiError is an error answered in vLLM's error envelope.
type apiError struct {
	status  int
	typ     string
	message string
	param   string
}

func badRequest(param, message string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "BadRequestError", message: message, param: param}
}

type errorEnvelope struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

func (s *Server) fail(w http.ResponseWriter, route string, e *apiError) {
	s.failed.Add(1)
	s.metrics.observe(route, e.status)
	body := errorBody{Message: e.message, Type: e.typ, Code: e.status}
	if e.param != "" {
		body.Param = &e.param
	}
	writeJSON(w, e.status, errorEnvelope{Error: body})
}

// checkModel returns the requested model if it is served.
func (s *Server) checkModel(model *string) (string, *apiError) {
	if model == nil || *model == "" {
		return "", badRequest("model", "model: Field required")
	}
	for _, m := range s.cfg.Models {
		if m == *model {
			return m, nil
		}
	}
	return "", &apiError{
		status:  http.StatusNotFound,
		typ:     "NotFoundError",
		message: "The model `" + *model + "` does not exist.",
	}
}

// injectFault draws whether this request gets an injected fault and, if so,
// answers it (or holds it) and reports true. The k-th draw of a server
// depends only on Seed and k.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, route string) bool {
	if s.faultRate == 0 {
		return false
	}
	n := s.faultDraws.Add(1)
	u := float64(mix64(uint64(s.cfg.Seed)^mix64(n))>>11) / (1 << 53)
	switch {
	case u < s.cfg.ErrorRate500:
		s.fail(w, route, &apiError{
			status:  http.StatusInternalServerError,
			typ:     "InternalServerError",
			message: "kiln sim: injected internal server error",
		})
	case u < s.cfg.ErrorRate500+s.cfg.ErrorRate429:
		w.Header().Set("Retry-After", "1")
		s.fail(w, route, &apiError{
			status:  http.StatusTooManyRequests,
			typ:     "RateLimitError",
			message: "kiln sim: injected rate limit",
		})
	case u < s.faultRate:
		s.stalled.Add(1)
		select {
		case <-r.Context().Done():
			s.stalled.Add(-1)
			s.cancel(route)
		case <-s.stopStalls:
			s.stalled.Add(-1)
			s.cancel(route)
			// Drop the connection: answering anything, even an empty 200,
			// would not be a timeout.
			panic(http.ErrAbortHandler)
		}
	default:
		return false
	}
	return true
}

// hold keeps the calling request in its slot for d, or until the client
// goes away.
func (s *Server) hold(ctx context.Context, d time.Duration) error {
	if s.holdHook != nil {
		return s.holdHook(ctx)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newID returns a vLLM-style request ID: prefix and 32 hex digits.
func (s *Server) newID(prefix string) string {
	n := s.ids.Add(1)
	hi := mix64(s.idBase + n)
	buf := make([]byte, 0, len(prefix)+32)
	buf = append(buf, prefix...)
	buf = appendHex64(buf, hi)
	buf = appendHex64(buf, mix64(hi^n))
	return string(buf)
}

// maxRequestBytes bounds request bodies.
const maxRequestBytes = 64 << 20

// decodeRequest reads the JSON body into v.
func decodeRequest(w http.ResponseWriter, r *http.Request, v any) *apiError {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= maxRequestBytes {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxRequestBytes)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "BadRequestError", message: "request body too large"}
		}
		return badRequest("", "cannot read the request body: "+err.Error())
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return badRequest(jsonErrorField(err), "Invalid request body: "+err.Error())
	}
	return nil
}

func jsonErrorField(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return te.Field
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are marshalled; this is a bug.
		panic("llmsim: marshal response: " + err.Error())
	}
	writeRaw(w, status, body)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
