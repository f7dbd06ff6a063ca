package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Cursor is a place in a batch's live results (Results): every line of the
// chunks whose ordinal is below Ord has been read, and the first N lines of
// chunk Ord. Its text form is opaque to clients.
type Cursor struct {
	Ord, N int64
}

// String is the cursor's text form, as the after parameter takes it.
func (c Cursor) String() string { return fmt.Sprintf("%d.%d", c.Ord, c.N) }

// ParseCursor reads a cursor's text form; "" is the start.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	ord, n, ok := strings.Cut(s, ".")
	c := Cursor{}
	var err1, err2 error
	c.Ord, err1 = strconv.ParseInt(ord, 10, 64)
	c.N, err2 = strconv.ParseInt(n, 10, 64)
	if !ok || err1 != nil || err2 != nil || c.Ord < 0 || c.N < 0 {
		return Cursor{}, apierror.Invalid("after", fmt.Sprintf("%q is not a results cursor: pass the Kiln-Next-After header of the previous answer, or nothing to start", s))
	}
	return c, nil
}

// Results is a page of a batch's durable results: what Results found after a
// cursor. Write streams its lines.
type Results struct {
	Batch store.Batch
	// Next is the cursor after the page's lines: the after of the next
	// request.
	Next Cursor
	// Lines is how many lines the page holds.
	Lines int64
	// Done: the batch has ended and the page reaches the end of its
	// results; no line will follow Next.
	Done bool

	s     *Service
	parts []resultPart
}

// resultPart is a run of lines of one chunk's output or error lines: skip
// lines, then take lines, from the chunk's object or, once finalize has
// composed the batch's files and removed the chunks, from the range of the
// file that holds them.
type resultPart struct {
	chunk      store.Chunk
	errs       bool   // the chunk's error lines, not its output lines
	key        string // the chunk's object; "" when file is set
	file       *fileRange
	skip, take int64
}

// fileRange is where a chunk's output or error lines sit in a batch's file.
type fileRange struct {
	key        string
	off, bytes int64
}

func unavailable(id, why string) error {
	return apierror.Conflict("results_unavailable", fmt.Sprintf(
		"The results of batch %s cannot be read by cursor: %s. Read its output and error files instead.", id, why))
}

// Results finds the durable results of a batch after a cursor, limit lines
// at most (0: all). Every line it finds is in the batch's final output or
// error file, byte for byte: while the batch runs, the lines of its
// committed chunks (each chunk's output lines, then its error lines, in the
// order the chunks committed); once it has ended, the same lines from its
// files, then those of the requests that never ran. With wait, and no
// line yet after the cursor, it waits that long for one, or for the end.
func (s *Service) Results(ctx context.Context, id string, after Cursor, limit int64, wait time.Duration) (*Results, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		r, err := s.results(ctx, b, after, limit)
		if err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if r.Lines > 0 || r.Done || left <= 0 {
			return r, nil
		}
		// Woken at once by a commit in this process or, on Postgres, in
		// any; the poll bounds the wait for the rest (SQLite with an agent
		// in another process; Postgres while its listener reconnects).
		poll := resultsPollSQLite
		if s.store.Dialect() == "postgres" {
			poll = resultsPollNotified
		}
		s.store.WaitResults(ctx, min(left, poll))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// How often a waiting Results looks again when nothing wakes it: on SQLite,
// which cannot notify another process, as often as jobs are polled there
// (config.PollIntervalDefault); on Postgres, whose notifications wake it,
// seldom.
const (
	resultsPollSQLite   = 50 * time.Millisecond
	resultsPollNotified = time.Second
)

func (s *Service) results(ctx context.Context, b store.Batch, after Cursor, limit int64) (*Results, error) {
	r := &Results{Batch: b, Next: after, s: s}
	if b.Terminal() {
		return r, s.endedResults(ctx, r, after, limit)
	}
	from := after.Ord
	if after.N > 0 {
		from-- // the chunk the cursor is inside of
	}
	chunks, err := s.store.ChunksAfter(ctx, b.ID, from)
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if c.Ord == 0 {
			return nil, unavailable(b.ID, "its chunks were written before kiln numbered them")
		}
		if !r.add(c, nil, nil, after, limit) {
			break
		}
	}
	return r, nil
}

// endedResults pages the results of a batch that has ended, from its
// files.
func (s *Service) endedResults(ctx context.Context, r *Results, after Cursor, limit int64) error {
	b := r.Batch
	if b.InProgressAt == nil { // stopped or failed before it ran: no results
		r.Done = true
		return nil
	}
	chunks, ranges, err := s.fileRanges(ctx, b)
	if err != nil {
		return err
	}
	slices.SortFunc(chunks, func(a, b store.Chunk) int { return int(a.Ord - b.Ord) })
	for _, c := range chunks {
		rg := ranges[chunkID{c.Shard, c.Seq}]
		if !r.add(c, rg[0], rg[1], after, limit) {
			return nil
		}
	}
	r.Done = true
	return nil
}

type chunkID struct{ shard, seq int64 }

// missingShard is the shard of the pseudo-chunk that stands for the error
// lines of the requests that never ran, which finalize writes after the
// chunks' in the error file.
const missingShard = -1

