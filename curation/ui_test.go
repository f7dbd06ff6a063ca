package curation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// ---- The handler, without a browser ----------------------------------

func TestUIHandler(t *testing.T) {
	h := curation.UIHandler()
	get := func(method, path string, hdr ...string) *http.Response {
		req := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	for _, c := range []struct{ path, ctype string }{
		{"/curation/", "text/html; charset=utf-8"},
		{"/curation/index.html", "text/html; charset=utf-8"},
		{"/curation/app.js", "text/javascript; charset=utf-8"},
		{"/curation/app.css", "text/css; charset=utf-8"},
		{"/curation/logo.svg", "image/svg+xml"},
	} {
		resp := get(http.MethodGet, c.path)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, c.path)
		require.Equal(t, c.ctype, resp.Header.Get("Content-Type"), c.path)
		require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), c.path)
		require.Equal(t, curation.UIPolicy, resp.Header.Get("Content-Security-Policy"), c.path)
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), c.path)
		require.NotEmpty(t, body, c.path)
		etag := resp.Header.Get("ETag")
		require.NotEmpty(t, etag, c.path)
		require.Equal(t, http.StatusNotModified, get(http.MethodGet, c.path, "If-None-Match", etag).StatusCode, c.path)
	}
	csp := curation.UIPolicy
	require.Contains(t, csp, "default-src 'self'")
	require.Contains(t, csp, "script-src 'self';")
	require.NotContains(t, csp, "unsafe-inline")
	require.NotContains(t, csp, "unsafe-eval")

	head := get(http.MethodHead, "/curation/app.js")
	require.Equal(t, http.StatusOK, head.StatusCode)
	require.Equal(t, "text/javascript; charset=utf-8", head.Header.Get("Content-Type"))

	redirect := get(http.MethodGet, "/curation")
	require.Equal(t, http.StatusMovedPermanently, redirect.StatusCode)
	require.Equal(t, "/curation/", redirect.Header.Get("Location"))

	post := get(http.MethodPost, "/curation/")
	require.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
	require.Equal(t, "GET, HEAD", post.Header.Get("Allow"))

	for _, p := range []string{"/curation/nope.js", "/curation/../ui.go", "/curation/ui/app.js", "/other/", "/curation/.hidden"} {
		resp := get(http.MethodGet, p)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
		require.Equal(t, curation.UIPolicy, resp.Header.Get("Content-Security-Policy"), p)
	}
}

