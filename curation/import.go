package curation

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// ImportName is the import function's name.
const ImportName = "curation_import"

// Metadata keys that ask for the import of a batch that is no conquest.
const (
	// MetaImport "true" imports the batch's outputs.
	MetaImport = "curation_import"
	// MetaType names the tasks' type for such a batch. Default: "custom".
	MetaType = "curation_type"
)

// MaxOutputBytes bounds an output kept for curation; a larger one is kept
// as an invalid output without its content (reason too_large).
const MaxOutputBytes = 8 << 20

// maxInputLine bounds an input line read for its prompt.
const maxInputLine = 16 << 20

// ReasonTooLarge marks an output too large to keep.
const ReasonTooLarge = "too_large"

// searchBytes bounds the text kept per task for search.
const searchBytes = 16 << 10

// Importer turns the outputs of ended batches into tasks and outputs.
type Importer struct {
	Store   *store.Store
	Bucket  objectstore.Bucket
	Schemas *conquest.Registry
	Log     *slog.Logger

	chunkItems int // items per chunk handed to the store; 0: importBatch
}

// Function is the curation_import function: batches that end with results
// and carry a conquest type or the curation_import flag, and the batches of
// model judges, whose answers become pre-labels.
func (im *Importer) Function() functions.Function {
	return functions.Function{Name: ImportName, Handle: im.handle,
		Events: []string{store.EventBatchCompleted, store.EventBatchExpired, store.EventBatchCancelled, store.EventBatchFailed}}
}

func (im *Importer) handle(ctx context.Context, ev functions.Event) error {
	var data struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return functions.Permanent(fmt.Errorf("event data: %w", err))
	}
	b, err := im.Store.BatchGet(ctx, data.ID)
	if err != nil {
		return err
	}
	if b.Metadata[MetaJudge] != "" {
		return im.importJudge(ctx, b)
	}
	_, err = im.ImportBatch(ctx, data.ID)
	return err
}

// ImportBatch imports a batch's outputs, once, into tasks of the batch's
// project: a batch imported before adds nothing. Its cost is that of the
// batch's own files.
func (im *Importer) ImportBatch(ctx context.Context, batchID string) (store.ImportResult, error) {
	b, err := im.Store.BatchGet(ctx, batchID)
	if err != nil {
		return store.ImportResult{}, err
	}
	typ, version := b.Conquest.Type, b.Conquest.Version
	if typ == "" {
		if b.Metadata[MetaImport] != "true" {
			return store.ImportResult{}, nil
		}
		typ = b.Metadata[MetaType]
		if typ == "" {
			typ = "custom"
		}
	}
	if b.OutputFileID == nil {
		return store.ImportResult{}, nil
	}
	if done, err := im.Store.CurationImported(ctx, b.ID); err != nil || done {
		return store.ImportResult{Already: done}, err
	}
	var def *conquest.Definition
	if b.Conquest.Type != "" {
		def, _ = im.Schemas.Get(typ, int(version)) // unknown: outputs are kept, checked as JSON only
	}
	// Three streaming passes, so that memory holds the batch's custom_ids
	// and a few chunks, never its files: which requests have an output;
	// their tasks, with their prompts; then the outputs. Each pass parses
	// its lines on every CPU, in order, while one writer stores the chunks
	// of items made before, in the order they were made.
	answered := map[string]bool{}
	err = eachLineParallel(ctx, im, *b.OutputFileID, MaxOutputBytes, func(line []byte) string {
		return conquest.OutputCustomID(line)
	}, func(id string, tooLong bool, _ int) error {
		if !tooLong && id != "" {
			answered[id] = true
		}
		return nil
	})
	if err != nil {
		return store.ImportResult{}, err
	}
	w := im.newWriter(ctx)
	tasked := map[string]bool{} // custom_ids whose task the inputs made
	var chunk []store.ImportItem
	chunkBytes := 0
	add := func(it store.ImportItem) error {
		it.ProjectID = b.ProjectID // the tasks are the batch's project's
		chunk = append(chunk, it)
		chunkBytes += len(it.Input) + len(it.SearchText) + len(it.Output.Content)
		if len(chunk) >= cmp.Or(im.chunkItems, importBatch) || chunkBytes >= importBatchBytes {
			err := w.write(chunk)
			chunk, chunkBytes = make([]store.ImportItem, 0, len(chunk)), 0
			return err
		}
		return nil
	}
	type task struct {
		id   string
		item store.ImportItem
		ok   bool
	}
	err = eachLineParallel(ctx, im, b.InputFileID, maxInputLine, func(line []byte) task {
		id, in, ok := parseInput(line, answered)
		if !ok {
			return task{}
		}
		return task{id: id, item: im.item(typ, version, id, &in, store.CurationOutput{}), ok: true}
	}, func(t task, tooLong bool, _ int) error {
		if tooLong || !t.ok || tasked[t.id] {
			return nil // of two requests of one custom_id the first counts
		}
		tasked[t.id] = true
		return add(t.item)
	})
	if err == nil && len(chunk) > 0 {
		err = w.write(chunk)
		chunk, chunkBytes = make([]store.ImportItem, 0, len(chunk)), 0
	}
	if err != nil {
		return w.close(err)
	}
	w.nextPhase() // the outputs are written once their tasks are
	type output struct {
		customID string
		item     store.ImportItem
	}
	err = eachLineParallel(ctx, im, *b.OutputFileID, MaxOutputBytes, func(line []byte) output {
		o, customID := parseOutput(line, b.ID, b.Model, def)
		if customID == "" {
			return output{}
		}
		return output{customID: customID, item: im.item(typ, version, customID, nil, o)}
	}, func(o output, tooLong bool, n int) error {
		if tooLong {
			// Too large to keep, and too large to read its custom_id:
			// recorded under its line.
			return add(im.item(typ, version, fmt.Sprintf("%s-output-line-%d", b.ID, n), nil, store.CurationOutput{
				BatchID: b.ID, Model: b.Model, Valid: false, Reason: ReasonTooLarge,
				Message: fmt.Sprintf("the output is larger than %d bytes; it is not kept", MaxOutputBytes)}))
		}
		if o.customID == "" || !answered[o.customID] {
			return nil // of two outputs of one custom_id the first counts
		}
		delete(answered, o.customID)
		if tasked[o.customID] {
			o.item.Input = nil // its task exists
		}
		return add(o.item)
	})
	if err == nil && len(chunk) > 0 {
		err = w.write(chunk)
	}
	total, err := w.close(err)
	if err != nil {
		return total, err
	}
	// Recorded last: a run cut short runs again, and adds what is missing.
	if _, err := im.Store.CurationImport(ctx, b.ID, nil); err != nil {
		return total, err
	}
	im.Log.InfoContext(ctx, "batch imported for curation", "batch", b.ID, "type", typ, "tasks", total.Tasks, "outputs", total.Outputs)
	return total, nil
}

