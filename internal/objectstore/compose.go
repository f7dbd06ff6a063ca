package objectstore

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// errSourceChanged reports a source that ended before the length Compose
// found when it began, or was given; errSourceLonger one that goes on past
// the size given.
var (
	errSourceChanged = fmt.Errorf("source is shorter than when Compose began or than the size given: %w", ErrSizeMismatch)
	errSourceLonger  = fmt.Errorf("source is longer than the size given: %w", ErrSizeMismatch)
)

// srcRange is length bytes of the source object key from offset.
type srcRange struct {
	key            string
	offset, length int64
}

// composePart is one part of a multipart upload that Compose makes.
type composePart struct {
	// copy: the part is ranges[0], copied server-side (UploadPartCopy).
	// Otherwise kiln streams the ranges, in order, into the part.
	copy   bool
	ranges []srcRange
	size   int64
}

// composeLimits are the part sizes a composePlan keeps to.
type composeLimits struct {
	// minPart is the smallest part but the last, and so the smallest source
	// worth copying server-side.
	minPart int64
	// streamPart is the size at which a streamed part is closed: together
	// with the part count limit, it bounds the objects Compose can make
	// from small sources.
	streamPart int64
	// maxPart is the largest part; a larger source is copied in ranges.
	maxPart int64
	// maxParts is the most parts an upload may have.
	maxParts int
}

// s3ComposeLimits are S3's: parts from 5 MiB (but the last) to 5 GiB, at most
// 10,000 of them.
var s3ComposeLimits = composeLimits{
	minPart:    5 << 20,
	streamPart: s3PartSize,
	maxPart:    5 << 30,
	maxParts:   10000,
}

// composePlan splits the concatenation of srcs, whose sizes are given, into
// parts that S3 accepts. Sources of at least minPart are copied server-side.
// Runs of smaller ones are streamed together into parts of about streamPart
// bytes. A streamed run shorter than minPart that a big source follows takes
// what it lacks from the head of that source, unless what would remain is
// too small to copy; then the whole source is streamed with the run.
func composePlan(srcs []string, sizes []int64, lim composeLimits) ([]composePart, error) {
	var parts []composePart
	var pending composePart // streamed, not yet closed
	flush := func() {
		if pending.size > 0 {
			parts = append(parts, pending)
		}
		pending = composePart{}
	}
	stream := func(r srcRange) {
		pending.ranges = append(pending.ranges, r)
		pending.size += r.length
	}

	for i, key := range srcs {
		size := sizes[i]
		if size == 0 {
			continue
		}
		if size >= lim.minPart {
			offset := int64(0)
			if pending.size > 0 && pending.size < lim.minPart {
				if need := lim.minPart - pending.size; size-need >= lim.minPart {
					stream(srcRange{key, 0, need})
					offset = need
				}
			}
			if pending.size == 0 || pending.size >= lim.minPart {
				flush()
				// Even ranges of at most maxPart: each is at least
				// maxPart/2, so never below minPart.
				rest := size - offset
				n := (rest + lim.maxPart - 1) / lim.maxPart
				for j := range n {
					length := rest / n
					if j < rest%n {
						length++
					}
					parts = append(parts, composePart{copy: true, ranges: []srcRange{{key, offset, length}}, size: length})
					offset += length
				}
				continue
			}
		}
		stream(srcRange{key, 0, size})
		if pending.size >= lim.streamPart {
			flush()
		}
	}
	flush()
	if len(parts) > lim.maxParts {
		return nil, fmt.Errorf("needs %d parts, more than the %d S3 allows", len(parts), lim.maxParts)
	}
	return parts, nil
}

// Prefetching by concatReader.
const (
	// prefetchMaxRange is the largest range concatReader fetches ahead; a
	// larger one is streamed when its turn comes.
	prefetchMaxRange = 256 << 10
)

// prefetchBuffers recycles the buffers of prefetched ranges.
var prefetchBuffers = sync.Pool{New: func() any { return new([prefetchMaxRange + 1]byte) }}