// fileRanges places an ended batch's chunks in its output and error files,
// which finalize composed from them in order of shard and sequence. The
// error lines of the requests that never ran come last, as a chunk with
// the next ordinal.
func (s *Service) fileRanges(ctx context.Context, b store.Batch) ([]store.Chunk, map[chunkID][2]*fileRange, error) {
	chunks, err := s.store.ChunkList(ctx, b.ID, -1)
	if err != nil {
		return nil, nil, err
	}
	files := [2]store.File{}
	for i, id := range []*string{b.OutputFileID, b.ErrorFileID} {
		if id == nil {
			continue
		}
		f, err := s.store.FileGet(ctx, *id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, unavailable(b.ID, fmt.Sprintf("its file %s has been deleted", *id))
		}
		if err != nil {
			return nil, nil, err
		}
		files[i] = f
	}
	ranges := map[chunkID][2]*fileRange{}
	var off [2]int64
	var errLines, lastOrd int64
	for _, c := range chunks {
		if c.Ord == 0 && c.OutputLines+c.ErrorLines > 0 {
			return nil, nil, unavailable(b.ID, "its chunks were written before kiln numbered them")
		}
		var rg [2]*fileRange
		for i, n := range []int64{c.OutputBytes, c.ErrorBytes} {
			rg[i] = &fileRange{key: files[i].ObjectKey, off: off[i], bytes: n}
			off[i] += n
		}
		ranges[chunkID{c.Shard, c.Seq}] = rg
		errLines += c.ErrorLines
		lastOrd = max(lastOrd, c.Ord)
	}
	if off[0] != files[0].Bytes || off[1] > files[1].Bytes {
		return nil, nil, unavailable(b.ID, "its chunks overlapped after a crash, so its files were filtered")
	}
	if missing := b.Failed - errLines; missing > 0 {
		c := store.Chunk{BatchID: b.ID, Shard: missingShard, Ord: lastOrd + 1, ErrorLines: missing, ErrorBytes: files[1].Bytes - off[1]}
		ranges[chunkID{c.Shard, c.Seq}] = [2]*fileRange{nil, {key: files[1].ObjectKey, off: off[1], bytes: c.ErrorBytes}}
		chunks = append(chunks, c)
	}
	return chunks, ranges, nil
}

// add appends chunk c's lines after the cursor to the page, limit lines in
// all (0: no limit), and reports whether there is room for more. out and
// errs place the chunk's lines in the batch's files; nil reads its
// objects.
func (r *Results) add(c store.Chunk, out, errs *fileRange, after Cursor, limit int64) bool {
	total := c.OutputLines + c.ErrorLines
	start := int64(0) // lines of c already read
	switch {
	case c.Ord < after.Ord:
		return true
	case c.Ord == after.Ord:
		start = min(after.N, total)
	}
	n := total - start
	if limit > 0 {
		n = min(n, limit-r.Lines)
	}
	// Lines [start, start+n) of the chunk: its output lines come first.
	clamp := func(v, hi int64) int64 { return max(0, min(v, hi)) }
	for _, p := range []resultPart{
		{chunk: c, key: ChunkOutputKey(c.ObjectKey), file: out, skip: clamp(start, c.OutputLines), take: clamp(start+n, c.OutputLines) - clamp(start, c.OutputLines)},
		{chunk: c, errs: true, key: ChunkErrorKey(c.ObjectKey), file: errs,
			skip: clamp(start-c.OutputLines, c.ErrorLines), take: clamp(start+n-c.OutputLines, c.ErrorLines) - clamp(start-c.OutputLines, c.ErrorLines)},
	} {
		if p.take > 0 {
			if p.file != nil {
				p.key = ""
			}
			r.parts = append(r.parts, p)
		}
	}
	r.Lines += n
	if n > 0 || c.Ord > after.Ord {
		r.Next = Cursor{Ord: c.Ord, N: start + n}
	}
	return start+n == total && (limit == 0 || r.Lines < limit)
}

// Write streams the page's lines to w. A chunk that finalize removed while
// the page was read is read from the batch's files instead.
func (r *Results) Write(ctx context.Context, w io.Writer) error {
	var ranges map[chunkID][2]*fileRange
	for _, p := range r.parts {
		rc, err := r.open(ctx, p)
		if errors.Is(err, objectstore.ErrNotExist) && p.key != "" {
			if ranges == nil {
				b, gerr := r.s.store.BatchGet(ctx, r.Batch.ID)
				if gerr != nil {
					return gerr
				}
				if !b.Terminal() {
					return fmt.Errorf("results of batch %s: chunk %d/%d: %w", b.ID, p.chunk.Shard, p.chunk.Seq, err)
				}
				if _, ranges, err = r.s.fileRanges(ctx, b); err != nil {
					return err
				}
			}
			rg := ranges[chunkID{p.chunk.Shard, p.chunk.Seq}]
			p.key, p.file = "", rg[0]
			if p.errs {
				p.file = rg[1]
			}
			if p.file == nil {
				return fmt.Errorf("results of batch %s: chunk %d/%d is not in its files", r.Batch.ID, p.chunk.Shard, p.chunk.Seq)
			}
			rc, err = r.open(ctx, p)
		}
		if err != nil {
			return fmt.Errorf("results of batch %s: %w", r.Batch.ID, err)
		}
		err = copyLines(w, rc, p.skip, p.take)
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("results of batch %s: chunk %d/%d: %w", r.Batch.ID, p.chunk.Shard, p.chunk.Seq, err)
		}
	}
	return nil
}

func (r *Results) open(ctx context.Context, p resultPart) (io.ReadCloser, error) {
	if p.key != "" {
		return r.s.bucket.Get(ctx, p.key)
	}
	return r.s.bucket.GetRange(ctx, p.file.key, p.file.off, p.file.bytes)
}

// copyLines skips skip lines of src, then copies take lines to dst.
func copyLines(dst io.Writer, src io.Reader, skip, take int64) error {
	br := bufio.NewReaderSize(src, 64<<10)
	for i := int64(0); i < skip+take; i++ {
		for {
			b, err := br.ReadSlice('\n')
			if i >= skip && len(b) > 0 {
				if _, werr := dst.Write(b); werr != nil {
					return werr
				}
			}
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%d lines short", skip+take-i)
			}
			return err
		}
	}
	return nil
}