// importWriter stores an import's chunks on goroutines of its own while
// the next chunks are parsed: one on SQLite, whose one writer takes them
// in turn anyway; on Postgres several, each chunk a transaction of its
// own, as a chunk's inserts keep one core busy (the tasks' trigram index
// most of it). Chunks in flight at once must not share a task: ImportBatch
// hands each custom_id once per pass, and the outputs in a phase after
// the tasks'. A chunk is stored only once every chunk of the phases
// before it is, while the chunks of its own phase are parsed and queued.
type importWriter struct {
	// write1 stores a chunk.
	write1 func(context.Context, []store.ImportItem) (store.ImportResult, error)
	// waitHook, when set by a test, runs before a chunk waits for the
	// phase before its own.
	waitHook func()
	chunks   chan phasedChunk
	// phase and before count the chunks not yet stored of the phase
	// written to and of the one before it (nil in the first).
	phase, before *sync.WaitGroup
	wg            sync.WaitGroup
	mu            sync.Mutex
	total         store.ImportResult
	err           error         // the first chunk's error
	failed        chan struct{} // closed with err
	cancel        context.CancelFunc
}

type phasedChunk struct {
	items []store.ImportItem
	after *sync.WaitGroup // the phase before the chunk's; nil for the first
	done  *sync.WaitGroup // the chunk's phase
}

// importWriters is how many chunks of an import Postgres writes at once:
// half the CPUs, from 2 to 4. On 2 CPUs, 4 writers were no faster than 2.
func importWriters() int {
	return min(max(runtime.GOMAXPROCS(0)/2, 2), 4)
}

func (im *Importer) newWriter(ctx context.Context) *importWriter {
	n := 1
	if im.Store.Dialect() == "postgres" {
		n = importWriters()
	}
	w := &importWriter{write1: func(ctx context.Context, items []store.ImportItem) (store.ImportResult, error) {
		return im.Store.CurationImport(ctx, "", items)
	}}
	w.start(ctx, n)
	return w
}

// start runs n goroutines that store the chunks written.
func (w *importWriter) start(ctx context.Context, n int) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.chunks, w.phase, w.failed = make(chan phasedChunk, 1), &sync.WaitGroup{}, make(chan struct{})
	w.wg.Add(n)
	for range n {
		go func() {
			defer w.wg.Done()
			for c := range w.chunks {
				// Every chunk of the phases before was taken before this
				// one (the queue is in order), so waiting cannot block the
				// writer that holds one.
				if c.after != nil {
					if w.waitHook != nil {
						w.waitHook()
					}
					c.after.Wait()
				}
				if ctx.Err() == nil { // else drain: the import failed
					w.store(ctx, c.items)
				}
				c.done.Done()
			}
		}()
	}
}

