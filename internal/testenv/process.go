package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// ProcessStopTimeout is how long Process.Stop waits after SIGTERM
	// before it sends SIGKILL.
	ProcessStopTimeout = 15 * time.Second

	// readyTimeout bounds waiting for a private server to accept requests.
	readyTimeout = time.Minute
	// readyPoll is the interval between readiness checks.
	readyPoll = 20 * time.Millisecond
	// killWait bounds waiting for a process to exit after SIGKILL.
	killWait = 10 * time.Second
)

// Process is a subprocess owned by one test, such as a kiln server that a
// fault test kills.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // what cmd.Wait returned; set before done is closed
}

// StartProcess starts cmd and kills it with SIGKILL at t.Cleanup if it is
// still running. On Linux, the kernel also kills it if the test binary dies
// first (as at a -timeout panic, which runs no cleanups).
//
// Give cmd files, not other writers, for its output: with a writer, exec
// copies through a pipe, and waiting for the process also waits for every
// process that inherited that pipe.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := startProcess(cmd, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("testenv: start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		if err := p.kill(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return p
}

// startProcess starts cmd. On Linux, the kernel sends it deathSig when the
// test binary dies.
func startProcess(cmd *exec.Cmd, deathSig syscall.Signal) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	setDeathSignal(cmd.SysProcAttr, deathSig)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns what waiting for the process returned, like an
// *exec.ExitError, once Done is closed, and nil before.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process, like SIGSTOP and SIGCONT to simulate a
// hung server. Signalling a process that has exited is not an error.
func (p *Process) Signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Stop sends SIGTERM and waits for the process to exit, sending SIGKILL
// after ProcessStopTimeout. It is a no-op when the process has already
// exited.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGTERM, ProcessStopTimeout); err != nil {
		if err := p.kill(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// Kill sends SIGKILL and waits for the process to exit. It is a no-op when
// the process has already exited.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.kill(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// stop sends sig and waits up to timeout for the process to exit.
func (p *Process) stop(sig syscall.Signal, timeout time.Duration) error {
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", sig, p.Pid(), err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("%s (pid %d) still runs %s after %s", p.cmd.Path, p.Pid(), timeout, sig)
	}
}

func (p *Process) kill() error { return p.stop(syscall.SIGKILL, killWait) }

// waitReady polls ready until it succeeds, the process exits or timeout
// passes.
func (p *Process) waitReady(timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			return fmt.Errorf("it exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("it was not ready within %s", timeout)
		case <-timer.C:
		}
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := ready(attemptCtx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		timer.Reset(readyPoll)
	}
}

// FreePort returns a TCP port that nothing listens on now, on 127.0.0.1 or
// on [::1], for a server a test starts and restarts on a fixed port.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	return port
}

// FreeAddr is FreePort's port on 127.0.0.1, as host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// minPort is the lowest port freePort picks at random.
const minPort = 10000

// freePort prefers ports below the kernel's ephemeral range: there, neither
// listeners on port 0 nor outgoing connections get their ports, so a server
// stopped for a moment almost surely gets its port back when it restarts.
func freePort() (int, error) {
	if high := ephemeralPortsLow(); high-minPort >= 1000 {
		for range 100 {
			port := minPort + rand.IntN(high-minPort)
			if portFree(port) == nil {
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralPortsLow returns the lowest port the kernel hands out on its own.
func ephemeralPortsLow() int {
	const fallback = 32768 // Linux's default; macOS's is 49152
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return fallback
	}
	return low
}

// portFree says whether a server can listen on port on 127.0.0.1 and, where
// the host has IPv6, on [::1] (MinIO listens on both).
func portFree(port int) error {
	p := strconv.Itoa(port)
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", p))
	if err != nil {
		return err
	}
	defer l.Close()
	l6, err := net.Listen("tcp6", net.JoinHostPort("::1", p))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		return nil // no IPv6 loopback
	}
	return l6.Close()
}

// logTail returns the last lines of a log file from offset on, indented, for
// an error message.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-30):]
	return "\n\t" + string(bytes.Join(lines, []byte("\n\t")))
}

// fileSize returns the size of the file at path, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
