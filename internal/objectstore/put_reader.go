package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// PutDrainedGrace is how long Put goes on after its ctx is cancelled when the
// reader has already been read to the end, to finish storing the object.
const PutDrainedGrace = 30 * time.Second

var (
	// errSize reports a reader that did not yield the size Put was given.
	errSize = errors.New("reader length does not match size")
	// errPutReturned is what a Read gets after the Put returned.
	errPutReturned = errors.New("objectstore: Put has returned")
)

// putReader wraps the reader given to Put. It stops at ctx cancellation,
// enforces an exact size, and remembers the first error so Put can report the
// caller's error rather than whatever the transport made of it.
//
// Its EOF is the point of no return. A Put whose ctx is cancelled before it
// must store nothing, so the EOF is withheld; the consumer then fails or
// aborts the upload. After it, a cancelled ctx must not abort the final
// request either: S3 may already have committed the object, and an error
// would then lie. requestContext gives the context for those requests.
type putReader struct {
	ctx context.Context
	r   io.Reader

	// readMu is held through each Read: an HTTP transport may still be
	// reading the body on its own goroutine when the request fails, and
	// close waits for that, so that r is never read after Put returns.
	readMu    sync.Mutex
	remaining int64 // bytes still expected; -1 when the size is unknown
	n         int64 // bytes read so far
	err       error // sticky; io.EOF once drained
	closed    bool

	mu      sync.Mutex // never held while reading r
	drained bool       // EOF was handed out
	grace   *time.Timer
}

func newPutReader(ctx context.Context, r io.Reader, size int64) *putReader {
	return &putReader{ctx: ctx, r: r, remaining: size}
}

func (p *putReader) Read(b []byte) (int, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	switch {
	case p.closed:
		return 0, errPutReturned
	case p.err != nil:
		return 0, p.err
	case p.ctx.Err() != nil:
		return 0, p.fail(p.ctx.Err())
	case p.remaining == 0:
		return 0, p.checkEOF()
	}
	if p.remaining > 0 && int64(len(b)) > p.remaining {
		b = b[:p.remaining]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.remaining > 0 {
		p.remaining -= int64(n)
	}
	switch {
	case err == io.EOF:
		if p.remaining > 0 {
			return n, p.fail(fmt.Errorf("%w: got %d bytes, %d short", errSize, p.n, p.remaining))
		}
		return n, p.eof()
	case err != nil:
		return n, p.fail(err)
	case p.remaining == 0:
		// Look for surplus bytes now, together with the last chunk, so the
		// upload fails before the consumer can commit it.
		return n, p.checkEOF()
	}
	return n, nil
}

// checkEOF reads past the declared size; anything but EOF fails the Put.
func (p *putReader) checkEOF() error {
	var one [1]byte
	for range 100 {
		n, err := p.r.Read(one[:])
		if n > 0 {
			return p.fail(fmt.Errorf("%w: reader has more than %d bytes", errSize, p.n))
		}
		if err == io.EOF {
			return p.eof()
		}
		if err != nil {
			return p.fail(err)
		}
	}
	return p.fail(io.ErrNoProgress)
}

// eof hands out EOF unless ctx is cancelled; from then on the Put completes.
func (p *putReader) eof() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ctx.Err(); err != nil {
		return p.fail(err)
	}
	p.drained = true
	p.err = io.EOF
	return io.EOF
}

func (p *putReader) fail(err error) error {
	p.err = err
	return err
}

// close stops all further reads of r, waiting for one in progress.
func (p *putReader) close() {
	p.readMu.Lock()
	p.closed = true
	p.readMu.Unlock()
}

// cause closes p and returns the error that made the Put fail from the
// caller's side (the reader failed, had the wrong size, or ctx was cancelled
// in time), or nil.
func (p *putReader) cause() error {
	p.close()
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.err != nil && p.err != io.EOF {
		return p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drained {
		return p.ctx.Err()
	}
	return nil
}

// requestContext returns the context for the requests that store what p
// reads. It is cancelled with ctx while p is not drained, and
// PutDrainedGrace after ctx once it is. Call stop when the Put returns.
func (p *putReader) requestContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(p.ctx))
	stopAfter := context.AfterFunc(p.ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.drained {
			p.grace = time.AfterFunc(PutDrainedGrace, cancel)
		} else {
			cancel()
		}
	})
	return ctx, func() {
		stopAfter()
		p.mu.Lock()
		if p.grace != nil {
			p.grace.Stop()
		}
		p.mu.Unlock()
		cancel()
		p.close()
	}
}