// store writes a chunk and adds what it added, or records its error and
// stops the others.
func (w *importWriter) store(ctx context.Context, items []store.ImportItem) {
	res, err := w.write1(ctx, items)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.total.Tasks += res.Tasks
	w.total.Outputs += res.Outputs
	if err != nil && w.err == nil {
		w.err = err
		close(w.failed)
		w.cancel() // the chunks in flight stop; those queued are drained
	}
}

// write hands a chunk to the writer; it returns the writer's error, if a
// chunk before failed. The chunk is the writer's from then on.
func (w *importWriter) write(chunk []store.ImportItem) error {
	c := phasedChunk{items: chunk, after: w.before, done: w.phase}
	c.done.Add(1)
	select {
	case w.chunks <- c:
		return nil
	case <-w.failed:
		c.done.Done()
		return w.err
	}
}

// nextPhase makes the chunks handed from now on wait for those handed
// before.
func (w *importWriter) nextPhase() {
	w.before, w.phase = w.phase, &sync.WaitGroup{}
}

// close waits for the chunks handed to be stored, and returns what they
// added and the first error: err, else the writer's.
func (w *importWriter) close(err error) (store.ImportResult, error) {
	close(w.chunks)
	w.wg.Wait()
	w.cancel()
	if err == nil {
		err = w.err
	}
	return w.total, err
}

// An import hands the store chunks of importBatch items, or fewer when
// their inputs and outputs reach importBatchBytes: on Postgres a chunk is
// one transaction (copied into a staging table, then inserted in two
// statements), so few large chunks save round trips; SQLite's store splits
// it into shorter transactions of its own.
const (
	importBatch      = 10000
	importBatchBytes = 32 << 20
)

type input struct {
	Messages json.RawMessage
	Search   string
}

func (im *Importer) item(typ string, version int64, key string, in *input, o store.CurationOutput) store.ImportItem {
	it := store.ImportItem{ConquestType: typ, ConquestVersion: version, Key: key, Output: o, Input: json.RawMessage(`{"messages":[]}`)}
	if in != nil {
		// {"messages": ...}, compact, as json.Marshal writes it.
		var b bytes.Buffer
		b.Grow(len(`{"messages":}`) + len(in.Messages))
		b.WriteString(`{"messages":`)
		_ = json.Compact(&b, in.Messages) // valid: it was read as JSON
		b.WriteByte('}')
		it.Input, it.SearchText = b.Bytes(), in.Search
	}
	return it
}

// parseInput reads one input line: its custom_id, and its prompt's
// messages with their text for search; a line whose custom_id is not in
// answered is not read further.
func parseInput(line []byte, answered map[string]bool) (string, input, bool) {
	var l struct {
		CustomID string `json:"custom_id"`
		Body     struct {
			Messages json.RawMessage `json:"messages"`
			Prompt   json.RawMessage `json:"prompt"`
		} `json:"body"`
	}
	if json.Unmarshal(line, &l) != nil || l.CustomID == "" || !answered[l.CustomID] {
		return "", input{}, false
	}
	msgs := l.Body.Messages
	if len(msgs) == 0 && len(l.Body.Prompt) > 0 {
		msgs, _ = json.Marshal([]map[string]json.RawMessage{{"role": json.RawMessage(`"user"`), "content": l.Body.Prompt}})
	}
	if len(msgs) == 0 {
		msgs = json.RawMessage("[]")
	}
	return l.CustomID, input{Messages: msgs, Search: SearchText(msgs)}, true
}

// SearchText is the lower-cased text of messages, cut to searchBytes.
func SearchText(messages json.RawMessage) string {
	var ms []struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(messages, &ms)
	var b strings.Builder
	for _, m := range ms {
		var s string
		if json.Unmarshal(m.Content, &s) != nil {
			s = string(m.Content)
		}
		b.WriteString(strings.ToLower(s))
		b.WriteByte('\n')
		if b.Len() > searchBytes {
			break
		}
	}
	s := b.String()
	if len(s) > searchBytes {
		s = strings.ToValidUTF8(s[:searchBytes], "")
	}
	return s
}

