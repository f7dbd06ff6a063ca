package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// ConquestCheckName is the conquest output check's name.
const ConquestCheckName = "conquest_check"

// maxOutputLine bounds an output line the check reads: the largest answer
// the agent keeps (64 MiB by default) and its envelope.
const maxOutputLine = 80 << 20

// Conquests checks the outputs of a batch built from a conquest type
// against the type's output schema when the batch ends, and records each
// output's validity and the batch's counts, so that curation can leave
// invalid outputs out.
type Conquests struct {
	Store   *store.Store
	Bucket  objectstore.Bucket
	Schemas *conquest.Registry
	Log     *slog.Logger
}

// Function is the conquest_check function: every batch that ends with
// results.
func (c *Conquests) Function() Function {
	return Function{Name: ConquestCheckName, Handle: c.check,
		Events: []string{store.EventBatchCompleted, store.EventBatchCancelled, store.EventBatchExpired}}
}

func (c *Conquests) check(ctx context.Context, ev Event) error {
	var data struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return Permanent(fmt.Errorf("event data: %w", err))
	}
	b, err := c.Store.BatchGet(ctx, data.ID)
	if err != nil {
		return err
	}
	if b.Conquest.Type == "" {
		return nil
	}
	def, err := c.Schemas.Get(b.Conquest.Type, int(b.Conquest.Version))
	if err != nil {
		// Recorded on the batch: no output can be checked.
		return c.Store.ConquestRecord(ctx, b.ID, nil, err.Error())
	}
	outs, err := c.CheckFile(ctx, def, b.OutputFileID)
	if err != nil {
		return err
	}
	if err := c.Store.ConquestRecord(ctx, b.ID, outs, ""); err != nil {
		return err
	}
	valid := 0
	for _, o := range outs {
		if o.Valid {
			valid++
		}
	}
	c.Log.InfoContext(ctx, "conquest outputs checked", "batch", b.ID, "type", def.ID, "version", def.Version,
		"valid", valid, "invalid", len(outs)-valid)
	return nil
}

// CheckFile checks every line of an output file (none when fileID is
// nil), streaming it.
func (c *Conquests) CheckFile(ctx context.Context, def *conquest.Definition, fileID *string) ([]store.ConquestOutput, error) {
	if fileID == nil {
		return nil, nil
	}
	f, err := c.Store.FileGet(ctx, *fileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // deleted meanwhile: nothing to check
	}
	if err != nil {
		return nil, err
	}
	rc, err := c.Bucket.Get(ctx, f.ObjectKey)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var outs []store.ConquestOutput
	sc := batchline.NewScanner(rc, maxOutputLine)
	for sc.Next() {
		if batchline.Blank(sc.Bytes()) {
			continue
		}
		o := store.ConquestOutput{Line: int64(sc.Line())}
		if sc.TooLong() {
			o.Reason, o.Message = conquest.ReasonNotJSON, "the output line is too long to check"
			outs = append(outs, o)
			continue
		}
		res := def.CheckOutputLine(sc.Bytes())
		o.CustomID, o.Valid = res.CustomID, res.Err == nil
		if res.Err != nil {
			o.Reason, o.Message = res.Err.Reason, res.Err.Message
		}
		if o.CustomID == "" {
			o.CustomID = fmt.Sprintf("line-%d", o.Line)
		}
		outs = append(outs, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read output file %s: %w", *fileID, err)
	}
	return outs, nil
}
