package batch

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
)

// FinalizeWait is how long the finalizer waits for an agent that still
// holds the batch's lease to let go, when Finalize says ErrLeased.
const FinalizeWait = 500 * time.Millisecond

// ErrLeased is Finalize on a batch an agent still holds a shard of: it has
// yet to see the stop, or to write its last chunk. Try again after
// FinalizeWait.
var ErrLeased = errors.New("batch: an agent still holds a shard")

// Finalize assembles a stopped or finished batch's output and error files
// and ends it. It enforces the batch invariant: every request appears
// exactly once, in the output file or in the error file. Chunks may
// overlap after a crash; the first result of a line wins. Lines with no
// result become error lines: batch_cancelled, batch_expired, or
// batch_failed. A batch that is not ready is left alone; of one that has
// ended, what is left of its chunks is removed.
func (s *Service) Finalize(ctx context.Context, id string) error {
	b, err := s.store.BatchGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.Terminal() {
		// A run that ended the batch and died, or could not reach the
		// object store, before it removed the chunks: remove them now.
		return s.removeChunks(ctx, id)
	}
	if b.Status != store.BatchFinalizing && b.StopReason == "" {
		return nil
	}
	live, err := s.store.BatchLeasesLive(ctx, id)
	if err != nil {
		return err
	}
	if live > 0 {
		return ErrLeased
	}
	ctx, span := tracing.StartBatch(ctx, b.TraceContext, "batch.finalize", tracing.BatchID(id))
	defer span.End()
	start := time.Now()
	var out store.Outcome
	if b.InProgressAt != nil { // a batch stopped before validation ends with no files
		out, err = s.assemble(ctx, b)
		if err != nil {
			return fmt.Errorf("finalize batch %s: %w", id, err)
		}
	}
	b, err = s.store.BatchComplete(ctx, id, out)
	if err != nil {
		for _, f := range []*store.File{out.Output, out.Errors} {
			if f != nil {
				_ = s.bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
			}
		}
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	s.log.InfoContext(ctx, "batch ended", "batch", id, "status", b.Status,
		"completed", b.Completed, "failed", b.Failed, "took", time.Since(start).Round(time.Millisecond))
	// The chunks are in the files now. Should removing them fail, the job
	// runs again, and finds the batch ended.
	return s.removeChunks(ctx, id)
}

// removeChunks removes a batch's working objects, chunkWorkers at a time:
// first its chunks, as eachChunk reads their rows a page at a time (a batch
// of millions of lines has hundreds of thousands of chunk objects, too many
// to hold as a list), then whatever its prefix still holds: its pieces, the
// finalizer's scratch, a chunk written whose commit never came.
func (s *Service) removeChunks(ctx context.Context, id string) error {
	var (
		mu       sync.Mutex
		firstErr error
		failed   int
		g        errgroup.Group
	)
	g.SetLimit(chunkWorkers)
	remove := func(key string) {
		g.Go(func() error {
			if err := s.bucket.Delete(ctx, key); err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				failed++
				mu.Unlock()
			}
			return nil
		})
	}
	err := s.eachChunk(ctx, id, func(c store.Chunk) error {
		remove(c.ObjectKey)
		if c.OutputLines > 0 {
			remove(ChunkOutputKey(c.ObjectKey))
		}
		if c.ErrorLines > 0 {
			remove(ChunkErrorKey(c.ObjectKey))
		}
		return nil
	})
	_ = g.Wait()
	if err != nil {
		return fmt.Errorf("remove the chunks of batch %s: %w", id, err)
	}
	var keys []string
	err = s.bucket.List(ctx, BatchPrefix(id), func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	})
	for _, k := range keys {
		remove(k)
	}
	_ = g.Wait()
	if failed > 0 {
		err = errors.Join(err, fmt.Errorf("%d objects not removed, the first: %w", failed, firstErr))
	}
	if err != nil {
		return fmt.Errorf("remove the chunks of batch %s: %w", id, err)
	}
	return nil
}