// KeyOf is the task key of an input without a custom_id: its hash.
func KeyOf(messages json.RawMessage) string {
	sum := sha256.Sum256(messages)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parseOutput reads one output line: the answer, the model that gave it,
// its tokens and its validity; a line without a custom_id gives "".
func parseOutput(line []byte, batchID, batchModel string, def *conquest.Definition) (store.CurationOutput, string) {
	var l conquest.OutputLine
	if def != nil {
		l = def.CheckOutputLine(line)
	} else {
		l = conquest.ReadOutputLine(line)
	}
	if l.CustomID == "" {
		return store.CurationOutput{}, ""
	}
	o := store.CurationOutput{BatchID: batchID, Model: cmp.Or(l.Model, batchModel), Valid: true, Content: l.Content,
		InputTokens: l.InputTokens, OutputTokens: l.OutputTokens, LatencyMS: l.LatencyMS}
	switch {
	case def != nil && l.Err != nil:
		o.Valid, o.Reason, o.Message = false, l.Err.Reason, l.Err.Message
	case def == nil && l.StatusCode != 200:
		o.Valid, o.Reason, o.Message = false, conquest.ReasonRequestFail, "the request got no successful answer"
	}
	return o, l.CustomID
}

// lineBatch is a run of a file's lines, copied, for a parse worker: one
// buffer holds them all, so that a line costs no allocation of its own.
type lineBatch struct {
	seq     int
	data    []byte // the lines, one after the other
	ends    []int  // where each line ends in data; a line too long is empty
	tooLong []bool
	nums    []int
}

// line is the batch's i-th line.
func (b *lineBatch) line(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.data[start:b.ends[i]:b.ends[i]]
}

// Bounds of a lineBatch: the lines it holds, and their bytes (a line
// longer than that makes a batch of its own).
const (
	batchLines = 256
	batchBytes = 1 << 20
)

// eachLineParallel streams a file's lines (blank ones skipped) through
// parse, on as many goroutines as there are CPUs, and hands emit each
// line's result, in the file's order, with whether the line was longer
// than maxLine (then parse did not see it, and the result is the zero
// value) and its number. parse must be safe to run concurrently; emit
// runs on the caller's goroutine, and an error from it stops the stream.
func eachLineParallel[T any](ctx context.Context, im *Importer, fileID string, maxLine int, parse func(line []byte) T,
	emit func(res T, tooLong bool, n int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	batches := make(chan lineBatch, workers)
	type parsed struct {
		b   lineBatch
		res []T
	}
	results := make(chan parsed, workers)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		var cur lineBatch
		send := func() bool {
			if len(cur.nums) == 0 {
				return true
			}
			select {
			case batches <- cur:
			case <-ctx.Done():
				return false
			}
			cur = lineBatch{seq: cur.seq + 1, data: make([]byte, 0, min(2*len(cur.data), batchBytes))}
			return true
		}
		readErr <- im.eachLine(ctx, fileID, maxLine, func(line []byte, tooLong bool, n int) error {
			cur.data = append(cur.data, line...) // the scanner reuses its buffer
			cur.ends, cur.tooLong, cur.nums = append(cur.ends, len(cur.data)), append(cur.tooLong, tooLong), append(cur.nums, n)
			if len(cur.nums) >= batchLines || len(cur.data) >= batchBytes {
				if !send() {
					return ctx.Err()
				}
			}
			return nil
		})
		send()
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				res := make([]T, len(b.nums))
				for i := range b.nums {
					if !b.tooLong[i] {
						res[i] = parse(b.line(i))
					}
				}
				select {
				case results <- parsed{b, res}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	// Results in order: a batch that comes early waits for those before it.
	waiting := map[int]parsed{}
	next := 0
	var emitErr error
	for p := range results {
		if emitErr != nil {
			continue // drain
		}
		waiting[p.b.seq] = p
		for {
			q, ok := waiting[next]
			if !ok {
				break
			}
			delete(waiting, next)
			next++
			for i, n := range q.b.nums {
				if emitErr = emit(q.res[i], q.b.tooLong[i], n); emitErr != nil {
					cancel()
					break
				}
			}
			if emitErr != nil {
				break
			}
		}
	}
	if err := <-readErr; emitErr == nil && err != nil {
		return err
	}
	if emitErr != nil {
		return emitErr
	}
	return ctx.Err() // a batch dropped when ctx ended
}

// eachLine streams a file's lines (blank ones skipped) to fn, with whether
// the line was longer than maxLine (then it is not given) and its number.
func (im *Importer) eachLine(ctx context.Context, fileID string, maxLine int, fn func(line []byte, tooLong bool, n int) error) error {
	f, err := im.Store.FileGet(ctx, fileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rc, err := im.Bucket.Get(ctx, f.ObjectKey)
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := batchline.NewScanner(rc, maxLine)
	for sc.Next() {
		if sc.TooLong() {
			if err := fn(nil, true, sc.Line()); err != nil {
				return err
			}
			continue
		}
		if batchline.Blank(sc.Bytes()) {
			continue
		}
		if err := fn(sc.Bytes(), false, sc.Line()); err != nil {
			return err
		}
	}
	return sc.Err()
}