// TestUIAssets checks the rules the page keeps so that its policy can stay
// strict and model output stays text: no inline script or style, no event
// handler attributes, and no HTML parsing of strings in the script.
func TestUIAssets(t *testing.T) {
	html, err := os.ReadFile(filepath.Join("ui", "index.html"))
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(string(html), -1) {
		require.Regexp(t, `\bsrc="[^"]+"`, m, "every script is a file")
	}
	require.NotRegexp(t, `(?is)<script\b[^>]*>\s*[^<\s]`, string(html), "no inline script")
	require.NotRegexp(t, `(?i)\son[a-z]+\s*=`, string(html), "no event handler attributes")
	require.NotRegexp(t, `(?i)\sstyle\s*=`, string(html), "no style attributes")
	require.NotRegexp(t, `(?i)<style\b`, string(html), "no inline style")
	require.NotRegexp(t, `(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`, string(html), "nothing from elsewhere")

	js, err := os.ReadFile(filepath.Join("ui", "app.js"))
	require.NoError(t, err)
	code := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(string(js), "") // comments may name what the code avoids
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'"} {
		require.NotContains(t, code, bad)
	}
	// A second declaration of a function silently replaces the first.
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:async\s+)?function\s+(\w+)`).FindAllStringSubmatch(code, -1) {
		require.False(t, seen[m[1]], "function %s is declared twice", m[1])
		seen[m[1]] = true
	}
	// Every control the page builds has a name: the ids its labels point at
	// exist, and every button and field in the HTML has a label or a name.
	for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		require.Contains(t, string(html), `id="`+m[1]+`"`, "label for %s", m[1])
	}
}

// ---- The browser test ---------------------------------------------------

// chromiumPath finds the browser: $KILN_TEST_CHROMIUM, or chromium on PATH.
// Without one the test fails, saying how to install it; as for the other
// services, KILN_TEST_ALLOW_SKIP=1 (make test-short) skips it instead.
func chromiumPath(t *testing.T) string {
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
	const msg = "the curation browser tests need Chromium: run scripts/install-chromium.sh (or set KILN_TEST_CHROMIUM to a Chromium or Chrome binary)"
	if os.Getenv(testenv.EnvAllowSkip) == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// artifactDir is where screenshots go: $KILN_TEST_ARTIFACTS, or a folder of
// the test's.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("KILN_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(dir, t.Name()))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// browserTab drives one tab, failing the test with a screenshot when a step fails.
type browserTab struct {
	t   *testing.T
	ctx context.Context
	dir string
	n   int

	mu      sync.Mutex
	dialogs []string
	console []string
}

func newTab(t *testing.T) *browserTab {
	t.Helper()
	profile, err := os.MkdirTemp("", "kiln-chromium-")
	require.NoError(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
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
	p := &browserTab{t: t, ctx: ctx, dir: artifactDir(t)}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	console := chromedp.Console(ctx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start %s: %v", chromiumPath(t), err)
	}
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.dialogs = append(p.dialogs, fmt.Sprintf("%s: %s", ev.Type, ev.Message))
			p.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
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
	// Before any page script runs, note policy violations and uncaught
	// errors, which the test asserts there are none of.
	_, err = chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.__kilnTest = {csp: [], errors: []};
		document.addEventListener('securitypolicyviolation', (e) => window.__kilnTest.csp.push(e.violatedDirective + ' ' + e.blockedURI));
		window.addEventListener('error', (e) => window.__kilnTest.errors.push(String(e.message)));
		window.addEventListener('unhandledrejection', (e) => window.__kilnTest.errors.push(String(e.reason)));`})
	require.NoError(t, err)
	return p
}

// do runs steps, with a timeout.
func (p *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("failed")
		p.mu.Lock()
		p.t.Logf("browser console:\n%s", strings.Join(p.console, "\n"))
		p.mu.Unlock()
		p.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript condition until it holds.
func (p *browserTab) wait(what, cond string) {
	p.t.Helper()
	p.do(what, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second)))
}

// str evaluates an expression to a string.
func (p *browserTab) str(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	require.NoError(p.t, err, expr)
	return s
}

func (p *browserTab) click(what, css string) {
	p.t.Helper()
	p.do("click "+what, chromedp.Click(chromedp.CSS(css)))
}

func (p *browserTab) keys(keys string) {
	p.t.Helper()
	p.do("press "+keys, chromedp.KeyEvent(keys))
}

// shot saves a full-page screenshot as an artifact and logs its path.
func (p *browserTab) shot(name string) {
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

func (p *browserTab) dialogCount() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialogs...)
}

// contrastJS lists the visible text whose contrast with its background is
// below WCAG AA (4.5:1, or 3:1 for large text). Text over a gradient (the
// header) is left out: its colours are checked by hand in app.css.
const contrastJS = `(() => {
	const parse = (c) => {
		const m = c.match(/rgba?\(([^)]+)\)/);
		if (!m) return null;
		const v = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
		return {r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1};
	};
	const over = (top, under) => ({r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
		b: top.b * top.a + under.b * (1 - top.a), a: 1});
	const lum = (c) => {
		const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
		return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
	};
	const background = (el) => {
		const layers = [];
		for (let e = el; e; e = e.parentElement) {
			const st = getComputedStyle(e);
			if (st.backgroundImage !== 'none') return null;
			const c = parse(st.backgroundColor);
			if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
		}
		return layers.reverse().reduce((under, top) => over(top, under), {r: 255, g: 255, b: 255, a: 1});
	};
	const bad = [];
	for (const el of document.querySelectorAll('body *')) {
		if (!el.getClientRects().length || el.closest('[hidden], :disabled, .visually-hidden')) continue;
		if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
		const st = getComputedStyle(el);
		if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
		const bg = background(el);
		if (!bg) continue;
		const fg = over(parse(st.color), bg);
		const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
		const ratio = (a + 0.05) / (b + 0.05);
		const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
		const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
		if (ratio < need) bad.push(el.tagName.toLowerCase() + '.' + el.className + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
	}
	return JSON.stringify(bad);
})()`