// chunkWorkers is how many chunk objects the finalizer reads or removes at
// once: they are small, so round trips, not bytes, bound the time.
const chunkWorkers = 16

// errOverlap is what the scan of the chunks' indexes says when two hold
// the same line.
var errOverlap = errors.New("chunks overlap")

// assemble writes the output and error files. Chunks of a batch never hold
// the same line twice (a chunk is committed only under its shard's lease, and
// a new holder skips the lines already committed), so the files are the
// chunks' output and error objects concatenated server-side with
// ComposeSources, in order of shard and sequence (which results.go's byte
// ranges follow), plus, for a batch that stopped early, the error lines of
// the requests that never ran. The chunks' recorded sizes spare the object
// store a request per chunk, and the file rows need only the sizes, so no
// byte is hashed here. The indexes are checked for overlap while the files
// are composed: should chunks overlap all the same, the files are dropped and
// streamed instead through a filter that keeps each line's first result.
//
// The chunks are read from the store a page of chunkPage at a time, so that
// memory does not grow with the batch: a batch of more chunks has each
// page's objects composed into a scratch object under the batch's prefix,
// and the files composed from those.
func (s *Service) assemble(ctx context.Context, b store.Batch) (store.Outcome, error) {
	began := time.Now()
	var o store.Outcome
	outFile, errFile := s.newFile(b, "output"), s.newFile(b, "error")
	drop := func() { s.deleteObjects(ctx, outFile.ObjectKey, errFile.ObjectKey) }
	if pieces, err := s.store.PieceList(ctx, b.ID); err != nil {
		return o, err
	} else if len(pieces) > 0 {
		o, err := s.assemblePieced(ctx, b, pieces)
		if !errors.Is(err, errNoPieces) {
			return o, err
		}
	}

	var (
		done               = batchline.BitmapFor(b.Total)
		outParts, errParts []objectstore.Source // what makes the files
		page               []store.Chunk
		single             bool  // the one page made the files
		lastShard, lastSeq int64 = -1, -1
		err                error
	)
	var chunks, pages int
	var listed, scanned, composed time.Duration // summed over the pages
	for n := 0; ; n++ {
		at := time.Now()
		if page, err = s.store.ChunkListAfter(ctx, b.ID, lastShard, lastSeq, s.chunkPage); err != nil {
			drop()
			return o, err
		}
		listed += time.Since(at)
		if len(page) == 0 {
			break
		}
		chunks, pages = chunks+len(page), pages+1
		lastShard, lastSeq = page[len(page)-1].Shard, page[len(page)-1].Seq
		// The one page of a batch of few chunks is composed straight into
		// the files; the others each into scratch objects first.
		only := n == 0 && len(page) < s.chunkPage
		outKey, errKey := outFile.ObjectKey, errFile.ObjectKey
		if !only {
			outKey, errKey = composeKey(b.ID, n, "out"), composeKey(b.ID, n, "err")
		}
		var outSrcs, errSrcs []objectstore.Source
		for _, c := range page {
			if c.OutputLines > 0 {
				outSrcs = append(outSrcs, chunkSource(ChunkOutputKey(c.ObjectKey), c.OutputBytes, c))
			}
			if c.ErrorLines > 0 {
				errSrcs = append(errSrcs, chunkSource(ChunkErrorKey(c.ObjectKey), c.ErrorBytes, c))
			}
			o.Completed += c.OutputLines
			o.Failed += c.ErrorLines
		}
		// The error lines of the only page of a batch with requests that
		// never ran wait to be composed with theirs.
		errLater := only && b.Total > o.Completed+o.Failed
		var outSize, errSize int64
		at = time.Now()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			defer func() { scanned += time.Since(at) }()
			return s.scanIndexes(gctx, page, &done)
		})
		if len(outSrcs) > 0 {
			g.Go(func() (err error) {
				defer func() { composed += time.Since(at) }()
				outSize, err = s.composeFile(gctx, b.ID, outKey, outSrcs, "output")
				return err
			})
		}
		if len(errSrcs) > 0 && !errLater {
			g.Go(func() (err error) {
				errSize, err = s.composeFile(gctx, b.ID, errKey, errSrcs, "error")
				return err
			})
		}
		err = g.Wait()
		if errors.Is(err, errOverlap) {
			drop()
			s.log.WarnContext(ctx, "chunks overlap; keeping each line's first result", "batch", b.ID)
			return s.assembleFiltered(ctx, b)
		}
		if err != nil {
			drop()
			return o, err
		}
		if len(outSrcs) > 0 {
			outParts = append(outParts, objectstore.Source{Key: outKey, Size: outSize})
		}
		switch {
		case errLater:
			errParts = append(errParts, errSrcs...)
		case len(errSrcs) > 0:
			errParts = append(errParts, objectstore.Source{Key: errKey, Size: errSize})
		}
		single = only
		if len(page) < s.chunkPage {
			break
		}
	}
	missing := b.Total - o.Completed - o.Failed
	if missing > 0 {
		tail, n, err := s.missingSource(ctx, b, done)
		defer s.removeMissing(ctx, b.ID)
		if err != nil {
			drop()
			return o, err
		}
		errParts = append(errParts, tail)
		o.Failed += n
	}
	// The files are made of their parts, unless the only page made them
	// already: its error file when no request was missing.
	if !single && len(outParts) > 0 {
		if outFile.Bytes, err = s.composeFile(ctx, b.ID, outFile.ObjectKey, outParts, "output"); err != nil {
			drop()
			return o, err
		}
	} else if len(outParts) > 0 {
		outFile.Bytes = outParts[0].Size
	}
	if len(errParts) > 0 && (!single || missing > 0) {
		if errFile.Bytes, err = s.composeFile(ctx, b.ID, errFile.ObjectKey, errParts, "error"); err != nil {
			drop()
			return o, err
		}
	} else if len(errParts) > 0 {
		errFile.Bytes = errParts[0].Size
	}
	if len(outParts) > 0 {
		o.Output = &outFile
	}
	if len(errParts) > 0 {
		o.Errors = &errFile
	}
	s.log.DebugContext(ctx, "files composed from chunks", "batch", b.ID, "chunks", chunks, "pages", pages,
		"list", listed.Round(time.Millisecond), "scan", scanned.Round(time.Millisecond), "compose", composed.Round(time.Millisecond),
		"took", time.Since(began).Round(time.Millisecond))
	return o, nil
}

