package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// watchBuffer is a buffer that commands write to while a test reads it;
// Seen closes once it holds a string.
type watchBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	target string
	seen   chan struct{}
}

func newWatchBuffer(target string) *watchBuffer {
	return &watchBuffer{target: target, seen: make(chan struct{})}
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if w.target != "" && strings.Contains(w.buf.String(), w.target) {
		close(w.seen)
		w.target = ""
	}
	return n, err
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// writeRequests writes a batch file of n chat requests for model.
func writeRequests(t *testing.T, n int, model string) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"max_tokens":5,"messages":[{"role":"user","content":"Say %d."}]}}`+"\n", i, model, i)
	}
	path := filepath.Join(t.TempDir(), "requests.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// batchStatus is a batch's status, read through the API.
func batchStatus(t *testing.T, env *kilntest.Env, id string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.URL+"/batches/"+id, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.Key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var b struct {
		Status string `json:"status"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	return b.Status
}

// unsetenv unsets name for the rest of the test, and restores it after.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // registers the restore
	require.NoError(t, os.Unsetenv(name))
}

// TestBatchClientSettings: the client commands find kiln and their key in
// KILN_BASE_URL and KILN_CLIENT_KEY, or in the OpenAI SDKs' OPENAI_BASE_URL
// and OPENAI_API_KEY (kiln's first); without a key, with a refused one or
// with no kiln at the URL they say which variables to set. Not parallel:
// it sets the process's environment.
func TestBatchClientSettings(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	base := strings.TrimSuffix(env.URL, "/v1")
	input := writeRequests(t, 3, "sim-model")
	for _, name := range []string{"KILN_BASE_URL", "KILN_URL", "OPENAI_BASE_URL", "KILN_CLIENT_KEY", "OPENAI_API_KEY", "KILN_API_KEY"} {
		unsetenv(t, name)
	}

	t.Run("no key", func(t *testing.T) {
		t.Setenv("KILN_BASE_URL", base)
		code, _, errOut := kiln(t, "batch", "submit", input)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "no API key: set KILN_CLIENT_KEY (or OPENAI_API_KEY)")
		require.NotContains(t, errOut, "401")

		t.Setenv("KILN_API_KEY", env.Key) // kiln serve's setting: named, not read
		code, _, errOut = kiln(t, "batch", "download", "batch_x")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "KILN_API_KEY is set, but it is kiln serve's setting")
	})

	t.Run("OpenAI's variables", func(t *testing.T) {
		t.Setenv("OPENAI_BASE_URL", env.URL) // with /v1, as the SDKs take it
		t.Setenv("OPENAI_API_KEY", env.Key)
		code, out, errOut := kiln(t, "batch", "submit", input, "--wait")
		require.Equal(t, 0, code, errOut)
		require.Regexp(t, `^batch_\w+\n$`, out)
		require.Contains(t, errOut, "completed in")
	})

	t.Run("kiln's variables come first", func(t *testing.T) {
		t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
		t.Setenv("OPENAI_API_KEY", "sk-kiln-not-this-one")
		t.Setenv("KILN_BASE_URL", base)
		t.Setenv("KILN_CLIENT_KEY", env.Key)
		code, _, errOut := kiln(t, "batch", "submit", input, "--wait")
		require.Equal(t, 0, code, errOut)
	})

	t.Run("refused key", func(t *testing.T) {
		t.Setenv("KILN_BASE_URL", base)
		t.Setenv("KILN_CLIENT_KEY", "sk-kiln-wrong")
		code, _, errOut := kiln(t, "batch", "submit", input)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "kiln at "+env.URL+" refused the API key (401): set KILN_CLIENT_KEY (or OPENAI_API_KEY)")
	})

	t.Run("no kiln", func(t *testing.T) {
		t.Setenv("KILN_CLIENT_KEY", env.Key)
		code, _, errOut := kiln(t, "batch", "download", "batch_x", "--url", "http://127.0.0.1:1")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "cannot reach kiln at http://127.0.0.1:1/v1")
		require.Contains(t, errOut, "set KILN_BASE_URL (or OPENAI_BASE_URL) or --url")
	})
}

