package faulttest_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/testenv"
)

// chaosProc is a kiln process (serve, agent or sim) that a chaos run kills
// and starts again, on the same address and settings. Like a supervisor
// (systemd's Restart=always), it starts again a process that exits on its
// own, as kiln does when its database is down while it starts; it counts
// those exits. Its logs go to files, one per start, in dir.
type chaosProc struct {
	t    *testing.T
	name string
	dir  string
	args []string
	env  []string
	// ready answers nil once a started process serves; nil: started is
	// enough.
	ready func(context.Context) error

	mu     sync.Mutex
	p      *testenv.Process
	starts int
	exits  int  // exits of its own, after it was ready
	down   bool // killed by the run, which starts it again
	quit   bool // the run is over: no more starts
}

// errProcExited is a start whose process died before it was ready, as
// kiln does when its database or object store is down.
var errProcExited = errors.New("exited before it was ready")

// start starts the process, unless it runs, and waits until it is ready.
// A process that exits first (its database or object store is down) is
// started again, until deadline.
func (c *chaosProc) start(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
	if c.alive() || c.quit {
		return nil
	}
	var last error
	for attempt := 0; time.Now().Before(deadline) && !c.quit; attempt++ {
		if attempt > 0 {
			// A pause between starts, so that a process that cannot
			// reach its database does not spin: the restart policy of
			// a supervisor, not a wait for kiln.
			<-time.After(min(time.Duration(attempt)*100*time.Millisecond, time.Second))
		}
		c.starts++
		logPath := filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", c.name, c.starts))
		logFile, err := os.Create(logPath)
		if err != nil {
			return err
		}
		cmd := exec.Command(c.args[0], c.args[1:]...)
		cmd.Env = c.env
		cmd.Stdout, cmd.Stderr = logFile, logFile
		p := testenv.StartProcess(c.t, cmd)
		logFile.Close() // the process has its own descriptor
		c.p = p
		last = nil
		if c.ready != nil {
			last = c.waitReady(p, deadline)
		}
		if last == nil {
			go c.watch(p)
			return nil
		}
		if !errors.Is(last, errProcExited) {
			// It hangs: its goroutines go to its log.
			_ = p.Signal(syscall.SIGQUIT)
			select {
			case <-p.Done():
			case <-time.After(5 * time.Second):
			}
		}
		killProc(p)
	}
	if c.quit {
		return nil
	}
	return fmt.Errorf("%s did not start by the deadline: %w", c.name, last)
}

// watch starts the process again if it exits on its own.
func (c *chaosProc) watch(p *testenv.Process) {
	<-p.Done()
	c.mu.Lock()
	again := c.p == p && !c.down && !c.quit
	if again {
		c.exits++
	}
	c.mu.Unlock()
	if again {
		if err := c.start(time.Now().Add(waitFor)); err != nil {
			c.t.Logf("supervisor: %v", err)
		}
	}
}

func (c *chaosProc) alive() bool {
	if c.p == nil {
		return false
	}
	select {
	case <-c.p.Done():
		return false
	default:
		return true
	}
}

func (c *chaosProc) waitReady(p *testenv.Process, deadline time.Time) error {
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("%s: %w: %v", c.name, errProcExited, p.Err())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-p.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill kills the process with SIGKILL and waits for it to exit; the run
// starts it again.
func (c *chaosProc) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	if c.p != nil {
		killProc(c.p)
	}
}

// stop kills the process for good, at the end of the run.
func (c *chaosProc) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quit = true
	if c.p != nil {
		killProc(c.p)
	}
}

// killProc kills p with SIGKILL and waits for it to exit. Unlike
// Process.Kill it needs no t, so fault goroutines may call it.
func killProc(p *testenv.Process) {
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// selfExits is how often the process exited on its own.
func (c *chaosProc) selfExits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exits
}

// httpReady is a readiness check: GET url answers 200.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// chaosStack is one chaos run's kiln: a private Postgres and MinIO, kiln
// serve (agent off), one or two kiln agents, and kiln sim as their engine,
// each a process the run may kill.
type chaosStack struct {
	pg     *testenv.Postgres
	s3     *testenv.MinIO
	serve  *chaosProc
	agents []*chaosProc
	sim    *chaosProc
	base   string // kiln serve's root URL
	logDir string
}

// chaosKey is the API key of every chaos kiln.
const chaosKey = "sk-kiln-chaos"

// chaosShardSize is the chaos kiln's shard size: small, so that a batch of
// a few hundred requests has several shards, run by several agents.
const chaosShardSize = 50

