package kilntest

import (
	"net/http"
	"sync"
	"time"
)

// Probe wraps an LLM engine's handler (the simulator) and notes when
// inference requests arrive and are answered, so that a benchmark can tell
// the agent's pace at the engine from kiln's end-to-end time.
type Probe struct {
	next http.Handler
	// Arrivals receives the arrival time of a request whenever no earlier
	// one waits in it.
	Arrivals chan time.Time

	mu          sync.Mutex
	first, last time.Time
	count       int
}

// NewProbe wraps next.
func NewProbe(next http.Handler) *Probe {
	return &Probe{next: next, Arrivals: make(chan time.Time, 1)}
}

// ServeHTTP implements http.Handler.
func (p *Probe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		p.next.ServeHTTP(w, r)
		return
	}
	now := time.Now()
	p.mu.Lock()
	if p.first.IsZero() {
		p.first = now
	}
	p.mu.Unlock()
	select {
	case p.Arrivals <- now:
	default:
	}
	p.next.ServeHTTP(w, r)
	p.mu.Lock()
	p.last = time.Now()
	p.count++
	p.mu.Unlock()
}

// Reset forgets what the probe saw.
func (p *Probe) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.first, p.last, p.count = time.Time{}, time.Time{}, 0
}

// Rate is the requests per second answered, from the first arrival to the
// last answer.
func (p *Probe) Rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return float64(p.count) / p.last.Sub(p.first).Seconds()
}

// Span is the first arrival and the last answer.
func (p *Probe) Span() (first, last time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, p.last
}
