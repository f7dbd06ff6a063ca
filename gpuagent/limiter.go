package gpuagent

import (
	"context"
	"sync"
	"time"
)

// limiter bounds the requests in flight with AIMD, as TCP does its window:
// every answer in time adds 1/limit (one more slot per window of answers),
// and a sign of overload (429, 5xx, a timeout) halves the limit, at most
// once per backoffEvery so that one burst of errors counts once.
type limiter struct {
	mu           sync.Mutex
	limit        float64
	min, max     float64
	inFlight     int
	lastCut      time.Time
	backoffEvery time.Duration
	wake         chan struct{} // closed and replaced whenever a slot may have opened, if waited on
	waited       bool          // someone waits on wake
}

func newLimiter(most, least int, backoffEvery time.Duration) *limiter {
	return &limiter{limit: float64(most), max: float64(most), min: float64(max(least, 1)), backoffEvery: backoffEvery, wake: make(chan struct{})}
}

// acquire waits for a slot.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if float64(l.inFlight) < l.limit {
			l.inFlight++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.waited = true
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// tryAcquire takes a slot if one is free.
func (l *limiter) tryAcquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if float64(l.inFlight) < l.limit {
		l.inFlight++
		return true
	}
	return false
}

// release frees a slot without judging the answer (a cancelled request).
func (l *limiter) release() { l.done(0) }

// succeeded frees a slot after an answer in time.
func (l *limiter) succeeded() { l.done(1) }

// overloaded frees a slot after a sign of overload.
func (l *limiter) overloaded() { l.done(-1) }

func (l *limiter) done(signal int) {
	l.mu.Lock()
	l.inFlight--
	switch {
	case signal > 0:
		l.limit = min(l.max, l.limit+1/l.limit)
	case signal < 0 && time.Since(l.lastCut) >= l.backoffEvery:
		l.limit = max(l.min, l.limit/2)
		l.lastCut = time.Now()
	}
	if l.waited {
		close(l.wake)
		l.wake = make(chan struct{})
		l.waited = false
	}
	l.mu.Unlock()
}

// waitIdle waits until no request is in flight.
func (l *limiter) waitIdle(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.inFlight == 0 {
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.waited = true
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

func (l *limiter) stats() (inFlight int, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight, int(l.limit)
}