func startChaosStack(t *testing.T, bin string, agents int) *chaosStack {
	t.Helper()
	s := &chaosStack{pg: testenv.StartPostgres(t), s3: testenv.StartMinIO(t), logDir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			s.keepLogs(t)
		}
	})
	servePort, simPort := testenv.FreePort(t), testenv.FreePort(t)
	s.base = "http://127.0.0.1:" + strconv.Itoa(servePort)
	simURL := "http://127.0.0.1:" + strconv.Itoa(simPort)
	common := append(testenv.EnvironWithout("KILN_"),
		"KILN_DATABASE_URL="+s.pg.URL(),
		"KILN_OBJECT_STORE="+s.s3.URL(),
		"KILN_LEASE_TTL=2s",
		"KILN_SHARD_SIZE="+strconv.Itoa(chaosShardSize),
		"KILN_CHUNK_INTERVAL=200ms",
		"KILN_SHUTDOWN_TIMEOUT=5s",
		"KILN_LOG_LEVEL=debug",
	)
	s.sim = &chaosProc{t: t, name: "sim", dir: s.logDir,
		// As slowSim: 16 sequences of about 60ms, some 270 requests a
		// second, so that a run's batches take about as long as its
		// faults.
		args: []string{bin, "sim", "--addr", "127.0.0.1:" + strconv.Itoa(simPort), "--models", model,
			"--max-num-seqs", "16", "--ttft", "20ms", "--tpot", "2ms", "--output-tokens", "20"},
		env:   testenv.EnvironWithout("KILN_"),
		ready: httpReady(simURL + "/health"),
	}
	s.serve = &chaosProc{t: t, name: "serve", dir: s.logDir, args: []string{bin, "serve"},
		env: slices.Concat(common, []string{
			"KILN_ADDR=127.0.0.1:" + strconv.Itoa(servePort),
			"KILN_API_KEY=" + chaosKey,
			"KILN_AGENT=off",
			// The agents, killed and restarted, may not have declared
			// their model when a batch is validated.
			"KILN_MODELS=" + model,
			"KILN_WEBHOOK_ALLOW_PRIVATE=true",
			"KILN_WEBHOOK_TIMEOUT=5s",
			"KILN_RETRY_BASE=50ms",
			"KILN_RETRY_MAX=500ms",
			"KILN_POLL_INTERVAL=20ms",
			"KILN_UPLOAD_TTL=1m",
		}),
		ready: httpReady(s.base + "/healthz"),
	}
	for i := range agents {
		metrics := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		s.agents = append(s.agents, &chaosProc{t: t, name: fmt.Sprintf("agent%d", i+1), dir: s.logDir, args: []string{bin, "agent"},
			env: slices.Concat(common, []string{
				"KILN_LLM_URL=" + simURL + "/v1",
				"KILN_AGENT_CONCURRENCY=" + strconv.Itoa(agentConcurrency),
				"KILN_METRICS_ADDR=" + metrics,
				"KILN_REQUEST_TIMEOUT=10s",
			}),
			// The agent serves /healthz once it has started: it has
			// reported itself and claims work.
			ready: httpReady("http://" + metrics + "/healthz"),
		})
	}
	deadline := time.Now().Add(waitFor)
	for _, p := range s.procs() {
		if err := p.start(deadline); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *chaosStack) procs() []*chaosProc {
	return append([]*chaosProc{s.sim, s.serve}, s.agents...)
}

// stop ends the run's processes and their supervision. The run defers it:
// its cleanups kill the processes, which must not start again.
func (s *chaosStack) stop() {
	for _, p := range s.procs() {
		p.stop()
	}
}

// keepLogs copies the run's process logs under $KILN_TEST_ARTIFACTS (or
// the temporary folder), for a failed run.
func (s *chaosStack) keepLogs(t *testing.T) {
	dir := filepath.Join(cmp.Or(os.Getenv("KILN_TEST_ARTIFACTS"), os.TempDir()), "chaos", strings.ReplaceAll(t.Name(), "/", "_"))
	err := os.MkdirAll(dir, 0o755)
	entries, rerr := os.ReadDir(s.logDir)
	err = errors.Join(err, rerr)
	for _, e := range entries {
		b, rerr := os.ReadFile(filepath.Join(s.logDir, e.Name()))
		err = errors.Join(err, rerr, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644))
	}
	if err != nil {
		t.Logf("keep the run's logs: %v", err)
		return
	}
	t.Logf("the run's logs are in %s", dir)
}
