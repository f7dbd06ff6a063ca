package gpuagent

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/kilnhq/kiln/internal/config"
)

// Defaults of ManagedConfig's fields; MaxNumSeqs's is
// config.AgentConcurrencyDefault, vLLM's max_num_seqs default.
const (
	ManagedCommandDefault        = "vllm serve {{.Model}} --host {{.Host}} --port {{.Port}} --max-num-seqs {{.MaxNumSeqs}} --gpu-memory-utilization 0.90"
	ManagedSleepFlag             = "--enable-sleep-mode" // appended to the default command in sleep mode
	ManagedHostDefault           = "127.0.0.1"
	ManagedBasePortDefault       = 8100
	ManagedStartTimeoutDefault   = 10 * time.Minute
	ManagedStopTimeoutDefault    = 30 * time.Second
	ManagedHealthIntervalDefault = 2 * time.Second
	ManagedHealthFailuresDefault = 3
	ManagedRestartBackoffDefault = time.Second

	// managedRestartBackoffMax caps the doubling delay between restarts.
	managedRestartBackoffMax = 30 * time.Second
	// managedStartPoll is how often /health is polled while an engine starts.
	managedStartPoll = 200 * time.Millisecond
	// managedHealthTimeout bounds one /health check of a running engine.
	managedHealthTimeout = 5 * time.Second
	// managedPortRange is how many ports from BasePort are tried.
	managedPortRange = 1000
	// managedOutputTail is how many of an engine's last output lines a
	// start-up error quotes.
	managedOutputTail = 40
)

// Errors of ManagedEngine.
var (
	// ErrEngineClosed is returned by a ManagedEngine after Close.
	ErrEngineClosed = errors.New("managed engine: closed")
	// ErrNoModelLoaded is returned by Ready before a successful Load, or
	// after a Load failed.
	ErrNoModelLoaded = errors.New("managed engine: no model loaded")
)

// ManagedConfig configures a ManagedEngine.
type ManagedConfig struct {
	// Command is the engine's command line, a text/template with the fields
	// {{.Model}}, {{.Host}}, {{.Port}} and {{.MaxNumSeqs}}. After expansion
	// it is split into words as a POSIX shell would, without running one:
	// whitespace separates words, '…' quotes literally, "…" quotes with \"
	// and \\ as escapes, and a backslash outside quotes escapes the next
	// character. Values are inserted unquoted, so quote a model path that
	// may hold spaces: '{{.Model}}'. No variables, globs or redirections.
	// Default: ManagedCommandDefault, plus ManagedSleepFlag if SleepMode.
	Command string
	// Env is extra environment for the engine, as KEY=value, on top of the
	// agent's own. In sleep mode VLLM_SERVER_DEV_MODE=1 is added unless Env
	// sets it: vLLM serves /sleep and /wake_up only then. Default: none.
	Env []string
	// Models are the models the agent may load. Required.
	Models []string
	// MaxNumSeqs is the engine's --max-num-seqs, and the size of the
	// backend's connection pool. Default: 256.
	MaxNumSeqs int
	// Host is the address the engine listens on; the agent connects to it,
	// or to loopback if it is a wildcard address. Default: 127.0.0.1.
	Host string
	// BasePort is the first port tried. Each model gets the first free port
	// from there that no other engine of this process holds, and keeps it
	// across restarts, so its backend stays valid. Default: 8100.
	BasePort int
	// StartTimeout is how long an engine may take to answer GET /health
	// with 200 after it starts or wakes up; model loads are slow.
	// Default: 10m.
	StartTimeout time.Duration
	// StopTimeout is how long an engine may take to exit after SIGTERM
	// before it is killed. Default: 30s.
	StopTimeout time.Duration
	// HealthInterval is how often the loaded engine's /health is checked.
	// Default: 2s.
	HealthInterval time.Duration
	// HealthFailures is how many failed /health checks in a row mean the
	// engine is dead and must be restarted. Default: 3.
	HealthFailures int
	// RestartBackoff is the delay before the first restart of a dead
	// engine; each further attempt waits twice as long, up to 30s.
	// Default: 1s.
	RestartBackoff time.Duration
	// SleepMode switches models with POST /sleep?level=1 and POST /wake_up
	// instead of stopping one engine and starting the next: every model
	// loaded once keeps a process, asleep while another is loaded. Each
	// sleeping process keeps some GPU memory, and its weights in CPU memory.
	// Default: false.
	SleepMode bool
	// Log receives the engine's starts, stops, switches and restarts.
	// Default: discard.
	Log *slog.Logger
	// Metrics count the engine's restarts (kiln_engine_restarts_total).
	// Default: none.
	Metrics *Metrics
	// Stdout and Stderr receive the engine's output; in sleep mode several
	// engines may write at once. Default: Log at debug level, a line per
	// record.
	Stdout, Stderr io.Writer
}