// concatReader reads ranges of objects one after another. Without ahead it
// opens each only when it gets to it, so that one at most is open. With
// ahead, it fetches up to ahead of the next ranges of at most
// prefetchMaxRange bytes at the same time, into buffers, so that many small
// sources cost about one round trip per ahead of them rather than one each.
type concatReader struct {
	ctx    context.Context
	open   func(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	ranges []srcRange
	// ends are the sizes of sources whose length a range that reaches the
	// size must find exactly: one byte more is asked for, and must not come.
	ends  map[string]int64
	ahead int

	queue   []*fetched // the next ranges, in order, fetched or not
	fetches sync.WaitGroup
	cancel  context.CancelFunc // stops the fetches

	cur    io.ReadCloser
	curKey string
	left   int64 // bytes left in cur
	check  bool  // cur must end after left bytes
	err    error // sticky
}

// fetched is a range of a concatReader's queue: being fetched ahead into
// buf, or, when done is nil, to be opened when its turn comes.
type fetched struct {
	r    srcRange
	done chan struct{}
	buf  *[prefetchMaxRange + 1]byte
	err  error
}

// newConcatReader reads ranges of b's objects. ends and ahead are as in
// concatReader.
func newConcatReader(ctx context.Context, b Bucket, ranges []srcRange, ends map[string]int64, ahead int) *concatReader {
	return &concatReader{ctx: ctx, open: b.GetRange, ranges: ranges, ends: ends, ahead: ahead}
}

// asked is how many bytes of r to ask for, and whether one more than
// r.length was asked for, to see that the source ends where it should.
func (c *concatReader) asked(r srcRange) (int64, bool) {
	if size, ok := c.ends[r.key]; ok && r.offset+r.length == size {
		return r.length + 1, true
	}
	return r.length, false
}

// fill queues the next ranges, and starts fetching the small ones.
func (c *concatReader) fill() {
	for len(c.queue) < max(c.ahead, 1) && len(c.ranges) > 0 {
		r := c.ranges[0]
		c.ranges = c.ranges[1:]
		if r.length == 0 {
			continue
		}
		f := &fetched{r: r}
		c.queue = append(c.queue, f)
		if c.ahead == 0 || r.length > prefetchMaxRange {
			continue
		}
		if c.cancel == nil {
			var ctx context.Context
			ctx, c.cancel = context.WithCancel(c.ctx)
			c.ctx = ctx
		}
		f.done, f.buf = make(chan struct{}), prefetchBuffers.Get().(*[prefetchMaxRange + 1]byte)
		c.fetches.Go(func() {
			defer close(f.done)
			f.err = c.fetch(f)
		})
	}
}

// fetch reads f's range into its buffer.
func (c *concatReader) fetch(f *fetched) error {
	n, check := c.asked(f.r)
	rc, err := c.open(c.ctx, f.r.key, f.r.offset, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadFull(rc, f.buf[:n])
	switch {
	case int64(got) < f.r.length:
		return fmt.Errorf("%q: %w", f.r.key, errSourceChanged)
	case check && int64(got) > f.r.length:
		return fmt.Errorf("%q: %w", f.r.key, errSourceLonger)
	case err != nil && err != io.ErrUnexpectedEOF:
		return err
	}
	return nil
}

// release returns a fetched buffer to the pool once its fetch is over.
func (f *fetched) release() {
	if f.buf != nil {
		<-f.done
		prefetchBuffers.Put(f.buf)
		f.buf = nil
	}
}

func (c *concatReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.cur == nil {
		c.fill()
		if len(c.queue) == 0 {
			return 0, io.EOF
		}
		f := c.queue[0]
		c.queue = c.queue[1:]
		c.curKey, c.left = f.r.key, f.r.length
		if f.done != nil {
			select {
			case <-f.done:
			case <-c.ctx.Done():
				f.release()
				return 0, c.fail(context.Cause(c.ctx))
			}
			if f.err != nil {
				f.release()
				return 0, c.fail(f.err)
			}
			c.cur, c.check = &bufferReader{b: f.buf[:f.r.length], f: f}, false
			continue
		}
		n, check := c.asked(f.r)
		rc, err := c.open(c.ctx, f.r.key, f.r.offset, n)
		if err != nil {
			return 0, c.fail(err)
		}
		c.cur, c.check = rc, check
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.cur.Read(p)
	c.left -= int64(n)
	switch {
	case c.left == 0:
		if c.check {
			var one [1]byte
			if m, _ := io.ReadFull(c.cur, one[:]); m > 0 {
				err = fmt.Errorf("%q: %w", c.curKey, errSourceLonger)
				break
			}
		}
		err = c.cur.Close()
		c.cur = nil
	case err == io.EOF:
		err = fmt.Errorf("%q: %w", c.curKey, errSourceChanged)
	}
	if err != nil {
		return n, c.fail(err)
	}
	return n, nil
}

func (c *concatReader) fail(err error) error {
	c.err = err
	_ = c.Close()
	return err
}

// Close closes the source being read, if any, and stops and waits for the
// fetches ahead.
func (c *concatReader) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	for _, f := range c.queue {
		f.release()
	}
	c.queue = nil
	c.fetches.Wait()
	if c.cur == nil {
		return nil
	}
	err := c.cur.Close()
	c.cur = nil
	return err
}

// bufferReader reads a prefetched range, and returns its buffer on Close.
type bufferReader struct {
	b []byte
	f *fetched
}

func (r *bufferReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *bufferReader) Close() error {
	r.f.release()
	return nil
}