// composeFile composes srcs into key, the output or error (what) file of
// batch id.
func (s *Service) composeFile(ctx context.Context, id, key string, srcs []objectstore.Source, what string) (int64, error) {
	info, err := s.bucket.ComposeSources(ctx, key, srcs)
	if errors.Is(err, objectstore.ErrSizeMismatch) {
		// A chunk is not the size its row says: the object is the truth.
		// Compose again without the sizes rather than fail for ever; the
		// partial results placed by those sizes were wrong for it anyway.
		s.log.ErrorContext(ctx, "a chunk's recorded size is wrong; composing without the sizes", "batch", id, "file", what, "err", err)
		unsized := make([]objectstore.Source, len(srcs))
		for i, src := range srcs {
			unsized[i] = objectstore.Source{Key: src.Key, Size: -1}
		}
		info, err = s.bucket.ComposeSources(ctx, key, unsized)
	}
	if err != nil {
		return 0, fmt.Errorf("%s file: %w", what, err)
	}
	return info.Size, nil
}

// errNoPieces is assemblePieced's answer when the pieces cannot make the
// files: assemble composes the chunks instead.
var errNoPieces = errors.New("the pieces do not cover the chunks")

// assemblePieced writes the files from the batch's pieces (Compact) and the
// chunks outside them: the pieces, of several MiB each, are copied
// server-side, and only the chunks outside them, fewer than a page, are
// read through kiln. The chunks' rows are read a page at a time to place
// them; each piece's index, and the index of each chunk outside them, is
// scanned while the files are composed. It answers errNoPieces, having written nothing, when a piece
// does not hold the chunks its shards have now, or more than a page of
// chunks lies outside the pieces; chunks that overlap are handled as
// assemble does.
func (s *Service) assemblePieced(ctx context.Context, b store.Batch, pieces []store.Piece) (store.Outcome, error) {
	began := time.Now()
	var (
		o                  store.Outcome
		outSrcs, errSrcs   []objectstore.Source
		indexes            []store.Chunk // what holds each chunk's index: a piece's, or its own
		seen               = make([]int64, len(pieces))
		loose, pi          int
		lastShard, lastSeq int64 = -1, -1
	)
	for {
		page, err := s.store.ChunkListAfter(ctx, b.ID, lastShard, lastSeq, s.chunkPage)
		if err != nil {
			return o, err
		}
		if len(page) == 0 {
			break
		}
		lastShard, lastSeq = page[len(page)-1].Shard, page[len(page)-1].Seq
		for _, c := range page {
			for pi < len(pieces) && c.Shard > pieces[pi].LastShard {
				pi++
			}
			o.Completed += c.OutputLines
			o.Failed += c.ErrorLines
			if pi < len(pieces) && c.Shard >= pieces[pi].FirstShard {
				p := pieces[pi]
				if seen[pi] == 0 {
					indexes = append(indexes, store.Chunk{BatchID: b.ID, Shard: p.FirstShard, Seq: -1, ObjectKey: p.IndexKey})
					if p.OutputBytes > 0 {
						outSrcs = append(outSrcs, objectstore.Source{Key: p.OutputKey, Size: p.OutputBytes})
					}
					if p.ErrorKey != "" {
						errSrcs = append(errSrcs, objectstore.Source{Key: p.ErrorKey, Size: p.ErrorBytes})
					}
				}
				seen[pi]++
				continue
			}
			if loose++; loose > s.chunkPage {
				return store.Outcome{}, errNoPieces
			}
			indexes = append(indexes, c)
			if c.OutputLines > 0 {
				outSrcs = append(outSrcs, chunkSource(ChunkOutputKey(c.ObjectKey), c.OutputBytes, c))
			}
			if c.ErrorLines > 0 {
				errSrcs = append(errSrcs, chunkSource(ChunkErrorKey(c.ObjectKey), c.ErrorBytes, c))
			}
		}
		if len(page) < s.chunkPage {
			break
		}
	}
	for i, p := range pieces {
		if seen[i] != p.Chunks {
			s.log.WarnContext(ctx, "a piece does not hold its shards' chunks; composing the chunks", "batch", b.ID,
				"first_shard", p.FirstShard, "chunks", p.Chunks, "now", seen[i])
			return store.Outcome{}, errNoPieces
		}
	}

	placed := time.Now()
	outFile, errFile := s.newFile(b, "output"), s.newFile(b, "error")
	drop := func() { s.deleteObjects(ctx, outFile.ObjectKey, errFile.ObjectKey) }
	missing := b.Total - o.Completed - o.Failed
	done := batchline.BitmapFor(b.Total)
	var scanned, composed time.Time
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer func() { scanned = time.Now() }()
		return s.scanIndexes(gctx, indexes, &done)
	})
	if len(outSrcs) > 0 {
		g.Go(func() (err error) {
			defer func() { composed = time.Now() }()
			outFile.Bytes, err = s.composeFile(gctx, b.ID, outFile.ObjectKey, outSrcs, "output")
			return err
		})
	}
	if len(errSrcs) > 0 && missing == 0 {
		g.Go(func() (err error) {
			errFile.Bytes, err = s.composeFile(gctx, b.ID, errFile.ObjectKey, errSrcs, "error")
			return err
		})
	}
	err := g.Wait()
	if errors.Is(err, errOverlap) {
		drop()
		s.log.WarnContext(ctx, "chunks overlap; keeping each line's first result", "batch", b.ID)
		return s.assembleFiltered(ctx, b)
	}
	if err != nil {
		drop()
		return o, err
	}
	if missing > 0 {
		tail, n, err := s.missingSource(ctx, b, done)
		defer s.removeMissing(ctx, b.ID)
		if err != nil {
			drop()
			return o, err
		}
		errSrcs = append(errSrcs, tail)
		o.Failed += n
		if errFile.Bytes, err = s.composeFile(ctx, b.ID, errFile.ObjectKey, errSrcs, "error"); err != nil {
			drop()
			return o, err
		}
	}
	if len(outSrcs) > 0 {
		o.Output = &outFile
	}
	if len(errSrcs) > 0 {
		o.Errors = &errFile
	}
	s.log.DebugContext(ctx, "files composed from pieces", "batch", b.ID, "pieces", len(pieces), "loose_chunks", loose,
		"place", placed.Sub(began).Round(time.Millisecond), "scan", scanned.Sub(placed).Round(time.Millisecond),
		"compose_output", composed.Sub(placed).Round(time.Millisecond), "took", time.Since(began).Round(time.Millisecond))
	return o, nil
}