// WithDefaults returns the config with its zero fields set to their defaults.
func (c ManagedConfig) WithDefaults() ManagedConfig {
	if c.Command == "" {
		c.Command = ManagedCommandDefault
		if c.SleepMode {
			c.Command += " " + ManagedSleepFlag
		}
	}
	c.MaxNumSeqs = cmp.Or(c.MaxNumSeqs, config.AgentConcurrencyDefault)
	c.Host = cmp.Or(c.Host, ManagedHostDefault)
	c.BasePort = cmp.Or(c.BasePort, ManagedBasePortDefault)
	c.StartTimeout = cmp.Or(c.StartTimeout, ManagedStartTimeoutDefault)
	c.StopTimeout = cmp.Or(c.StopTimeout, ManagedStopTimeoutDefault)
	c.HealthInterval = cmp.Or(c.HealthInterval, ManagedHealthIntervalDefault)
	c.HealthFailures = cmp.Or(c.HealthFailures, ManagedHealthFailuresDefault)
	c.RestartBackoff = cmp.Or(c.RestartBackoff, ManagedRestartBackoffDefault)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c ManagedConfig) validate() error {
	var errs []error
	if len(c.Models) == 0 {
		errs = append(errs, errors.New("invalid ManagedConfig.Models: at least one model is required"))
	}
	for i, m := range c.Models {
		if m == "" || slices.Contains(c.Models[:i], m) {
			errs = append(errs, fmt.Errorf("invalid ManagedConfig.Models: %q is empty or listed twice", m))
		}
	}
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{"MaxNumSeqs", c.MaxNumSeqs < 1},
		{"BasePort", c.BasePort < 1 || c.BasePort > 65535},
		{"StartTimeout", c.StartTimeout < 0},
		{"StopTimeout", c.StopTimeout < 0},
		{"HealthInterval", c.HealthInterval < 0},
		{"HealthFailures", c.HealthFailures < 1},
		{"RestartBackoff", c.RestartBackoff < 0},
	} {
		if f.bad {
			errs = append(errs, fmt.Errorf("invalid ManagedConfig.%s: out of range", f.name))
		}
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("invalid ManagedConfig.Env: %q is not KEY=value", kv))
		}
	}
	return errors.Join(errs...)
}

// ManagedEngine is an Engine that runs vLLM itself: one `vllm serve`
// process for the loaded model (or, in sleep mode, one per model, all but
// the loaded one asleep). It restarts the loaded model's engine when the
// process exits or stops answering /health, with backoff, for as long as
// the model stays loaded.
//
// Its generation, as Ready reports it, counts the times a model's engine
// became ready: each start, restart and (in sleep mode) wake-up.
//
// Each engine runs in a process group of its own, and stopping it signals
// the whole group, so vLLM's child processes go with it. An agent killed
// with SIGKILL cannot do that: its engines outlive it.
type ManagedEngine struct {
	cfg     ManagedConfig
	cmdTmpl *template.Template
	env     []string
	log     *slog.Logger
	client  *http.Client // for /health, /sleep and /wake_up

	// ctx ends at Close; it interrupts loads, restarts and graceful stops.
	ctx    context.Context
	cancel context.CancelFunc

	// loading serialises Load and Close; a channel so waiting honours ctx.
	loading chan struct{}

	mu      sync.Mutex
	slots   map[string]*modelSlot
	loaded  string // "" while none is
	healthy bool   // the loaded model's engine answers /health
	gen     int
	lastErr error         // why the loaded model is not healthy, or why the last Load failed
	changed chan struct{} // closed and replaced when loaded, healthy or gen change
	sup     *supervisor   // watches the loaded model's engine
	closed  bool
}

