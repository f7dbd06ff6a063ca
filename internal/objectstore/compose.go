package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// errSourceChanged reports a source that ended before the length Compose
// found when it began.
var errSourceChanged = errors.New("source is shorter than when Compose began")

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

// concatReader reads ranges of objects one after another, opening each only
// when it gets to it, so that one at most is open.
type concatReader struct {
	ctx    context.Context
	open   func(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	ranges []srcRange

	cur    io.ReadCloser
	curKey string
	left   int64 // bytes left in cur
	err    error // sticky
}

func newConcatReader(ctx context.Context, b Bucket, ranges []srcRange) *concatReader {
	return &concatReader{ctx: ctx, open: b.GetRange, ranges: ranges}
}

func (c *concatReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.cur == nil {
		if len(c.ranges) == 0 {
			return 0, io.EOF
		}
		r := c.ranges[0]
		c.ranges = c.ranges[1:]
		if r.length == 0 {
			continue
		}
		rc, err := c.open(c.ctx, r.key, r.offset, r.length)
		if err != nil {
			c.err = err
			return 0, err
		}
		c.cur, c.curKey, c.left = rc, r.key, r.length
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.cur.Read(p)
	c.left -= int64(n)
	switch {
	case c.left == 0:
		err = c.cur.Close()
		c.cur = nil
	case err == io.EOF:
		err = fmt.Errorf("%q: %w", c.curKey, errSourceChanged)
	}
	if err != nil {
		c.err = err
		c.Close()
	}
	return n, err
}

// Close closes the source being read, if any.
func (c *concatReader) Close() error {
	if c.cur == nil {
		return nil
	}
	err := c.cur.Close()
	c.cur = nil
	return err
}