// TestBatchWait: submit --wait shows why the batch waits (no agent serves
// its model); Ctrl-C stops the waiting, not the batch, and says how to
// wait again; kiln batch wait follows it to its end.
func TestBatchWait(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			base := strings.TrimSuffix(env.URL, "/v1")
			input := writeRequests(t, 4, "sim-model")

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out bytes.Buffer
			errOut := newWatchBuffer(`no live agent serves model "sim-model"`)
			done := make(chan int, 1)
			go func() {
				done <- mainContext(ctx, []string{"batch", "submit", input, "--wait", "--url", base, "--key", env.Key}, &out, errOut)
			}()
			select {
			case <-errOut.seen:
			case code := <-done:
				t.Fatalf("kiln batch submit --wait ended (%d) before it showed why the batch waits:\n%s", code, errOut)
			}
			cancel() // as Ctrl-C does
			require.Equal(t, exitInterrupted, <-done, errOut.String())
			id := strings.TrimSpace(out.String())
			require.Regexp(t, `^batch_\w+$`, id)
			require.Contains(t, errOut.String(), "stopped waiting; batch "+id+" goes on in kiln. Wait for it again with:\n\n    kiln batch wait "+id+" --url "+base+"\n")
			require.NotContains(t, errOut.String(), "context canceled")
			require.NotContains(t, errOut.String(), "kiln:", "no error line")
			require.Equal(t, "in_progress", batchStatus(t, env, id), "the batch goes on")

			// Served, the batch runs; kiln batch wait follows it to the end.
			startAgent(t, env)
			code, _, waitErr := kiln(t, "batch", "wait", id, "--url", base, "--key", env.Key)
			require.Equal(t, 0, code, waitErr)
			require.Regexp(t, `(?m)^batch `+id+` completed in \S+: 4 completed, 0 failed$`, waitErr)
		})
	}
}

// startAgent runs a kiln agent beside env's kiln serve, on the same
// database and object store, with its own simulator.
func startAgent(t *testing.T, env *kilntest.Env) {
	t.Helper()
	cfg := env.App.Cfg
	cfg.MetricsAddr = "127.0.0.1:0"
	a, err := app.New(t.Context(), cfg, app.Options{Agent: true, Version: "test",
		Sim: &llmsim.Config{Models: app.SimModels, TTFT: time.Millisecond, TPOT: -1}}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
}

// TestBatchDownload: kiln batch download makes its --dir, and its progress
// bars show sizes and end their lines, as the upload's does.
func TestBatchDownload(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	base := strings.TrimSuffix(env.URL, "/v1")
	input := writeRequests(t, 5, "sim-model")
	st, err := os.Stat(input)
	require.NoError(t, err)

	code, out, errOut := kiln(t, "batch", "submit", input, "--wait", "--url", base, "--key", env.Key)
	require.Equal(t, 0, code, errOut)
	id := strings.TrimSpace(out)
	// The upload bar shows the file's size and ends its line before the next.
	require.Regexp(t, fmt.Sprintf(`upload +100%% \S+ \(%d/%d B, [^)]*\)\s*\n`, st.Size(), st.Size()), errOut)
	require.Regexp(t, `(?m)^uploaded requests.jsonl as file-\w+$`, errOut)
	require.Regexp(t, `(?m)^batch `+id+` completed in \S+: 5 completed, 0 failed$`, errOut)

	dir := filepath.Join(t.TempDir(), "out", "nested")
	code, out, errOut = kiln(t, "batch", "download", id, "--dir", dir, "--url", base, "--key", env.Key)
	require.Equal(t, 0, code, errOut)
	path := filepath.Join(dir, id+"_output.jsonl")
	require.Equal(t, path+"\n", out)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 5, bytes.Count(data, []byte("\n")))
	size := len(data)
	unit := regexp.QuoteMeta(fmt.Sprintf("%d/%d B", size, size))
	if size >= 1000 {
		unit = `[\d.]+/[\d.]+ kB`
	}
	require.Regexp(t, regexp.QuoteMeta(id+"_output.jsonl")+` +100% \S+ \(`+unit+`, [^)]*\)\s*\n$`, errOut, "the sizes, and the line ended")
}