// modelSlot is what the engine keeps for a model once it has loaded it:
// its port and backend, stable for the engine's life, and its process.
type modelSlot struct {
	port    int
	backend *HTTPBackend
	proc    *engineProc // nil if none runs; guarded by ManagedEngine.mu
}

type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManagedEngine checks cfg and returns an engine with nothing started.
func NewManagedEngine(cfg ManagedConfig) (*ManagedEngine, error) {
	cfg = cfg.WithDefaults()
	cfg.Models = slices.Clone(cfg.Models)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("managed engine: %w", err)
	}
	tmpl, err := template.New("command").Option("missingkey=error").Parse(cfg.Command)
	if err != nil {
		return nil, fmt.Errorf("managed engine: invalid ManagedConfig.Command: %w", err)
	}
	e := &ManagedEngine{
		cfg:     cfg,
		cmdTmpl: tmpl,
		env:     slices.Concat(os.Environ(), cfg.Env),
		log:     cfg.Log,
		client:  &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConnsPerHost: 2}},
		loading: make(chan struct{}, 1),
		slots:   map[string]*modelSlot{},
		changed: make(chan struct{}),
	}
	if cfg.SleepMode && !slices.ContainsFunc(cfg.Env, func(kv string) bool { return strings.HasPrefix(kv, "VLLM_SERVER_DEV_MODE=") }) {
		e.env = append(e.env, "VLLM_SERVER_DEV_MODE=1")
	}
	if _, err := e.commandLine(cfg.Models[0], cfg.BasePort); err != nil {
		return nil, fmt.Errorf("managed engine: invalid ManagedConfig.Command: %w", err)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// commandLine expands the command template for model on port.
func (e *ManagedEngine) commandLine(model string, port int) ([]string, error) {
	var buf bytes.Buffer
	err := e.cmdTmpl.Execute(&buf, struct {
		Model      string
		Host       string
		Port       int
		MaxNumSeqs int
	}{model, e.cfg.Host, port, e.cfg.MaxNumSeqs})
	if err != nil {
		return nil, err
	}
	args, err := splitWords(buf.String())
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("the command is empty")
	}
	return args, nil
}

// Models implements Engine.
func (e *ManagedEngine) Models(context.Context) ([]Model, error) {
	out := make([]Model, len(e.cfg.Models))
	for i, m := range e.cfg.Models {
		out[i] = Model{ID: m, OwnedBy: "vllm"}
	}
	return out, nil
}

// Load implements Engine. It stops (or, in sleep mode, puts to sleep) the
// loaded model's engine, starts (or wakes) model's, and returns once that
// answers /health. If model is loaded already it waits until it is healthy.
// On error no model is loaded.
//
// Call it once the loaded model's requests are done: vLLM's /sleep aborts
// the requests in flight, and some versions crash on them.
func (e *ManagedEngine) Load(ctx context.Context, model string) (Backend, error) {
	if !slices.Contains(e.cfg.Models, model) {
		return nil, fmt.Errorf("managed engine: model %q is not one of %q", model, e.cfg.Models)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	select {
	case e.loading <- struct{}{}:
		defer func() { <-e.loading }()
	case <-ctx.Done():
		return nil, e.ctxErr(ctx)
	}

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrEngineClosed
	}
	if e.loaded == model {
		slot := e.slots[model]
		e.mu.Unlock()
		if _, err := e.Ready(ctx); err != nil {
			return nil, err
		}
		return slot.backend, nil
	}
	prev := e.loaded
	e.mu.Unlock()

	began := time.Now()
	e.stopSupervisor()
	e.setState(func() { e.loaded, e.healthy, e.lastErr = model, false, nil })
	if prev != "" {
		e.unload(ctx, prev)
	}
	slot, err := e.slot(model)
	if err == nil {
		err = e.bringUp(ctx, model, slot)
	}
	if err != nil {
		err = fmt.Errorf("managed engine: load %s: %w", model, err)
		e.setState(func() { e.loaded, e.healthy, e.lastErr = "", false, err })
		e.log.Error("engine load failed", "model", model, "from", prev, "took", time.Since(began), "err", err)
		return nil, e.ctxErrOr(ctx, err)
	}
	e.mu.Lock()
	p := slot.proc
	e.mu.Unlock()
	e.log.Info("engine switched", "model", model, "from", prev, "pid", p.pid, "port", slot.port, "took", time.Since(began))
	return slot.backend, nil
}

