package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// guardBodies makes every request body keep a pace that a slow client
// cannot dodge: a read that waits more than idle for a byte fails, and once
// a body has taken idle, it must have come at minRate bytes a second on
// average. Either failure is a timeout (errSlowBody), which the route
// answers with 408 in OpenAI's envelope (apierror.BodyError; Huma does the
// same for JSON). A body shorter than its Content-Length stalls, and so
// ends the same way. JSON bodies keep Huma's deadline for the whole body
// besides (5s), which the pace guard does not extend.
func guardBodies(next http.Handler, idle time.Duration, minRate int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && idle > 0 {
			r.Body = &pacedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle, minRate: minRate,
				start: time.Now(), arm: !jsonContent(r.Header.Get("Content-Type"))}
		}
		next.ServeHTTP(w, r)
	})
}

// errSlowBody is a body that broke the pace: a timeout, as net.Error says.
type errSlowBody struct{ msg string }

func (e errSlowBody) Error() string   { return e.msg }
func (e errSlowBody) Timeout() bool   { return true }
func (e errSlowBody) Temporary() bool { return false }

var _ net.Error = errSlowBody{}

type pacedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration
	minRate int
	start   time.Time
	// arm sets the connection's read deadline before each read; off for
	// JSON, whose whole-body deadline Huma sets.
	arm  bool
	read int64
	err  error
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.arm {
		_ = p.rc.SetReadDeadline(time.Now().Add(p.idle))
	}
	n, err := p.ReadCloser.Read(b)
	p.read += int64(n)
	if errors.Is(err, io.EOF) && p.arm {
		// Done with the body: net/http's background read, which follows
		// it, must not time out in the middle of the handler (that would
		// cancel the request's context). A body that failed keeps its
		// deadline, so that net/http's drain of its rest cannot hang.
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		// Declared here, not above: errors.As's target escapes, and a
		// body read in 32 KB pieces would allocate it on every read.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.err = errSlowBody{fmt.Sprintf("no byte came for %s", p.idle)}
			return n, p.err
		}
		return n, err
	}
	if took := time.Since(p.start); took > p.idle && float64(p.read) < float64(p.minRate)*took.Seconds() {
		p.err = errSlowBody{fmt.Sprintf("%d bytes in %s, below the least rate of %d bytes a second", p.read, took.Round(time.Second), p.minRate)}
		return n, p.err
	}
	return n, nil
}