// checkA11y fails the test when a control the page shows has no accessible
// name, a landmark is missing, or text lacks contrast.
func (p *browserTab) checkA11y(where string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	require.NoError(p.t, err)
	named := map[string]bool{"button": true, "link": true, "textbox": true, "searchbox": true, "combobox": true, "spinbutton": true,
		"checkbox": true, "radio": true, "meter": true, "progressbar": true, "dialog": true, "group": false}
	roles := map[string]bool{}
	var unnamed []string
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil {
			continue
		}
		var role, name string
		_ = json.Unmarshal(n.Role.Value, &role)
		if n.Name != nil {
			_ = json.Unmarshal(n.Name.Value, &name)
		}
		roles[role] = true
		if named[role] && strings.TrimSpace(name) == "" {
			unnamed = append(unnamed, fmt.Sprintf("%s (DOM node %d)", role, n.BackendDOMNodeID))
		}
	}
	require.Empty(p.t, unnamed, "%s: controls without an accessible name", where)
	modal := p.str(`String(!!document.querySelector('dialog[open]'))`) == "true" // the rest of the page is inert
	for _, landmark := range []string{"banner", "main"} {
		if modal {
			break
		}
		require.True(p.t, roles[landmark], "%s: no %s landmark", where, landmark)
	}
	require.Equal(p.t, "[]", p.str(contrastJS), "%s: text below WCAG AA contrast", where)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sel is a CSS attribute selector for a control the page keys by data-key.
func sel(key string) string { return `[data-key=` + js(key) + `]` }

// uiAPI calls the curation API with a curator key, to seed and check what
// the browser did.
type uiAPI struct {
	t    *testing.T
	base string
	key  string
}

func (a uiAPI) call(method, path, ctype string, body []byte, into any) int {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	require.NoError(a.t, err)
	req.Header.Set("Authorization", "Bearer "+a.key)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	if into != nil && resp.StatusCode < 300 {
		require.NoError(a.t, json.Unmarshal(raw, into), string(raw))
	}
	return resp.StatusCode
}

type uiOutput struct {
	ID             string  `json:"id"`
	Model          string  `json:"model"`
	Valid          bool    `json:"valid"`
	Rating         *int    `json:"rating"`
	Corrected      *string `json:"corrected"`
	CorrectedValid *bool   `json:"corrected_valid"`
}

type uiTask struct {
	ID      string     `json:"id"`
	Key     string     `json:"key"`
	Status  string     `json:"status"`
	Notes   string     `json:"notes"`
	Gold    *string    `json:"gold_output_id"`
	Version int64      `json:"version"`
	Outputs []uiOutput `json:"outputs"`
}