// unload stops the loaded model's engine, or puts it to sleep in sleep
// mode; an engine that will not sleep is stopped.
func (e *ManagedEngine) unload(ctx context.Context, model string) {
	e.mu.Lock()
	slot := e.slots[model]
	p := slot.proc
	e.mu.Unlock()
	if p == nil {
		return
	}
	if e.cfg.SleepMode && p.alive() {
		began := time.Now()
		err := e.post(ctx, p, "/sleep?level=1")
		if err == nil {
			e.log.Info("engine asleep", "model", model, "pid", p.pid, "port", p.port, "took", time.Since(began))
			return
		}
		e.log.Warn("engine would not sleep; stopping it", "model", model, "pid", p.pid, "port", p.port, "err", err)
	}
	e.stop(ctx, p)
	e.setState(func() { slot.proc = nil })
}

// bringUp makes model's engine run and answer /health, waking its sleeping
// process in sleep mode or starting one, and then supervises it.
func (e *ManagedEngine) bringUp(ctx context.Context, model string, slot *modelSlot) error {
	e.mu.Lock()
	p := slot.proc
	e.mu.Unlock()
	if p != nil {
		began := time.Now()
		var err error
		if p.alive() {
			err = e.post(ctx, p, "/wake_up")
			if err == nil {
				err = e.waitHealthy(ctx, p, true)
			}
		} else {
			err = errors.New("it exited while asleep: " + p.exitStatus())
		}
		if err == nil {
			e.log.Info("engine awake", "model", model, "pid", p.pid, "port", p.port, "took", time.Since(began))
		} else {
			if ctx.Err() != nil {
				return err
			}
			e.log.Warn("engine would not wake; starting a new one", "model", model, "pid", p.pid, "port", p.port, "err", err)
			e.kill(p)
			e.setState(func() { slot.proc = nil })
			p = nil
		}
	}
	if p == nil {
		var err error
		if p, err = e.start(ctx, model, slot.port); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	slot.proc = p
	e.gen++
	e.healthy = true
	e.broadcastLocked()
	e.superviseLocked(model, slot, p)
	return nil
}

// Ready implements Engine. It returns ctx's error, wrapped with the last
// restart error, if the engine does not become healthy before ctx ends:
// a dead engine is restarted with backoff for as long as it is loaded.
func (e *ManagedEngine) Ready(ctx context.Context) (int, error) {
	for {
		e.mu.Lock()
		closed, loaded, healthy, gen, lastErr, changed := e.closed, e.loaded, e.healthy, e.gen, e.lastErr, e.changed
		e.mu.Unlock()
		switch {
		case closed:
			return 0, ErrEngineClosed
		case loaded == "" && lastErr != nil:
			return 0, fmt.Errorf("%w: %w", ErrNoModelLoaded, lastErr)
		case loaded == "":
			return 0, ErrNoModelLoaded
		case healthy:
			return gen, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr != nil {
				return 0, fmt.Errorf("managed engine: %s is not ready: %w (last error: %v)", loaded, ctx.Err(), lastErr)
			}
			return 0, ctx.Err()
		}
	}
}

// Close implements Engine: it stops every engine process, gracefully unless
// ctx ends first. Later calls do nothing.
func (e *ManagedEngine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.broadcastLocked()
	e.mu.Unlock()

	// Interrupt a Load or restart in progress, then wait for it: starting
	// processes are killed by whoever started them.
	e.cancel()
	e.loading <- struct{}{}
	defer func() { <-e.loading }()
	e.stopSupervisor()

	e.mu.Lock()
	var procs []*engineProc
	var ports []int
	for _, s := range e.slots {
		if s.proc != nil {
			procs = append(procs, s.proc)
			s.proc = nil
		}
		ports = append(ports, s.port)
	}
	e.loaded, e.healthy = "", false
	e.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { e.stop(ctx, p) })
	}
	wg.Wait()
	for _, port := range ports {
		releasePort(port)
	}
	e.client.CloseIdleConnections()
	return nil
}