// missingSource writes the error lines of the requests of b with no result
// (not in done) to the batch's missing object, and returns it as a source of
// the error file, with how many lines it holds. removeMissing removes it
// once the file is composed.
func (s *Service) missingSource(ctx context.Context, b store.Batch, done batchline.Bitmap) (objectstore.Source, int64, error) {
	key := missingKey(b.ID)
	n, size, err := s.writeMissing(ctx, b, key, done)
	return objectstore.Source{Key: key, Size: size}, n, err
}

// deleteObjects deletes keys, even when ctx has ended: what a failed
// finalize wrote must not linger.
func (s *Service) deleteObjects(ctx context.Context, keys ...string) {
	for _, k := range keys {
		_ = s.bucket.Delete(context.WithoutCancel(ctx), k)
	}
}

// removeMissing removes what missingSource wrote, even when ctx has ended.
func (s *Service) removeMissing(ctx context.Context, batchID string) {
	s.deleteObjects(ctx, missingKey(batchID))
}

// chunkSource is a chunk's output or error object of the recorded size.
func chunkSource(key string, size int64, c store.Chunk) objectstore.Source {
	if c.Ord == 0 { // committed before kiln recorded the sizes
		size = -1
	}
	return objectstore.Source{Key: key, Size: size}
}

// scanIndexes reads the chunks' indexes, chunkWorkers at a time, marks
// their lines in done, and fails with errOverlap if a line is in two. Each
// index is streamed, its lines marked indexMarkLines at a time: a piece's
// index holds thousands of lines, and reading sixteen of them whole at once
// was the peak of kiln serve's memory.
func (s *Service) scanIndexes(ctx context.Context, chunks []store.Chunk, done *batchline.Bitmap) error {
	var mu sync.Mutex
	mark := func(lines []int) error {
		mu.Lock()
		defer mu.Unlock()
		overlap := false
		for _, l := range lines {
			overlap = overlap || done.Has(l)
			done.Set(l)
		}
		if overlap {
			return errOverlap
		}
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(chunkWorkers)
	for _, c := range chunks {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return s.scanIndex(ctx, c, mark) })
	}
	return g.Wait()
}

