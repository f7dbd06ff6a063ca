// Package faultbucket wraps an objectstore.Bucket with faults, for tests
// of what kiln does when its object store misbehaves: operations that
// fail, reads that fail part-way or crawl, and a disk that fills up, so
// that writes fail with ENOSPC for a while. Which operation gets which
// fault follows a seeded schedule: the n-th decision of a bucket made with
// a seed is always the same, so a failing test can be replayed from the
// seed it printed (operations that race draw in the order they arrive).
//
// A Bucket starts healthy; Break starts the faults and Heal stops them,
// so that a test can set up, break things in the middle, and heal before
// it checks the outcome. Presigned URLs pass through, as does Close: a
// folder's presigned URLs are served by objectstore.Handler on the
// unwrapped bucket, and the faults are the server's, not the client's.
package faultbucket

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/kilnhq/kiln/internal/objectstore"
)

var (
	// ErrInjected is the error of an operation the schedule failed.
	ErrInjected = errors.New("faultbucket: injected fault")
	// ErrDiskFull is the error of a write while the disk is full; it
	// wraps syscall.ENOSPC, as a folder's would.
	ErrDiskFull = fmt.Errorf("faultbucket: disk full: %w", syscall.ENOSPC)
)

// Defaults of Options.
const (
	SlowReadDelayDefault  = 100 * time.Millisecond
	DiskFullWritesDefault = 20
)

// Options are the faults' rates, each the chance that one operation gets
// the fault while the bucket is broken. Zero rates inject nothing.
type Options struct {
	// Seed seeds the schedule.
	Seed uint64
	// ErrorRate fails an operation with ErrInjected: at its start, or, for
	// a read, after part of the object (an S3 connection cut mid-body).
	ErrorRate float64
	// SlowReadRate makes a read (Get, GetRange) crawl: its first Read
	// waits SlowReadDelay, each later one a tenth of it.
	SlowReadRate float64
	// SlowReadDelay is how long a slow read waits for its first byte.
	// Default: SlowReadDelayDefault.
	SlowReadDelay time.Duration
	// DiskFullRate fills the disk at a write (Put, Compose, ComposeSources,
	// CompleteMultipart): that write and the next DiskFullWrites-1 fail
	// with ErrDiskFull, before they store anything.
	DiskFullRate float64
	// DiskFullWrites is how many writes in a row fail once the disk is
	// full. Default: DiskFullWritesDefault.
	DiskFullWrites int
}

// Stats count the faults injected.
type Stats struct {
	// Ops counts the operations while broken, faulty or not.
	Ops int64
	// Errors counts operations failed at their start; ReadErrors reads
	// failed part-way.
	Errors, ReadErrors int64
	// SlowReads counts reads made to crawl.
	SlowReads int64
	// DiskFull counts writes failed for a full disk; Fills how often the
	// disk filled up.
	DiskFull, Fills int64
}

// Bucket is an objectstore.Bucket with faults.
type Bucket struct {
	next objectstore.Bucket
	o    Options

	mu       sync.Mutex
	rng      *rand.Rand
	broken   bool
	fullLeft int // writes that still fail for a full disk
	stats    Stats
}

var _ objectstore.Bucket = (*Bucket)(nil)

// New wraps next. The bucket starts healthy: call Break.
func New(next objectstore.Bucket, o Options) *Bucket {
	o.SlowReadDelay = cmp.Or(o.SlowReadDelay, SlowReadDelayDefault)
	o.DiskFullWrites = cmp.Or(o.DiskFullWrites, DiskFullWritesDefault)
	return &Bucket{next: next, o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x66617562))}
}

// Unwrap is the bucket underneath, without faults.
func (b *Bucket) Unwrap() objectstore.Bucket { return b.next }

// Break starts injecting faults.
func (b *Bucket) Break() {
	b.mu.Lock()
	b.broken = true
	b.mu.Unlock()
}

// Heal stops injecting faults, and empties a full disk.
func (b *Bucket) Heal() {
	b.mu.Lock()
	b.broken, b.fullLeft = false, 0
	b.mu.Unlock()
}

// FillDisk fills the disk now, for the next writes writes, broken or not.
func (b *Bucket) FillDisk(writes int) {
	b.mu.Lock()
	b.fullLeft = writes
	b.stats.Fills++
	b.mu.Unlock()
}

// Stats returns the faults injected so far.
func (b *Bucket) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// fault is what the schedule decided for one operation.
type fault int

const (
	none fault = iota
	failNow
	failMidRead
	slowRead
	diskFull
)

type opKind int

const (
	opOther opKind = iota
	opRead
	opWrite
)

// decide draws the fault of the next operation. While broken, every
// operation draws the same numbers whatever its kind and whatever the
// disk, so that the schedule does not shift with the mix of operations.
func (b *Bucket) decide(kind opKind) fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	var pErr, pSlow, pFull float64
	if b.broken {
		b.stats.Ops++
		pErr, pSlow, pFull = b.rng.Float64(), b.rng.Float64(), b.rng.Float64()
	}
	switch {
	case kind == opWrite && b.fullLeft > 0:
		b.fullLeft--
		b.stats.DiskFull++
		return diskFull
	case !b.broken:
		return none
	case kind == opWrite && pFull < b.o.DiskFullRate:
		b.fullLeft = b.o.DiskFullWrites - 1
		b.stats.Fills++
		b.stats.DiskFull++
		return diskFull
	case kind == opRead && pErr < b.o.ErrorRate/2:
		b.stats.ReadErrors++
		return failMidRead
	case pErr < b.o.ErrorRate:
		b.stats.Errors++
		return failNow
	case kind == opRead && pSlow < b.o.SlowReadRate:
		b.stats.SlowReads++
		return slowRead
	}
	return none
}

