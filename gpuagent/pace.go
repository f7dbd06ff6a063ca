package gpuagent

import (
	"sync"
	"time"
)

// paceRefresh is how often a project's rate limit is read again: a change
// through the Administration API reaches running agents within it.
const paceRefresh = 10 * time.Second

// pacer keeps the agent's dispatch of each project's requests to a model
// within the project's max_requests_per_1_minute: a token bucket per
// (project, model) that fills at the limit's rate and holds one second's
// worth. A project at its limit waits; the others' requests go on.
type pacer struct {
	mu      sync.Mutex
	buckets map[paceKey]*bucket
	now     func() time.Time
}

type paceKey struct{ project, model string }

type bucket struct {
	perSecond float64 // 0: no limit
	tokens    float64
	last      time.Time // when tokens was last brought up to date
	read      time.Time // when the limit was last read
}

func newPacer() *pacer { return &pacer{buckets: map[paceKey]*bucket{}, now: time.Now} }

// stale reports whether the limit of (project, model) is due to be read.
func (p *pacer) stale(project, model string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.buckets[paceKey{project, model}]
	return b == nil || p.now().Sub(b.read) >= paceRefresh
}

// set records the limit of (project, model), in requests a minute (0: none).
func (p *pacer) set(project, model string, perMinute int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, now := paceKey{project, model}, p.now()
	b := p.buckets[k]
	if b == nil {
		b = &bucket{last: now}
		p.buckets[k] = b
	}
	rate := float64(perMinute) / 60
	if b.perSecond != rate {
		b.perSecond, b.tokens, b.last = rate, burst(rate), now
	}
	b.read = now
}

func burst(perSecond float64) float64 { return max(1, perSecond) }

// delay is how long (project, model) must wait for its next request: 0 when
// it may go now.
func (p *pacer) delay(project, model string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.fill(paceKey{project, model})
	if b == nil || b.perSecond == 0 || b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.perSecond * float64(time.Second))
}

// take spends one request of (project, model)'s pace.
func (p *pacer) take(project, model string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.fill(paceKey{project, model}); b != nil && b.perSecond > 0 {
		b.tokens--
	}
}

// fill brings a bucket up to date. The caller holds p.mu.
func (p *pacer) fill(k paceKey) *bucket {
	b := p.buckets[k]
	if b == nil || b.perSecond == 0 {
		return b
	}
	now := p.now()
	b.tokens = min(burst(b.perSecond), b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	b.last = now
	return b
}