// slot returns model's slot, reserving a port for it the first time.
func (e *ManagedEngine) slot(model string) (*modelSlot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.slots[model]; s != nil {
		return s, nil
	}
	port, err := reservePort(e.cfg.Host, e.cfg.BasePort)
	if err != nil {
		return nil, err
	}
	s := &modelSlot{
		port:    port,
		backend: NewHTTPBackend("http://"+net.JoinHostPort(dialHost(e.cfg.Host), strconv.Itoa(port))+"/v1", e.cfg.MaxNumSeqs),
	}
	e.slots[model] = s
	return s, nil
}

func (e *ManagedEngine) setState(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
	e.broadcastLocked()
}

func (e *ManagedEngine) broadcastLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// ctxErr returns ctx's error, or ErrEngineClosed if Close ended it.
func (e *ManagedEngine) ctxErr(ctx context.Context) error {
	if e.ctx.Err() != nil {
		return ErrEngineClosed
	}
	return ctx.Err()
}

func (e *ManagedEngine) ctxErrOr(ctx context.Context, err error) error {
	if e.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrEngineClosed, err)
	}
	return err
}

// superviseLocked starts watching p, the loaded model's engine.
func (e *ManagedEngine) superviseLocked(model string, slot *modelSlot, p *engineProc) {
	ctx, cancel := context.WithCancel(e.ctx)
	s := &supervisor{cancel: cancel, done: make(chan struct{})}
	e.sup = s
	go func() {
		defer close(s.done)
		e.supervise(ctx, model, slot, p)
	}()
}

func (e *ManagedEngine) stopSupervisor() {
	e.mu.Lock()
	s := e.sup
	e.sup = nil
	e.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// supervise watches the loaded model's engine until ctx ends, and restarts
// it when its process exits or fails HealthFailures checks in a row.
func (e *ManagedEngine) supervise(ctx context.Context, model string, slot *modelSlot, p *engineProc) {
	tick := time.NewTicker(e.cfg.HealthInterval)
	defer tick.Stop()
	failures := 0
	for {
		var reason string
		select {
		case <-ctx.Done():
			return
		case <-p.exited:
			reason = "the process exited: " + p.exitStatus()
		case <-tick.C:
			err := e.checkHealth(ctx, p)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				failures = 0
				continue
			}
			failures++
			e.log.Debug("engine health check failed", "model", model, "pid", p.pid, "port", p.port, "failures", failures, "err", err)
			if failures < e.cfg.HealthFailures {
				continue
			}
			reason = fmt.Sprintf("/health failed %d times in a row: %v", failures, err)
		}

		dead := fmt.Errorf("engine for %s (pid %d) died: %s", model, p.pid, reason)
		e.setState(func() { e.healthy, e.lastErr = false, dead })
		e.log.Warn("engine died; restarting it", "model", model, "pid", p.pid, "port", p.port, "reason", reason, "tail", p.output.String())
		e.cfg.Metrics.engineRestart()
		e.kill(p)
		e.setState(func() { slot.proc = nil })

		if p = e.restart(ctx, model, slot); p == nil {
			return
		}
		failures = 0
		tick.Reset(e.cfg.HealthInterval)
	}
}

// restart starts model's engine again, with backoff, until it answers
// /health or ctx ends (then it returns nil).
func (e *ManagedEngine) restart(ctx context.Context, model string, slot *modelSlot) *engineProc {
	delay := e.cfg.RestartBackoff
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		began := time.Now()
		p, err := e.start(ctx, model, slot.port)
		if err == nil {
			// Even if ctx ended meanwhile: the slot holds the process, so
			// whoever ended ctx stops it.
			e.setState(func() {
				slot.proc = p
				e.gen++
				e.healthy, e.lastErr = true, nil
			})
			e.log.Warn("engine restarted", "model", model, "pid", p.pid, "port", p.port, "attempt", attempt, "took", time.Since(began))
			return p
		}
		if ctx.Err() != nil {
			return nil
		}
		e.setState(func() { e.lastErr = err })
		delay = min(2*delay, managedRestartBackoffMax)
		e.log.Warn("engine restart failed", "model", model, "attempt", attempt, "next_in", delay, "err", err)
	}
}

