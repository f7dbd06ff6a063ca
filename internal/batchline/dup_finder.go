package batchline

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// idRunLen is how many (hash, line) pairs a dupFinder holds in memory, 16
// bytes each: a file of more requests spills them to a temporary file in
// sorted runs of this length.
const idRunLen = 1 << 16

// idMergeFanIn is how many runs one merge reads at once, each through a
// buffer of idMergeBufBytes: more runs are first merged into longer ones.
const (
	idMergeFanIn    = 64
	idMergeBufBytes = 4 << 10
)

// idAtBytes is the size of a spilled idAt: its hash and its line, each as
// 8 bytes little-endian.
const idAtBytes = 16

type idAt struct {
	hash uint64
	line int
}

func cmpIDAt(a, b idAt) int { return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.line, b.line)) }

// dupFinder sorts the hashes of a file's custom_ids with their lines, so
// that lines sharing a hash come together, in memory bounded whatever the
// file's size: an external merge sort. It holds at most runLen pairs, and
// spills each full run, sorted, to a temporary file that each merges back
// and close removes.
type dupFinder struct {
	runLen int
	buf    []idAt
	f      *os.File // the spilled runs, one after another; nil until the first
	w      *bufio.Writer
	size   int64 // bytes written to f
	runs   []idRun
	rec    [idAtBytes]byte // write's, kept here so as not to allocate one a pair
}

// idRun is a sorted run in a dupFinder's file: n pairs from byte off.
type idRun struct{ off, n int64 }

func newDupFinder(runLen int) *dupFinder { return &dupFinder{runLen: runLen} }

func (d *dupFinder) add(hash uint64, line int) error {
	d.buf = append(d.buf, idAt{hash, line})
	if len(d.buf) < d.runLen {
		return nil
	}
	return d.spill()
}

// spill writes the pairs in memory, sorted, as a new run.
func (d *dupFinder) spill() error {
	if len(d.buf) == 0 {
		return nil
	}
	if d.f == nil {
		f, err := os.CreateTemp("", "kiln-custom-ids-*")
		if err != nil {
			return fmt.Errorf("spill custom_ids: %w", err)
		}
		d.f, d.w = f, bufio.NewWriterSize(f, idMergeBufBytes)
	}
	slices.SortFunc(d.buf, cmpIDAt)
	start := d.size
	for _, x := range d.buf {
		if err := d.write(x); err != nil {
			return err
		}
	}
	d.runs = append(d.runs, idRun{off: start, n: int64(len(d.buf))})
	d.buf = d.buf[:0]
	return nil
}

func (d *dupFinder) write(x idAt) error {
	binary.LittleEndian.PutUint64(d.rec[:8], x.hash)
	binary.LittleEndian.PutUint64(d.rec[8:], uint64(x.line))
	if _, err := d.w.Write(d.rec[:]); err != nil {
		return fmt.Errorf("spill custom_ids: %w", err)
	}
	d.size += idAtBytes
	return nil
}

// each calls fn with every pair added, in order of hash, then of line.
func (d *dupFinder) each(fn func(idAt) error) error {
	if d.f == nil { // it all fitted in memory
		slices.SortFunc(d.buf, cmpIDAt)
		for _, x := range d.buf {
			if err := fn(x); err != nil {
				return err
			}
		}
		return nil
	}
	if err := d.spill(); err != nil {
		return err
	}
	// Merge runs idMergeFanIn at a time into longer runs, written after
	// the others, until one merge can read them all.
	for len(d.runs) > idMergeFanIn {
		if err := d.w.Flush(); err != nil {
			return fmt.Errorf("spill custom_ids: %w", err)
		}
		group := d.runs[:idMergeFanIn]
		start, n := d.size, int64(0)
		err := d.merge(group, func(x idAt) error {
			n++
			return d.write(x)
		})
		if err != nil {
			return err
		}
		d.runs = append(d.runs[idMergeFanIn:], idRun{off: start, n: n})
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("spill custom_ids: %w", err)
	}
	return d.merge(d.runs, fn)
}

// merge calls fn with the pairs of runs in order.
func (d *dupFinder) merge(runs []idRun, fn func(idAt) error) error {
	h := make(idHeap, 0, len(runs))
	for _, r := range runs {
		c := &idCursor{r: bufio.NewReaderSize(io.NewSectionReader(d.f, r.off, r.n*idAtBytes), idMergeBufBytes)}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if err := fn(c.cur); err != nil {
			return err
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

// close removes the spilled runs.
func (d *dupFinder) close() {
	if d.f != nil {
		_ = d.f.Close()
		_ = os.Remove(d.f.Name())
		d.f = nil
	}
}

// idCursor reads a run's pairs.
type idCursor struct {
	r   *bufio.Reader
	cur idAt
	rec [idAtBytes]byte
}

func (c *idCursor) next() (bool, error) {
	if _, err := io.ReadFull(c.r, c.rec[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("read spilled custom_ids: %w", err)
	}
	c.cur = idAt{hash: binary.LittleEndian.Uint64(c.rec[:8]), line: int(binary.LittleEndian.Uint64(c.rec[8:]))}
	return true, nil
}

// idHeap orders cursors by their current pair.
type idHeap []*idCursor

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return cmpIDAt(h[i].cur, h[j].cur) < 0 }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*idCursor)) }
func (h *idHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