// indexMarkLines is how many of an index's lines scanIndex gathers before
// it marks them.
const indexMarkLines = 4096

// markBuffers hold indexMarkLines lines each, kept between scanIndex's
// reads: a piece's index, whose size its row does not give, grew one by
// doubling for each scan.
var markBuffers = sync.Pool{New: func() any {
	b := make([]int, 0, indexMarkLines)
	return &b
}}

// scanIndex streams the lines of a chunk's index to mark, indexMarkLines
// at a time.
func (s *Service) scanIndex(ctx context.Context, c store.Chunk, mark func([]int) error) error {
	rc, err := s.bucket.Get(ctx, c.ObjectKey)
	if err != nil {
		return fmt.Errorf("chunk %d/%d: %w", c.Shard, c.Seq, err)
	}
	defer rc.Close()
	buf := markBuffers.Get().(*[]int)
	defer markBuffers.Put(buf)
	lines := (*buf)[:0]
	err = batchline.RecordLines(rc, func(line int) error {
		if lines = append(lines, line); len(lines) < indexMarkLines {
			return nil
		}
		err := mark(lines)
		lines = lines[:0]
		return err
	})
	if err == nil && len(lines) > 0 {
		err = mark(lines)
	}
	if err != nil {
		return fmt.Errorf("chunk %d/%d: %w", c.Shard, c.Seq, err)
	}
	return nil
}