func (a uiAPI) task(id string) uiTask {
	a.t.Helper()
	var t uiTask
	require.Equal(a.t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks/"+id, "", nil, &t))
	return t
}

func (t uiTask) output(model string) uiOutput {
	for _, o := range t.Outputs {
		if o.Model == model {
			return o
		}
	}
	panic("no output of " + model)
}

// XSS is a model answer that would run script if the page ever parsed
// outputs as HTML.
const XSS = `<script>alert(1)</script><img src=x onerror=alert(2)>`

// seedTasks imports three emails (one with three models' answers, one of
// them invalid and one carrying XSS) and a candidate evaluation whose
// partial answer shows the score, badge and table hints.
func seedTasks(t *testing.T, a uiAPI) map[string]string {
	email := func(subject, body, cta string, points ...string) map[string]any {
		o := map[string]any{"subject": subject, "body": body, "personalization_points": points}
		if cta != "" {
			o["call_to_action"] = cta
		}
		return o
	}
	msgs := func(user string) []map[string]string {
		return []map[string]string{
			{"role": "system", "content": "You write short, warm recruiting emails. Answer with JSON."},
			{"role": "user", "content": user},
		}
	}
	var lines bytes.Buffer
	add := func(typ, key, user, model string, out any) {
		line, err := json.Marshal(map[string]any{"type": typ, "key": key, "messages": msgs(user), "model": model, "output": out})
		require.NoError(t, err)
		lines.Write(line)
		lines.WriteByte('\n')
	}
	first := "Write a first outreach email to Jane Doe, a Go engineer in Lyon, for the Platform Engineer role at Acme."
	add("quil_email", "email-1", first, "acme/alpha", email("Platform Engineer at Acme",
		"Hi Jane,\n\nYour work on distributed schedulers in Go caught our eye.\n\nBest,\nSam", "Would you have 20 minutes next week?",
		"Go engineer in Lyon", "Works on schedulers"))
	add("quil_email", "email-1", first, "acme/beta", email("Hello "+XSS, "Hi Jane, "+XSS, "Reply to this email "+XSS, XSS))
	add("quil_email", "email-1", first, "acme/gamma", email("Acme is hiring", "Hi Jane, we are hiring.", "", "Lyon"))
	for i := 2; i <= 3; i++ {
		add("quil_email", fmt.Sprintf("email-%d", i), fmt.Sprintf("Write an outreach email to candidate %d in Berlin.", i), "acme/alpha",
			email("Hello from Acme", "Hi,\n\nWe would like to talk.\n\nSam", "Call next week?", "Berlin"))
	}
	add("candidate_evaluation", "cand-1", "Evaluate Jane Doe for the Platform Engineer role.", "acme/alpha", map[string]any{
		"overall_score":  7,
		"recommendation": map[string]any{"decision": "advance"},
		"summary":        "Strong Go background; little Kubernetes.",
		"skills_match": []map[string]any{
			{"skill": "Go", "requirement": "must_have", "evidence_level": "strong", "evidence": "Five years of Go"},
			{"skill": "Kubernetes", "requirement": "nice_to_have", "evidence_level": "weak", "evidence": "Mentioned once"},
		},
	})
	var res struct {
		Tasks, Outputs int
		Errors         []any
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/imports", "application/jsonl", lines.Bytes(), &res))
	require.Empty(t, res.Errors)
	require.Equal(t, 4, res.Tasks)
	require.Equal(t, 6, res.Outputs)

	var list struct {
		Data []struct{ ID, Key string }
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks?limit=200", "", nil, &list))
	ids := map[string]string{}
	for _, x := range list.Data {
		ids[x.Key] = x.ID
	}
	return ids
}

// TestCurationUIBrowser clicks through the workbench in headless Chromium
// against a real kiln: sign in, review a task (ratings by mouse and key,
// gold star, a correction refused and then accepted, notes, status),
// meet a concurrent change, filter, and export, with screenshots as
// artifacts. Outputs carrying HTML must show as text and open no dialog.
func TestCurationUIBrowser(t *testing.T) {
	chromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	// An admin imports the tasks; Ada, a curator, reviews them.
	_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	_, key, err := curation.CreateCurator(context.Background(), env.App.Store, "Ada", curation.RoleCurator)
	require.NoError(t, err)
	ids := seedTasks(t, uiAPI{t: t, base: origin, key: adminKey})
	a := uiAPI{t: t, base: origin, key: key}
	email1 := a.task(ids["email-1"])
	alpha, beta, gamma := email1.output("acme/alpha").ID, email1.output("acme/beta").ID, email1.output("acme/gamma").ID
	require.False(t, email1.output("acme/gamma").Valid)

	// kiln serves the page with its policy.
	resp, err := http.Get(origin + "/curation/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, curation.UIPolicy, resp.Header.Get("Content-Security-Policy"))

	p := newTab(t)

	// Sign in: a wrong key first.
	p.do("open the workbench", chromedp.Navigate(origin+"/curation/"), chromedp.WaitVisible(chromedp.ID("login-key")))
	p.shot("login")
	p.checkA11y("sign-in")
	p.do("wrong key", chromedp.SendKeys(chromedp.ID("login-key"), "ck-wrong"), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.wait("the key is refused", `document.querySelector('#login-error').textContent.includes('not accepted')`)
	p.do("right key", chromedp.SetValue(chromedp.ID("login-key"), key), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.wait("the queue", `document.querySelectorAll('#task-list a').length === 4`)
	require.Equal(t, "Ada", p.str(`document.querySelector('#who').textContent`))
	// The first task opens on load, and the queue tells tasks apart: each
	// shows its own preview (not the type's header), its key, and how many
	// outputs are valid and rated.
	p.wait("the first task open", `!!document.querySelector('#task-title') && location.hash === '#/tasks/' + document.querySelector('#task-list a').getAttribute('href').slice(8)`)
	previews := p.str(`[...document.querySelectorAll('#task-list .task-preview')].map((e) => e.textContent).join('|')`)
	require.Len(t, strings.Split(previews, "|"), 4)
	seen := map[string]bool{}
	for _, pv := range strings.Split(previews, "|") {
		require.NotEmpty(t, pv)
		require.False(t, seen[pv], "distinct previews: %s", previews)
		seen[pv] = true
	}
	require.Contains(t, previews, "candidate 2 in Berlin")
	require.Contains(t, p.str(`document.querySelector('a[href="#/tasks/`+ids["email-1"]+`"]').textContent`), "email-1")
	require.Contains(t, p.str(`document.querySelector('a[href="#/tasks/`+ids["email-1"]+`"]').textContent`), "2/3 valid")
	require.Contains(t, p.str(`document.querySelector('a[href="#/tasks/`+ids["email-1"]+`"]').textContent`), "0/3 rated")
	p.wait("the progress", `document.querySelector('#progress').textContent.includes('Rated 0 of 6 outputs')`)

	// Open the task with three answers.
	p.click("email-1 in the queue", `a[href="#/tasks/`+ids["email-1"]+`"]`)
	p.wait("the task", `document.querySelector('#task-title')?.textContent === 'quil_email · email-1' && document.querySelectorAll('#task-body .output').length === 3`)
	require.Equal(t, "acme/alpha|acme/beta|acme/gamma", p.str(`[...document.querySelectorAll('#task-body .output h2')].map((e) => e.textContent).join('|')`))
	require.Contains(t, p.str(`document.querySelector('[data-index="2"]').textContent`), "Invalid output")
	p.shot("task")
	p.checkA11y("task")
	// At 1280 px the three answers fit side by side; at 1920 px too. The
	// screenshots are kept as artifacts.
	for _, w := range []int64{1280, 1920} {
		p.do(fmt.Sprintf("a %d px window", w), chromedp.EmulateViewport(w, w*9/16))
		p.wait("the layout", `document.querySelector('#task-body .outputs').scrollWidth <= document.querySelector('#task-body .outputs').clientWidth`)
		require.Equal(t, "true", p.str(`String(document.querySelector('.queue').getBoundingClientRect().right < document.querySelector('#task-body .outputs').getBoundingClientRect().left)`),
			"the queue is beside the task")
		p.shot(fmt.Sprintf("task-%dpx", w))
	}
	p.do("back to 1440 px", chromedp.EmulateViewport(1440, 960))
	require.True(t, p.str(`String(!!document.querySelector('nav'))`) == "true")

	// The answer with HTML in it is text: the payload is in the DOM's text,
	// no element came of it, and no dialog opened.
	betaText := p.str(`document.querySelector('[data-index="1"]').textContent`)
	require.Contains(t, betaText, XSS)
	require.Equal(t, "0", p.str(`String(document.querySelectorAll('#task-body script, #task-body img, #task-body [onerror]').length)`))

	// Rate by mouse, then by keyboard on the focused column.
	// A rating moves on to the next output still unrated.
	p.click("rate alpha 4", sel("rate:"+alpha+":4"))
	p.wait("alpha rated 4", `document.querySelector(`+js(sel("rate:"+alpha+":4"))+`).getAttribute('aria-pressed') === 'true'`)
	p.wait("beta focused", `document.activeElement.dataset.index === '1'`)
	require.Equal(t, "solid", p.str(`getComputedStyle(document.activeElement).outlineStyle`), "focus is visible")
	p.keys("2")
	p.wait("beta rated 2", `document.querySelector(`+js(sel("rate:"+beta+":2"))+`).getAttribute('aria-pressed') === 'true'`)

	// Gold star: one output at a time.
	p.wait("gamma focused", `document.activeElement.dataset.index === '2'`)
	p.keys("h")
	p.keys("h")
	p.keys("g")
	p.wait("alpha gold", `document.querySelector(`+js(sel("gold:"+alpha))+`).getAttribute('aria-pressed') === 'true'`)
	p.click("gold beta", sel("gold:"+beta))
	p.wait("beta gold, alpha not", `document.querySelector(`+js(sel("gold:"+beta))+`).getAttribute('aria-pressed') === 'true' &&
		document.querySelector(`+js(sel("gold:"+alpha))+`).getAttribute('aria-pressed') === 'false'`)
	p.click("gold alpha", sel("gold:"+alpha))
	p.wait("alpha gold again", `document.querySelector(`+js(sel("gold:"+alpha))+`).getAttribute('aria-pressed') === 'true'`)

	// Correct the invalid answer: a correction that misses fields is refused
	// with the server's reason next to the editor, then a good one saves.
	p.click("correct gamma", sel("edit:"+gamma))
	editor := "#editor-" + gamma
	p.wait("the editor, prefilled", `document.querySelector(`+js(editor)+`)?.value.includes('"subject": "Acme is hiring"')`)
	p.do("an invalid correction", chromedp.SetValue(chromedp.CSS(editor), `{"subject": "Only a subject"}`))
	p.click("validate and save", sel("save:"+gamma))
	p.wait("the schema error", `document.querySelector(`+js(editor+"-error")+`).textContent.includes('does not match')`)
	require.Equal(t, "true", p.str(`String(!!document.querySelector(`+js(sel("force:"+gamma))+`))`), "Save anyway is offered")
	refused := p.str(`document.querySelector(` + js(editor+"-error") + `).textContent`)
	require.NotContains(t, refused, "force: true", "said in words")
	require.Contains(t, refused, "save it anyway")
	require.Equal(t, "true", p.str(`(() => { const e = document.querySelector(`+js(editor+"-error")+`); return String(e.scrollWidth <= e.clientWidth); })()`), "the reason fits its box")
	require.Equal(t, "true", p.str(`document.querySelector(`+js(editor)+`).getAttribute('aria-invalid')`))
	p.shot("correction-refused")
	p.checkA11y("correction editor")
	fixed, err := json.Marshal(map[string]any{"subject": "Platform Engineer at Acme", "body": "Hi Jane,\n\nWe are hiring in Lyon.\n\nSam",
		"personalization_points": []string{"Lyon"}, "call_to_action": "Can we talk on Tuesday?"})
	require.NoError(t, err)
	p.do("a valid correction", chromedp.SetValue(chromedp.CSS(editor), string(fixed)))
	p.click("validate and save", sel("save:"+gamma))
	p.wait("the correction saved", `!document.querySelector(`+js(editor)+`) && document.querySelector('[data-index="2"]').textContent.includes('Can we talk on Tuesday?')`)

	// Blind review hides the models and names the columns by letter.
	p.keys("b")
	p.wait("blind", `[...document.querySelectorAll('#task-body .output h2')].map((e) => e.textContent).join('|') === 'Model A|Model B|Model C'`)
	require.NotContains(t, p.str(`document.querySelector('#task-body').textContent`), "acme/")
	p.shot("blind")
	p.checkA11y("blind review")
	p.keys("b")
	p.wait("not blind", `document.querySelector('#task-body .output h2').textContent.startsWith('acme/')`)

	// Notes, then reviewed by key.
	p.do("notes", chromedp.SetValue(chromedp.ID("notes"), "Alpha is the best; gamma forgot the call to action."))
	p.click("save notes", sel("save-notes"))
	p.wait("notes saved", `[...document.querySelectorAll('#task-body details li')].some((li) => li.textContent.includes('Alpha is the best'))`)
	p.keys("r")
	p.wait("reviewed", `document.querySelector('#task-body .task-head .badge').textContent === 'reviewed'`)
	p.wait("the queue shows it", `document.querySelector('a[aria-current="true"] .badge-good')?.textContent === 'reviewed'`)
	p.shot("reviewed")

	got := a.task(ids["email-1"])
	require.Equal(t, "reviewed", got.Status)
	require.Equal(t, "Alpha is the best; gamma forgot the call to action.", got.Notes)
	require.NotNil(t, got.Gold)
	require.Equal(t, alpha, *got.Gold)
	require.Equal(t, 4, *got.output("acme/alpha").Rating)
	require.Equal(t, 2, *got.output("acme/beta").Rating)
	require.NotNil(t, got.output("acme/gamma").Corrected)
	require.JSONEq(t, string(fixed), *got.output("acme/gamma").Corrected)
	require.True(t, *got.output("acme/gamma").CorrectedValid)

	// Someone else saves meanwhile: the next change is refused as stale,
	// and the page offers to reload.
	body, _ := json.Marshal(map[string]any{"version": got.Version, "notes": "Changed elsewhere."})
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/tasks/"+got.ID+"/annotations", "application/json", body, nil))
	p.click("rate beta 5", sel("rate:"+beta+":5"))
	p.wait("the stale banner", `document.querySelector('#task-body .banner-warn')?.textContent.includes('Someone else saved')`)
	p.shot("stale")
	p.click("reload", sel("reload"))
	p.wait("reloaded", `!document.querySelector('#task-body .banner-warn') && document.querySelector('#notes').value === 'Changed elsewhere.'`)
	require.Equal(t, 2, *a.task(ids["email-1"]).output("acme/beta").Rating, "the stale change was not saved")

	// Next and previous task by key; keys typed in a field are text.
	p.do("leave the field", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	// The queue is newest first: step towards a neighbour and back.
	there, back := "j", "k"
	if p.str(`String([...document.querySelectorAll('#task-list a')].findIndex((a) => a.getAttribute('aria-current') === 'true'))`) == "3" {
		there, back = "k", "j"
	}
	p.keys(there)
	p.wait("the neighbour", `location.hash !== '#/tasks/`+ids["email-1"]+`' && document.querySelector('#task-title')?.textContent !== 'quil_email · email-1'`)
	neighbour := p.str(`location.hash`)
	p.keys(back)
	p.wait("back", `document.querySelector('#task-title')?.textContent === 'quil_email · email-1'`)
	p.keys(there)
	p.wait("the neighbour again", `location.hash === `+js(neighbour)+` && document.querySelector('#task-title')?.textContent !== 'quil_email · email-1' && !!document.querySelector('#notes')`)
	p.do("type in notes", chromedp.Focus(chromedp.ID("notes")), chromedp.KeyEvent("srj"))
	p.wait("typed, not run", `document.querySelector('#notes').value === 'srj'`)
	require.Equal(t, "pending", p.str(`document.querySelector('#task-body .task-head .badge').textContent`))

	// Rendering hints: a score meter, a badge and a table.
	p.do("open the evaluation", chromedp.Evaluate[chromedp.Void](`location.hash = '#/tasks/`+ids["cand-1"]+`'`))
	p.wait("the score meter", `document.querySelector('#task-body [role="meter"]')?.getAttribute('aria-valuenow') === '7'`)
	require.Equal(t, "10", p.str(`document.querySelector('#task-body [role="meter"]').getAttribute('aria-valuemax')`))
	// Colour from meaning: the tones of the type's hints, not the word's look.
	require.Equal(t, "neutral", p.str(`document.querySelector('#task-body .output .out-field .badge').dataset.tone`), "advance is no value of the enum: neutral")
	require.Equal(t, "positive", p.str(`document.querySelector('#task-body .score-fill').dataset.tone`), "7 of 10")
	require.Equal(t, "neutral|positive|neutral|negative", p.str(`[...document.querySelectorAll('#task-body .output table .badge')].map((e) => e.dataset.tone).join('|')`),
		"must_have, strong, nice_to_have, weak")
	require.Equal(t, "true", p.str(`String([...document.querySelectorAll('#task-body .output table .badge')].some((e) => e.classList.contains('badge-bad') && e.textContent === 'weak'))`))
	require.Contains(t, p.str(`document.querySelector('#task-body .output table').textContent`), "Five years of Go")
	p.shot("rendering")
	p.checkA11y("rendering hints")

	// Help lists the shortcuts.
	p.do("leave the field", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	p.keys("?")
	p.wait("help open", `document.querySelector('#help').open`)
	p.shot("help")
	p.checkA11y("help")
	p.keys(kb.Escape)
	p.wait("help closed", `!document.querySelector('#help').open`)

	// Filters: / focuses the search; status narrows the queue.
	p.keys("/")
	p.wait("search focused", `document.activeElement.id === 'f-q'`)
	// CDP sends a key's char apart from its keydown, so the page cannot
	// cancel it as it does a real key's: clear what it typed.
	p.do("search", chromedp.Evaluate[chromedp.Void](`document.querySelector('#f-q').value = ''`), chromedp.KeyEvent("Lyon"))
	p.wait("one match", `document.querySelectorAll('#task-list a').length === 1`)
	p.click("clear the filters", `#filters button[type=reset]`)
	p.wait("all again", `document.querySelectorAll('#task-list a').length === 4`)
	p.do("only reviewed", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#f-status'); s.value = 'reviewed'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`))
	p.wait("one reviewed", `document.querySelectorAll('#task-list a').length === 1 && document.querySelector('#task-list a').getAttribute('href') === `+js("#/tasks/"+ids["email-1"]))

	// Export: progress, then the download link.
	p.click("the export page", `#nav a[data-route="export"]`)
	p.wait("the export form", `!document.querySelector('#view-export').hidden`)
	setType := func(typ string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`document.querySelector('#x-type').value = ` + js(typ))
	}
	p.do("a type with no task", setType("cv_parsing"))
	p.click("start", `#x-start`)
	p.wait("nothing to export", `document.querySelector('#export-error').textContent.startsWith('Nothing to export')`)
	p.do("every type", setType(""))
	p.click("start", `#x-start`)
	p.wait("the download link", `!!document.querySelector('#x-download a.download')`)
	href := p.str(`document.querySelector('#x-download a.download').href`)
	p.wait("the past exports", `document.querySelector('#export-list').textContent.includes('Completed')`)
	p.shot("export")
	p.checkA11y("export")
	dl, err := http.Get(href)
	require.NoError(t, err)
	data, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	require.Equal(t, http.StatusOK, dl.StatusCode, "%s", data)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 1, "one example, the gold answer: %s", data)
	require.Contains(t, lines[0], "distributed schedulers", "the gold answer")

	// Sign out.
	p.click("sign out", `#logout`)
	p.wait("the sign-in form", `!document.querySelector('#view-login').hidden`)

	require.Empty(t, p.dialogCount(), "no dialog opened")
	require.Equal(t, "[]", p.str(`JSON.stringify(window.__kilnTest.csp)`), "no policy violation")
	require.Equal(t, "[]", p.str(`JSON.stringify(window.__kilnTest.errors)`), "no script error")
}
