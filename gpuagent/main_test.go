package gpuagent_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/llmsim"
)

// TestMain lets the test binary stand in for vLLM: run with
// KILN_FAKE_VLLM=1 it is `vllm serve`, serving kiln's simulator (see
// fakeVLLM); with KILN_FAKE_VLLM=child it is one of vLLM's child processes.
func TestMain(m *testing.M) {
	switch os.Getenv("KILN_FAKE_VLLM") {
	case "1":
		os.Exit(fakeVLLM(os.Args[1:]))
	case "child":
		os.Exit(fakeVLLMChild())
	}
	os.Exit(m.Run())
}

// fakeVLLM serves `serve MODEL --host H --port P --max-num-seqs N
// [--enable-sleep-mode] [--gpu-memory-utilization F]` with kiln's simulator
// until SIGTERM. Knobs, from the environment:
//
//   - KILN_FAKE_VLLM_PID_DIR: write an empty file named after the pid of
//     every process of the fake there, so tests can check none survives.
//   - KILN_FAKE_VLLM_FAIL_START=msg: print msg on stderr and exit 3.
//   - KILN_FAKE_VLLM_NEVER_READY=1: answer /health with 503.
//   - KILN_FAKE_VLLM_SICK_FILE=path: answer /health with 503 while path
//     holds this process's pid.
//   - KILN_FAKE_VLLM_EXIT_AFTER=K: serve K inference requests, then exit 1
//     when the next one arrives.
//   - KILN_FAKE_VLLM_IGNORE_TERM=1: ignore SIGTERM.
//   - KILN_FAKE_VLLM_CHILD=1: start a child that ignores SIGTERM and keeps
//     the output pipes open, as vLLM's engine core might.
//
// Sleep mode's routes answer 404 unless VLLM_SERVER_DEV_MODE=1 and
// --enable-sleep-mode, as vLLM's do. GET /fake/pid answers the pid and GET
// /fake/stats the simulator's Stats.
func fakeVLLM(args []string) int {
	if len(args) < 2 || args[0] != "serve" {
		fmt.Fprintf(os.Stderr, "usage: serve MODEL [flags], got %q\n", args)
		return 2
	}
	model := args[1]
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "")
	port := fs.Int("port", 8000, "")
	maxNumSeqs := fs.Int("max-num-seqs", 256, "")
	sleepMode := fs.Bool("enable-sleep-mode", false, "")
	fs.Float64("gpu-memory-utilization", 0.9, "")
	if err := fs.Parse(args[2:]); err != nil {
		return 2
	}
	if dir := os.Getenv("KILN_FAKE_VLLM_PID_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Printf("INFO fake vllm: loading %s\n", model)
	if msg := os.Getenv("KILN_FAKE_VLLM_FAIL_START"); msg != "" {
		fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
		fmt.Fprintln(os.Stderr, msg)
		return 3
	}
	if os.Getenv("KILN_FAKE_VLLM_CHILD") == "1" {
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "KILN_FAKE_VLLM=child")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	sim, err := llmsim.New(llmsim.Config{Models: []string{model}, MaxNumSeqs: *maxNumSeqs, TTFT: time.Millisecond, TPOT: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	exitAfter, _ := strconv.ParseInt(os.Getenv("KILN_FAKE_VLLM_EXIT_AFTER"), 10, 64)
	var inference atomic.Int64
	devMode := os.Getenv("VLLM_SERVER_DEV_MODE") == "1"
	pid := strconv.Itoa(os.Getpid())
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/health" && os.Getenv("KILN_FAKE_VLLM_NEVER_READY") == "1":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case p == "/health" && os.Getenv("KILN_FAKE_VLLM_SICK_FILE") != "":
			if data, _ := os.ReadFile(os.Getenv("KILN_FAKE_VLLM_SICK_FILE")); strings.TrimSpace(string(data)) == pid {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case p == "/sleep" || p == "/wake_up" || p == "/is_sleeping":
			if !devMode || !*sleepMode {
				http.Error(w, `{"detail":"Not Found"}`, http.StatusNotFound)
				return
			}
		case p == "/fake/pid":
			fmt.Fprint(w, pid)
			return
		case p == "/fake/stats":
			_ = json.NewEncoder(w).Encode(sim.Stats())
			return
		case strings.HasPrefix(p, "/v1/") && r.Method == http.MethodPost:
			if n := inference.Add(1); exitAfter > 0 && n > exitAfter {
				fmt.Fprintf(os.Stderr, "fake vllm: exiting after %d requests\n", exitAfter)
				os.Exit(1)
			}
		}
		sim.Handler().ServeHTTP(w, r)
	})

	stopOn := syscall.SIGTERM
	if os.Getenv("KILN_FAKE_VLLM_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		stopOn = syscall.SIGUSR1
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopOn)
	defer stop()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("INFO fake vllm: serving %s on %s\n", model, ln.Addr())
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	fmt.Println("INFO fake vllm: shut down")
	return 0
}

// fakeVLLMChild stands for a child of vLLM's that outlives it unless killed:
// it ignores SIGTERM and waits for a signal that never comes.
func fakeVLLMChild() int {
	signal.Ignore(syscall.SIGTERM)
	if dir := os.Getenv("KILN_FAKE_VLLM_PID_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o644)
	}
	never := make(chan os.Signal, 1)
	signal.Notify(never, syscall.SIGUSR1)
	<-never
	return 0
}