func (b *Bucket) check(op, key string, kind opKind) error {
	switch b.decide(kind) {
	case failNow:
		return fmt.Errorf("%s %s: %w", op, key, ErrInjected)
	case diskFull:
		return fmt.Errorf("%s %s: %w", op, key, ErrDiskFull)
	}
	return nil
}

// Put implements objectstore.Bucket. A write that fails does so before it
// reads r, so the previous object is untouched.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, size int64) (objectstore.Info, error) {
	if err := b.check("put", key, opWrite); err != nil {
		return objectstore.Info{}, err
	}
	return b.next.Put(ctx, key, r, size)
}

// Get implements objectstore.Bucket.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.read(ctx, "get", key, func() (io.ReadCloser, error) { return b.next.Get(ctx, key) })
}

// GetRange implements objectstore.Bucket.
func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return b.read(ctx, "get range", key, func() (io.ReadCloser, error) { return b.next.GetRange(ctx, key, offset, length) })
}

func (b *Bucket) read(ctx context.Context, op, key string, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	f := b.decide(opRead)
	if f == failNow {
		return nil, fmt.Errorf("%s %s: %w", op, key, ErrInjected)
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	switch f {
	case failMidRead:
		b.mu.Lock()
		after := b.rng.Int64N(1 << 10) // within the first KiB
		b.mu.Unlock()
		return &cutReader{rc: rc, left: after, err: fmt.Errorf("%s %s: connection cut: %w", op, key, ErrInjected)}, nil
	case slowRead:
		return &slowReader{ctx: ctx, rc: rc, delay: b.o.SlowReadDelay}, nil
	}
	return rc, nil
}

// Stat implements objectstore.Bucket.
func (b *Bucket) Stat(ctx context.Context, key string) (objectstore.Info, error) {
	if err := b.check("stat", key, opOther); err != nil {
		return objectstore.Info{}, err
	}
	return b.next.Stat(ctx, key)
}

// Delete implements objectstore.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.check("delete", key, opOther); err != nil {
		return err
	}
	return b.next.Delete(ctx, key)
}

// List implements objectstore.Bucket.
func (b *Bucket) List(ctx context.Context, prefix string, fn func(objectstore.Info) error) error {
	if err := b.check("list", prefix, opOther); err != nil {
		return err
	}
	return b.next.List(ctx, prefix, fn)
}

// PresignPut implements objectstore.Bucket.
func (b *Bucket) PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return b.next.PresignPut(ctx, key, expiry)
}

// PresignGet implements objectstore.Bucket.
func (b *Bucket) PresignGet(ctx context.Context, key string, expiry time.Duration, filename string) (string, error) {
	return b.next.PresignGet(ctx, key, expiry, filename)
}

// Compose implements objectstore.Bucket.
func (b *Bucket) Compose(ctx context.Context, dst string, srcs []string) (objectstore.Info, error) {
	if err := b.check("compose", dst, opWrite); err != nil {
		return objectstore.Info{}, err
	}
	return b.next.Compose(ctx, dst, srcs)
}

// ComposeSources implements objectstore.Bucket.
func (b *Bucket) ComposeSources(ctx context.Context, dst string, srcs []objectstore.Source) (objectstore.Info, error) {
	if err := b.check("compose", dst, opWrite); err != nil {
		return objectstore.Info{}, err
	}
	return b.next.ComposeSources(ctx, dst, srcs)
}

// CreateMultipart implements objectstore.Bucket.
func (b *Bucket) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := b.check("create multipart", key, opOther); err != nil {
		return "", err
	}
	return b.next.CreateMultipart(ctx, key)
}

// PresignPart implements objectstore.Bucket.
func (b *Bucket) PresignPart(ctx context.Context, key, uploadID string, n int, expiry time.Duration) (string, error) {
	return b.next.PresignPart(ctx, key, uploadID, n, expiry)
}

// CompleteMultipart implements objectstore.Bucket.
func (b *Bucket) CompleteMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (objectstore.Info, error) {
	if err := b.check("complete multipart", key, opWrite); err != nil {
		return objectstore.Info{}, err
	}
	return b.next.CompleteMultipart(ctx, key, uploadID, parts, maxPartSize)
}

// AbortMultipart implements objectstore.Bucket.
func (b *Bucket) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := b.check("abort multipart", key, opOther); err != nil {
		return err
	}
	return b.next.AbortMultipart(ctx, key, uploadID)
}

// Close implements objectstore.Bucket.
func (b *Bucket) Close() error { return b.next.Close() }

// cutReader fails after left bytes, as a connection cut mid-body.
type cutReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, r.err
	}
	p = p[:min(int64(len(p)), r.left)]
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *cutReader) Close() error { return r.rc.Close() }

// slowReader waits before each Read, delay before the first and a tenth
// of it before the others, as an overloaded server's slow stream; a wait
// ends with the read's context.
type slowReader struct {
	ctx   context.Context
	rc    io.ReadCloser
	delay time.Duration
	reads int
}

func (r *slowReader) Read(p []byte) (int, error) {
	d := r.delay
	if r.reads > 0 {
		d /= 10
	}
	r.reads++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-t.C:
	}
	return r.rc.Read(p)
}

func (r *slowReader) Close() error { return r.rc.Close() }
