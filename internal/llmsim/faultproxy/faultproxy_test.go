package faultproxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/llmsim/faultproxy"
)

func start(t *testing.T, o faultproxy.Options) *faultproxy.Proxy {
	t.Helper()
	sim, err := llmsim.New(llmsim.Config{Models: []string{"sim-model"}, TTFT: -1, TPOT: -1, OutputTokens: 8})
	require.NoError(t, err)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	p, err := faultproxy.Start(srv.URL, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func body(i int) string {
	return fmt.Sprintf(`{"model":"sim-model","messages":[{"role":"user","content":"number %d"}]}`, i)
}

// what says how an answer broke, as the agent would see it.
func what(t *testing.T, c *http.Client, p *faultproxy.Proxy, b string) faultproxy.Fault {
	t.Helper()
	began := time.Now()
	resp, err := c.Post(p.URL()+"/chat/completions", "application/json", strings.NewReader(b))
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET)
		return faultproxy.Reset
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		return faultproxy.Truncated
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", data)
	var cc struct {
		Choices []json.RawMessage `json:"choices"`
	}
	switch {
	case !json.Valid(data):
		return faultproxy.InvalidJSON
	case json.Unmarshal(data, &cc) != nil || len(cc.Choices) == 0:
		return faultproxy.WrongJSON
	case time.Since(began) >= 80*time.Millisecond:
		return faultproxy.Slow
	}
	return ""
}

// Every fault shows as the agent would meet it, at about its rate, and the
// schedule follows the seed.
func TestFaults(t *testing.T) {
	t.Parallel()
	o := faultproxy.Options{Seed: 5, SlowFor: 100 * time.Millisecond, Rates: map[faultproxy.Fault]float64{
		faultproxy.Reset: 0.1, faultproxy.Truncated: 0.1, faultproxy.Slow: 0.1, faultproxy.InvalidJSON: 0.1, faultproxy.WrongJSON: 0.1}}
	run := func() ([]faultproxy.Fault, map[faultproxy.Fault]int) {
		p := start(t, o)
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		var got []faultproxy.Fault
		for i := range 200 {
			got = append(got, what(t, c, p, body(i)))
		}
		counts, total := p.Stats()
		require.Equal(t, 200, total)
		return got, counts
	}
	got, counts := run()
	seen := map[faultproxy.Fault]int{}
	for _, f := range got {
		if f != "" {
			seen[f]++
		}
	}
	require.Equal(t, counts, seen, "each fault shows as itself")
	for _, f := range faultproxy.Faults {
		require.Greater(t, seen[f], 5, "%s", f)
		require.Less(t, seen[f], 40, "%s", f)
	}
	again, _ := run()
	require.Equal(t, got, again)
}

// A sticky request gets its fault on every attempt; others pass.
func TestSticky(t *testing.T) {
	t.Parallel()
	p := start(t, faultproxy.Options{Seed: 9, Sticky: 0.3, Rates: map[faultproxy.Fault]float64{faultproxy.Reset: 0.01, faultproxy.WrongJSON: 0.01}})
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	first := map[int]faultproxy.Fault{}
	for i := range 50 {
		first[i] = what(t, c, p, body(i))
	}
	sticky := p.Sticky()
	require.NotEmpty(t, sticky)
	for i := range 50 {
		f, ok := sticky[body(i)]
		if !ok {
			continue
		}
		require.Equal(t, f, first[i])
		for range 3 {
			require.Equal(t, f, what(t, c, p, body(i)), "request %d", i)
		}
	}
	// GETs pass untouched.
	resp, err := c.Get(p.URL() + "/models")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