// engineProc is one engine process.
type engineProc struct {
	model string
	port  int
	pid   int
	// exited is closed when the process has exited and been reaped.
	exited  chan struct{}
	waitErr error // valid once exited is closed
	// outDone is closed when the output pipes reach EOF: every process
	// holding them, children too, has exited.
	outDone chan struct{}
	output  *lineTail
}

func (p *engineProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *engineProc) exitStatus() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// start starts model's engine on port and waits until it answers /health;
// on error it leaves no process behind.
func (e *ManagedEngine) start(ctx context.Context, model string, port int) (*engineProc, error) {
	args, err := e.commandLine(model, port)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	p, err := e.spawn(model, port, args)
	if err != nil {
		return nil, err
	}
	e.log.Info("engine starting", "model", model, "pid", p.pid, "port", port, "command", args)
	if err := e.waitHealthy(ctx, p, false); err != nil {
		e.kill(p)
		return nil, err
	}
	e.log.Info("engine started", "model", model, "pid", p.pid, "port", port, "took", time.Since(began))
	return p, nil
}

// spawn starts the process in a process group of its own, so that stopping
// it stops its children (vLLM's engine core and workers) too.
func (e *ManagedEngine) spawn(model string, port int, args []string) (*engineProc, error) {
	p := &engineProc{
		model:   model,
		port:    port,
		exited:  make(chan struct{}),
		outDone: make(chan struct{}),
		output:  &lineTail{max: managedOutputTail},
	}
	// The pipes are ours rather than exec's, so that Wait returns when the
	// process exits even if a child still holds them.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = e.env
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = engineProcAttr()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	p.pid = cmd.Process.Pid

	var copies sync.WaitGroup
	copies.Go(func() { e.copyOutput(outR, p, "stdout", e.cfg.Stdout) })
	copies.Go(func() { e.copyOutput(errR, p, "stderr", e.cfg.Stderr) })
	go func() {
		copies.Wait()
		close(p.outDone)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// copyOutput sends one of the engine's output streams to w, or to the log,
// keeping its last lines for error messages.
func (e *ManagedEngine) copyOutput(r *os.File, p *engineProc, stream string, w io.Writer) {
	defer r.Close()
	log := e.log.With("model", p.model, "pid", p.pid, "stream", stream)
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.output.add(line)
		switch {
		case w != nil:
			_, _ = io.WriteString(w, line+"\n")
		case debug:
			log.Debug(line)
		}
	}
	// A line longer than the buffer ends the scan; drain the rest so the
	// engine never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// errStartTimeout is the cause of waitHealthy's deadline.
var errStartTimeout = errors.New("start timeout")

// waitHealthy polls /health (and, after a wake-up, /is_sleeping) until the
// engine answers, failing early if the process exits.
func (e *ManagedEngine) waitHealthy(ctx context.Context, p *engineProc, woken bool) error {
	ctx, cancel := context.WithTimeoutCause(ctx, e.cfg.StartTimeout, errStartTimeout)
	defer cancel()
	tick := time.NewTicker(managedStartPoll)
	defer tick.Stop()
	var lastErr error
	for {
		err := e.checkHealth(ctx, p)
		if err == nil && woken {
			err = e.checkAwake(ctx, p)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || lastErr == nil {
			// Not the check the deadline cut short.
			lastErr = err
		}
		select {
		case <-p.exited:
			// Let the output readers catch the last words, unless a child
			// keeps the pipes open.
			t := time.NewTimer(2 * time.Second)
			select {
			case <-p.outDone:
			case <-t.C:
			}
			t.Stop()
			return fmt.Errorf("engine for %s exited during start-up (pid %d, %s); its last output:\n%s",
				p.model, p.pid, p.exitStatus(), p.output.String())
		case <-ctx.Done():
			if context.Cause(ctx) == errStartTimeout {
				return fmt.Errorf("engine for %s (pid %d) did not answer /health within %v (last error: %v); its last output:\n%s",
					p.model, p.pid, e.cfg.StartTimeout, lastErr, p.output.String())
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (e *ManagedEngine) baseURL(p *engineProc) string {
	return "http://" + net.JoinHostPort(dialHost(e.cfg.Host), strconv.Itoa(p.port))
}

func (e *ManagedEngine) checkHealth(ctx context.Context, p *engineProc) error {
	ctx, cancel := context.WithTimeout(ctx, managedHealthTimeout)
	defer cancel()
	status, _, err := e.call(ctx, http.MethodGet, e.baseURL(p)+"/health")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("/health answered %d", status)
	}
	return nil
}

func (e *ManagedEngine) checkAwake(ctx context.Context, p *engineProc) error {
	ctx, cancel := context.WithTimeout(ctx, managedHealthTimeout)
	defer cancel()
	status, body, err := e.call(ctx, http.MethodGet, e.baseURL(p)+"/is_sleeping")
	if err != nil {
		return err
	}
	var answer struct {
		IsSleeping *bool `json:"is_sleeping"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.IsSleeping == nil || *answer.IsSleeping {
		return fmt.Errorf("/is_sleeping answered %d %s", status, bytes.TrimSpace(body))
	}
	return nil
}

// post sends a sleep-mode command, which may take as long as a start.
func (e *ManagedEngine) post(ctx context.Context, p *engineProc, path string) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	status, body, err := e.call(ctx, http.MethodPost, e.baseURL(p)+path)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("POST %s answered %d %s", path, status, bytes.TrimSpace(body))
	}
	return nil
}

func (e *ManagedEngine) call(ctx context.Context, method, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, err
}

// stop stops p gracefully: SIGTERM to its process group, SIGKILL after
// StopTimeout or when ctx ends.
func (e *ManagedEngine) stop(ctx context.Context, p *engineProc) {
	began := time.Now()
	if p.alive() {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		t := time.NewTimer(e.cfg.StopTimeout)
		select {
		case <-p.exited:
		case <-t.C:
			e.log.Warn("engine ignored SIGTERM; killing it", "model", p.model, "pid", p.pid, "port", p.port, "after", e.cfg.StopTimeout)
		case <-ctx.Done():
			e.log.Warn("engine stop interrupted; killing it", "model", p.model, "pid", p.pid, "port", p.port, "err", ctx.Err())
		}
		t.Stop()
	}
	e.kill(p)
	e.log.Info("engine stopped", "model", p.model, "pid", p.pid, "port", p.port, "status", p.exitStatus(), "took", time.Since(began))
}

// kill kills p's process group, children left behind by a graceful exit
// included, and waits until p is reaped.
func (e *ManagedEngine) kill(p *engineProc) {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.exited
	// The group outlives its leader while a child lives; kill it again now
	// that nothing new can join it.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

// lineTail keeps the last lines of an engine's output.
type lineTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > 1000 {
		line = line[:1000] + "…"
	}
	if len(t.lines) == t.max {
		t.lines = slices.Delete(t.lines, 0, 1)
	}
	t.lines = append(t.lines, line)
}

func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// dialHost is where to connect to an engine listening on host.
func dialHost(host string) string {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return host
}

// Ports handed to engines of this process, so that engines started at once
// (tests, or several agents in one process) do not pick the same one.
var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// reservePort returns the first port from base that no engine of this
// process holds and that can be listened on now.
func reservePort(host string, base int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for port := base; port < base+managedPortRange && port <= 65535; port++ {
		if ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		ports[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d on %s", base, base+managedPortRange-1, host)
}

func releasePort(port int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	delete(ports, port)
}

// splitWords splits a command line into words as a POSIX shell does, for
// quotes and backslashes only: see ManagedConfig.Command.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("the command ends with a backslash")
			}
			i++
			word.WriteByte(s[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("the command has an unterminated ' quote")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				word.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New(`the command has an unterminated " quote`)
			}
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
