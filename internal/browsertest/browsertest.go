// Package browsertest drives headless Chromium for kiln's browser tests:
// one tab per test, steps with timeouts, a screenshot when a step fails, and
// optionally every request that would leave the machine blocked and
// recorded, so that a test proves a page works offline.
//
// It follows the curation workbench's browser test (curation/ui_test.go):
// the same browser lookup, flags and artifacts.
package browsertest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kilnhq/kiln/internal/testenv"
)

// ChromiumPath finds the browser: $KILN_TEST_CHROMIUM, or chromium on PATH.
// Without one the test fails, saying how to install it; as for the other
// services, KILN_TEST_ALLOW_SKIP=1 (make test-short) skips it instead.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KILN_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("KILN_TEST_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "browser tests need Chromium: run scripts/install-chromium.sh (or set KILN_TEST_CHROMIUM to a Chromium or Chrome binary)"
	if os.Getenv(testenv.EnvAllowSkip) == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// Options shape a tab.
type Options struct {
	// Offline blocks every request of the page to an address that is not
	// loopback, and records it (Tab.Blocked). Default: false.
	Offline bool
}

// Tab is one browser tab.
type Tab struct {
	t   testing.TB
	ctx context.Context
	dir string
	n   int

	mu      sync.Mutex
	console []string
	blocked []string
}

// New starts a browser for t with one tab, closed when t ends.
func New(t testing.TB, o Options) *Tab {
	t.Helper()
	profile, err := os.MkdirTemp("", "kiln-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 960),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(profile) // the browser has exited: nothing writes there any more
	})
	p := &Tab{t: t, ctx: ctx, dir: artifactDir(t)}
	console := chromedp.Console(ctx)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start %s: %v", ChromiumPath(t), err)
	}
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
			p.mu.Unlock()
		}
	}()
	if o.Offline {
		go func() {
			for ev, err := range paused {
				if err != nil {
					return
				}
				if Loopback(ev.Request.URL) {
					_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
					continue
				}
				p.mu.Lock()
				p.blocked = append(p.blocked, ev.Request.URL)
				p.mu.Unlock()
				_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID,
					ErrorReason: network.ErrorReasonInternetDisconnected})
			}
		}()
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
			t.Fatalf("block requests: %v", err)
		}
	}
	return p
}

// Loopback reports whether rawURL points at this machine: a loopback
// address or localhost, or a URL that needs no network (data:, blob:,
// about:).
func Loopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	case "http", "https", "ws", "wss":
	default:
		return false
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Blocked are the requests the page tried to send off the machine.
func (p *Tab) Blocked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.blocked...)
}

// Context is the tab's context, for chromedp calls of a test's own.
func (p *Tab) Context() context.Context { return p.ctx }

// Do runs steps, with a timeout; a failure fails the test with a
// screenshot and the browser's console.
func (p *Tab) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.Shot("failed")
		p.mu.Lock()
		p.t.Logf("browser console:\n%s", strings.Join(p.console, "\n"))
		p.mu.Unlock()
		p.t.Fatalf("%s: %v", what, err)
	}
}

// Navigate opens url in the tab.
func (p *Tab) Navigate(what, url string) {
	p.t.Helper()
	p.Do(what, chromedp.Navigate(url))
}

// Wait polls a JavaScript condition until it holds, for up to 30 seconds.
func (p *Tab) Wait(what, cond string) {
	p.t.Helper()
	p.Do(what, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(30*time.Second)))
}

// Str evaluates a JavaScript expression to a string.
func (p *Tab) Str(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// Shot saves a full-page screenshot as an artifact and logs its path.
func (p *Tab) Shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.n++
	path := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.png", p.n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// artifactDir is where screenshots go: $KILN_TEST_ARTIFACTS/<test>, or a
// folder of the test's.
func artifactDir(t testing.TB) string {
	dir := os.Getenv("KILN_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(dir, t.Name()))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
