// Package faultproxy is a loopback HTTP proxy in front of an
// OpenAI-compatible LLM server (kiln's simulator, in tests) that breaks
// its answers: connection resets, bodies cut short, answers that crawl,
// bodies that are not JSON, and JSON that is not the answer asked for. It
// stands between kiln's agent and its engine (KILN_LLM_URL), so that tests
// see what the agent makes of an engine, or a network, that misbehaves.
//
// Which request gets which fault follows a seeded schedule, so a failing
// test can be replayed from its seed. A fault is transient (drawn per
// request: a retry may pass) or, for a share of the requests chosen by
// their body, sticky: every attempt of that request gets the same fault,
// as a client would see a permanent one.
package faultproxy

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is a way an answer breaks.
type Fault string

// The faults, in the order the schedule draws them.
const (
	// Reset resets the connection (TCP RST) before any answer.
	Reset Fault = "reset"
	// Truncated sends the answer's status and part of its body, then
	// closes the connection, short of the Content-Length it promised.
	Truncated Fault = "truncated"
	// Slow sends the answer in pieces over SlowFor: a request timeout
	// shorter than that gives up on it.
	Slow Fault = "slow"
	// InvalidJSON answers 200 with a body that is not JSON: the answer cut
	// short, or an HTML error page.
	InvalidJSON Fault = "invalid_json"
	// WrongJSON answers 200 with JSON that is not the answer asked for:
	// an object without choices, an array, a string, null.
	WrongJSON Fault = "wrong_json"
)

// Faults are every fault, in the order the schedule draws them.
var Faults = []Fault{Reset, Truncated, Slow, InvalidJSON, WrongJSON}

// SlowForDefault is Options.SlowFor's default.
const SlowForDefault = 500 * time.Millisecond

// Options are the proxy's schedule.
type Options struct {
	// Seed seeds the schedule.
	Seed uint64
	// Rates are the chance of each fault per request; their sum is at
	// most 1. Unlisted faults have none.
	Rates map[Fault]float64
	// Sticky is the share of requests, chosen by a hash of the seed and
	// the body, that get a fault on every attempt: one of those with a
	// rate, chosen by the same hash.
	Sticky float64
	// SlowFor is how long a slow answer takes. Default: SlowForDefault.
	SlowFor time.Duration
}

// Proxy is a running fault proxy.
type Proxy struct {
	target string
	o      Options
	client *http.Client
	srv    *http.Server
	ln     net.Listener

	mu     sync.Mutex
	rng    *rand.Rand
	counts map[Fault]int
	sticky map[string]Fault // by custom request: what every attempt gets
	total  int
}

// Start starts a proxy on a free loopback port in front of the server at
// target (its root URL, as http://127.0.0.1:8000, without /v1).
func Start(target string, o Options) (*Proxy, error) {
	sum := 0.0
	for _, f := range Faults {
		sum += o.Rates[f]
	}
	if sum > 1 || o.Sticky < 0 || o.Sticky > 1 {
		return nil, fmt.Errorf("faultproxy: rates sum to %v and sticky is %v; want each at most 1", sum, o.Sticky)
	}
	o.SlowFor = cmp.Or(o.SlowFor, SlowForDefault)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: strings.TrimRight(target, "/"), o: o, ln: ln,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		rng:    rand.New(rand.NewPCG(o.Seed, 0x7072_6f78)),
		counts: map[Fault]int{}, sticky: map[string]Fault{},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's OpenAI base URL, with /v1, for KILN_LLM_URL.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() + "/v1" }

// Close stops the proxy.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.srv.Shutdown(ctx)
}

// Stats are the faults injected, by kind, and the inference requests
// proxied.
func (p *Proxy) Stats() (map[Fault]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.counts))
	for f, n := range p.counts {
		out[f] = n
	}
	return out, p.total
}

// Sticky returns the requests that got a fault on every attempt, by body,
// and their fault.
func (p *Proxy) Sticky() map[string]Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Fault, len(p.sticky))
	for body, f := range p.sticky {
		out[body] = f
	}
	return out
}

// decide chooses the fault of one request.
func (p *Proxy) decide(body []byte) Fault {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00", p.o.Seed)
	h.Write(body)
	r := rand.New(rand.NewPCG(h.Sum64(), 0))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	var f Fault
	if r.Float64() < p.o.Sticky {
		var kinds []Fault
		for _, k := range Faults {
			if p.o.Rates[k] > 0 {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) > 0 {
			f = kinds[r.IntN(len(kinds))]
			p.sticky[string(body)] = f
		}
	} else {
		x := p.rng.Float64()
		for _, k := range Faults {
			if x < p.o.Rates[k] {
				f = k
				break
			}
			x -= p.o.Rates[k]
		}
	}
	if f != "" {
		p.counts[f]++
	}
	return f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away
	}
	var f Fault
	if r.Method == http.MethodPost {
		f = p.decide(body)
	}
	if f == Reset {
		reset(w)
		return
	}
	status, header, answer, err := p.forward(r, body)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	switch f {
	case Truncated:
		truncate(w, status, header, answer)
	case Slow:
		p.slow(r.Context(), w, status, header, answer)
	case InvalidJSON:
		if p.pick(2) == 0 {
			answer = answer[:len(answer)/2]
		} else {
			answer = []byte("<html><body><h1>502 Bad Gateway</h1></body></html>")
		}
		writeJSON(w, http.StatusOK, answer)
	case WrongJSON:
		wrong := [][]byte{
			[]byte(`{"object":"error","message":"the model is loading","type":"ServiceUnavailable"}`),
			[]byte(`[]`),
			[]byte(`"ok"`),
			[]byte(`null`),
			[]byte(`{"id":"chatcmpl-x","object":"chat.completion","choices":"none"}`),
		}
		writeJSON(w, http.StatusOK, wrong[p.pick(len(wrong))])
	default:
		copyHeader(w.Header(), header)
		w.WriteHeader(status)
		_, _ = w.Write(answer)
	}
}

func (p *Proxy) pick(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.IntN(n)
}

// forward sends the request to the target and reads its whole answer.
func (p *Proxy) forward(r *http.Request, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, without an answer
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// truncate writes the answer's head and half its body, then closes the
// connection.
func truncate(w http.ResponseWriter, status int, header http.Header, answer []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), cmp.Or(header.Get("Content-Type"), "application/json"), len(answer))
	_, _ = buf.Write(answer[:len(answer)/2])
	_ = buf.Flush()
}

// slow writes the answer in eight pieces over SlowFor, flushing each, and
// stops when the client gives up.
func (p *Proxy) slow(ctx context.Context, w http.ResponseWriter, status int, header http.Header, answer []byte) {
	copyHeader(w.Header(), header)
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	const pieces = 8
	step := p.o.SlowFor / pieces
	for i := range pieces {
		t := time.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, _ = w.Write(answer[len(answer)*i/pieces : len(answer)*(i+1)/pieces])
		_ = rc.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		if !slices.Contains([]string{"Connection", "Transfer-Encoding", "Keep-Alive"}, k) {
			dst[k] = slices.Clone(v)
		}
	}
}