// writeMissing writes an error line for every request without a result to
// key, and counts them.
func (s *Service) writeMissing(ctx context.Context, b store.Batch, key string, done batchline.Bitmap) (n, size int64, err error) {
	in, err := s.store.FileGet(ctx, b.InputFileID)
	if err != nil {
		return 0, 0, fmt.Errorf("input file: %w", err)
	}
	code, message := missingReason(b)
	size, err = writeObject(ctx, s.bucket, key, func(dst io.Writer) error {
		rc, err := s.bucket.Get(ctx, in.ObjectKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		bw := bufio.NewWriterSize(dst, 256<<10)
		sc := batchline.NewScanner(rc, s.limits.MaxLineBytes)
		for sc.Next() {
			if done.Has(sc.Line()) || sc.TooLong() || batchline.Blank(sc.Bytes()) {
				continue
			}
			req, _, p := batchline.ParseInput(sc.Bytes(), b.Endpoint)
			if p != nil {
				continue
			}
			line, err := json.Marshal(batchline.Output{ID: ids.New(ids.BatchReq), CustomID: req.CustomID,
				Error: &batchline.LineError{Code: code, Message: message}})
			if err != nil {
				return err
			}
			n++
			if err := writeLine(bw, line); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return bw.Flush()
	})
	return n, size, err
}

// assembleFiltered streams the files through kiln, keeping only the first
// result of each line.
func (s *Service) assembleFiltered(ctx context.Context, b store.Batch) (store.Outcome, error) {
	var o store.Outcome
	written := batchline.BitmapFor(b.Total)
	write := func(file *store.File, ok bool, count *int64) error {
		size, err := writeObject(ctx, s.bucket, file.ObjectKey, func(dst io.Writer) error {
			bw := bufio.NewWriterSize(dst, 256<<10)
			err := s.eachResult(ctx, b.ID, func(r batchline.Record, line []byte) error {
				if r.OK != ok || written.Has(r.Line) {
					return nil
				}
				written.Set(r.Line)
				*count++
				return writeLine(bw, line)
			})
			if err != nil {
				return err
			}
			return bw.Flush()
		})
		file.Bytes = size
		return err
	}
	outFile, errFile := s.newFile(b, "output"), s.newFile(b, "error")
	// Output lines win over error lines of the same request, whichever
	// came first: the request did succeed.
	if err := write(&outFile, true, &o.Completed); err != nil {
		return o, err
	}
	if err := write(&errFile, false, &o.Failed); err != nil {
		_ = s.bucket.Delete(context.WithoutCancel(ctx), outFile.ObjectKey)
		return o, err
	}
	tail := missingKey(b.ID)
	n, _, err := s.writeMissing(ctx, b, tail, written)
	if err != nil {
		return o, err
	}
	defer func() { _ = s.bucket.Delete(context.WithoutCancel(ctx), tail) }()
	if n > 0 {
		info, err := s.bucket.Compose(ctx, errFile.ObjectKey, []string{errFile.ObjectKey, tail})
		if err != nil {
			return o, err
		}
		errFile.Bytes = info.Size
		o.Failed += n
	}
	if o.Completed > 0 {
		o.Output = &outFile
	} else {
		_ = s.bucket.Delete(ctx, outFile.ObjectKey)
	}
	if o.Failed > 0 {
		o.Errors = &errFile
	} else {
		_ = s.bucket.Delete(ctx, errFile.ObjectKey)
	}
	return o, nil
}

func missingReason(b store.Batch) (code, message string) {
	switch b.StopReason {
	case store.StopCancelled:
		return batchline.CodeBatchCancelled, "This request was not executed because the batch was cancelled."
	case store.StopExpired:
		return batchline.CodeBatchExpired, "This request could not be executed before the completion window expired."
	default:
		return batchline.CodeBatchFailed, "This request was not executed."
	}
}

// newFile is one of a batch's files: kind is output or error. It expires
// as the batch's output_expires_after says, else as batch_output's
// retention.
func (s *Service) newFile(b store.Batch, kind string) store.File {
	f := NewFile(PurposeBatchOutput, b.ID+"_"+kind+".jsonl")
	f.ProjectID = b.ProjectID
	s.setExpiry(&f, b.OutputExpiresAfter)
	return f
}

func writeLine(w *bufio.Writer, line []byte) error {
	if _, err := w.Write(line); err != nil {
		return err
	}
	return w.WriteByte('\n')
}

// readIndex streams a chunk's index records.
func (s *Service) readIndex(ctx context.Context, c store.Chunk, fn func(batchline.Record) error) error {
	rc, err := s.bucket.Get(ctx, c.ObjectKey)
	if err != nil {
		return fmt.Errorf("chunk %d/%d: %w", c.Shard, c.Seq, err)
	}
	defer rc.Close()
	if err := batchline.ReadRecords(rc, fn); err != nil {
		return fmt.Errorf("chunk %d/%d: %w", c.Shard, c.Seq, err)
	}
	return nil
}

// eachChunk calls fn with every chunk of a batch, in order of shard and
// sequence, reading them from the store a page of chunkPage at a time.
func (s *Service) eachChunk(ctx context.Context, batchID string, fn func(store.Chunk) error) error {
	shard, seq := int64(-1), int64(-1)
	for {
		page, err := s.store.ChunkListAfter(ctx, batchID, shard, seq, s.chunkPage)
		if err != nil {
			return err
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < s.chunkPage {
			return nil
		}
		shard, seq = page[len(page)-1].Shard, page[len(page)-1].Seq
	}
}

// eachResult streams every result of every chunk of a batch with its
// finished line: the index says, line by line, whether the next line comes
// from the chunk's output or its error object.
func (s *Service) eachResult(ctx context.Context, batchID string, fn func(batchline.Record, []byte) error) error {
	open := func(key string, lines int64) (*batchline.Scanner, func(), error) {
		if lines == 0 {
			return nil, func() {}, nil
		}
		rc, err := s.bucket.Get(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		return batchline.NewScanner(rc, 1<<30), func() { rc.Close() }, nil
	}
	return s.eachChunk(ctx, batchID, func(c store.Chunk) error {
		outs, closeOut, err := open(ChunkOutputKey(c.ObjectKey), c.OutputLines)
		if err != nil {
			return err
		}
		errs, closeErr, err := open(ChunkErrorKey(c.ObjectKey), c.ErrorLines)
		if err != nil {
			closeOut()
			return err
		}
		err = s.readIndex(ctx, c, func(r batchline.Record) error {
			src := errs
			if r.OK {
				src = outs
			}
			if src == nil || !src.Next() {
				return fmt.Errorf("chunk %d/%d: index and lines disagree", c.Shard, c.Seq)
			}
			return fn(r, src.Bytes())
		})
		closeOut()
		closeErr()
		return err
	})
}
