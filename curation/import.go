package curation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

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
	// and one chunk, never its files: which requests have an output; their
	// tasks, with their prompts; then the outputs.
	answered := map[string]bool{}
	err = im.eachLine(ctx, *b.OutputFileID, MaxOutputBytes, func(line []byte, tooLong bool, _ int) error {
		if !tooLong {
			if id := customIDOf(line); id != "" {
				answered[id] = true
			}
		}
		return nil
	})
	if err != nil {
		return store.ImportResult{}, err
	}
	tasked := map[string]bool{} // custom_ids whose task the inputs made
	var total store.ImportResult
	var chunk []store.ImportItem
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		res, err := im.Store.CurationImport(ctx, "", chunk)
		total.Tasks += res.Tasks
		total.Outputs += res.Outputs
		chunk = chunk[:0]
		return err
	}
	add := func(it store.ImportItem) error {
		it.ProjectID = b.ProjectID // the tasks are the batch's project's
		chunk = append(chunk, it)
		if len(chunk) >= importBatch {
			return flush()
		}
		return nil
	}
	err = im.eachLine(ctx, b.InputFileID, maxInputLine, func(line []byte, tooLong bool, _ int) error {
		if tooLong {
			return nil
		}
		id, in, ok := parseInput(line)
		if !ok || !answered[id] {
			return nil
		}
		tasked[id] = true
		return add(im.item(typ, version, id, &in, store.CurationOutput{}))
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return total, err
	}
	err = im.eachLine(ctx, *b.OutputFileID, MaxOutputBytes, func(line []byte, tooLong bool, n int) error {
		if tooLong {
			// Too large to keep, and too large to read its custom_id:
			// recorded under its line.
			return add(im.item(typ, version, fmt.Sprintf("%s-output-line-%d", b.ID, n), nil, store.CurationOutput{
				BatchID: b.ID, Model: b.Model, Valid: false, Reason: ReasonTooLarge,
				Message: fmt.Sprintf("the output is larger than %d bytes; it is not kept", MaxOutputBytes)}))
		}
		o, customID := parseOutput(line, b.ID, b.Model, def)
		if customID == "" {
			return nil
		}
		it := im.item(typ, version, customID, nil, o)
		if tasked[customID] {
			it.Input = nil // its task exists
		}
		return add(it)
	})
	if err == nil {
		err = flush()
	}
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

// importBatch is how many items one CurationImport call takes.
const importBatch = 2000

// customIDOf reads an output line's custom_id.
func customIDOf(line []byte) string {
	var l struct {
		CustomID string `json:"custom_id"`
	}
	_ = json.Unmarshal(line, &l)
	return l.CustomID
}

type input struct {
	Messages json.RawMessage
	Search   string
}

func (im *Importer) item(typ string, version int64, key string, in *input, o store.CurationOutput) store.ImportItem {
	it := store.ImportItem{ConquestType: typ, ConquestVersion: version, Key: key, Output: o, Input: json.RawMessage(`{"messages":[]}`)}
	if in != nil {
		it.Input, _ = json.Marshal(map[string]json.RawMessage{"messages": in.Messages})
		it.SearchText = in.Search
	}
	return it
}

// parseInput reads one input line: its custom_id, and its prompt's
// messages with their text for search.
func parseInput(line []byte) (string, input, bool) {
	var l struct {
		CustomID string `json:"custom_id"`
		Body     struct {
			Messages json.RawMessage `json:"messages"`
			Prompt   json.RawMessage `json:"prompt"`
		} `json:"body"`
	}
	if json.Unmarshal(line, &l) != nil || l.CustomID == "" {
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
// its tokens and its validity.
func parseOutput(line []byte, batchID, batchModel string, def *conquest.Definition) (store.CurationOutput, string) {
	var l struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int    `json:"status_code"`
			LatencyMS  *int64 `json:"latency_ms"`
			Body       struct {
				Model   string `json:"model"`
				Choices []struct {
					Message struct {
						Content *string `json:"content"`
					} `json:"message"`
				} `json:"choices"`
				Usage struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
				} `json:"usage"`
			} `json:"body"`
		} `json:"response"`
	}
	if json.Unmarshal(line, &l) != nil {
		return store.CurationOutput{}, ""
	}
	o := store.CurationOutput{BatchID: batchID, Model: batchModel, Valid: true}
	if l.Response != nil {
		if l.Response.Body.Model != "" {
			o.Model = l.Response.Body.Model
		}
		o.InputTokens, o.OutputTokens = l.Response.Body.Usage.PromptTokens, l.Response.Body.Usage.CompletionTokens
		o.LatencyMS = l.Response.LatencyMS
		if len(l.Response.Body.Choices) > 0 && l.Response.Body.Choices[0].Message.Content != nil {
			o.Content = *l.Response.Body.Choices[0].Message.Content
		}
	}
	if def != nil {
		if res := def.CheckOutputLine(line); res.Err != nil {
			o.Valid, o.Reason, o.Message = false, res.Err.Reason, res.Err.Message
		}
	} else if l.Response == nil || l.Response.StatusCode != 200 {
		o.Valid, o.Reason, o.Message = false, conquest.ReasonRequestFail, "the request got no successful answer"
	}
	return o, l.CustomID
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
