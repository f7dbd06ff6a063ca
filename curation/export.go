package curation

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Export formats.
const (
	// FormatSFT is OpenAI's chat fine-tuning JSONL: the prompt and the gold
	// or corrected answer.
	FormatSFT = "openai_sft"
	// FormatDPO is OpenAI's preference JSONL: input, preferred_output and
	// non_preferred_output, from pairwise verdicts first, then ratings.
	FormatDPO = "openai_dpo"
	// FormatTRL is TRL's prompt / chosen / rejected, from pairwise verdicts
	// first, then ratings.
	FormatTRL = "trl"
	// FormatICL is in-context-learning examples: gold only, N per type.
	FormatICL = "icl"
	// FormatLabelStudio is Label Studio's task JSON, outputs as
	// predictions and gold as a ground-truth annotation.
	FormatLabelStudio = "label_studio"
)

// Formats lists the export formats.
var Formats = []string{FormatSFT, FormatDPO, FormatTRL, FormatICL, FormatLabelStudio}

// ExportOptions select what an export holds.
type ExportOptions struct {
	Format string `json:"format"`
	// Type limits the export to one conquest type.
	Type string `json:"type,omitempty"`
	// Source, for openai_sft: gold, corrected or both (default both: a
	// task's correction of its gold output, else its gold output, else any
	// correction).
	Source string `json:"source,omitempty"`
	// PerType, for icl: examples per type (default 5).
	PerType int `json:"per_type,omitempty"`
	// Dedupe keeps one task of each cluster of near-duplicate inputs
	// (neardup.go).
	Dedupe bool `json:"dedupe,omitempty"`
	// FileFormat is jsonl (the default) or parquet (parquet.go).
	FileFormat string `json:"file_format,omitempty"`
}

// ErrEmptyExport is an export whose selection holds nothing.
var ErrEmptyExport = errors.New("the selection holds nothing to export")

// ExportArgs is the job of one export.
type ExportArgs struct {
	ExportID string `json:"export_id"`
}

// Kind is stable; never rename it.
func (ExportArgs) Kind() string { return "curation_export" }

// Exporter runs exports.
type Exporter struct {
	Store  *store.Store
	Bucket objectstore.Bucket
	Log    *slog.Logger
}

// ExportWorker runs export jobs.
type ExportWorker struct {
	river.WorkerDefaults[ExportArgs]
	Exporter *Exporter
}

// Work writes the export's file and records it; a failure is recorded on
// the export.
func (w *ExportWorker) Work(ctx context.Context, job *river.Job[ExportArgs]) error {
	e := w.Exporter
	ex, err := e.Store.ExportGet(ctx, job.Args.ExportID)
	if err != nil {
		return err
	}
	if ex.Status == store.ExportCompleted || ex.Status == store.ExportFailed {
		return nil
	}
	var o ExportOptions
	if err := json.Unmarshal(ex.Options, &o); err != nil {
		return e.Store.ExportFinish(ctx, ex.ID, 0, nil, "options: "+err.Error())
	}
	f, rows, err := e.Run(ctx, ex.ID, ex.ProjectID, o)
	if err != nil {
		e.Log.WarnContext(ctx, "export failed", "export", ex.ID, "err", err)
		return e.Store.ExportFinish(ctx, ex.ID, rows, nil, err.Error())
	}
	return e.Store.ExportFinish(ctx, ex.ID, rows, f, "")
}

// Run writes an export of a project's tasks to the object store, reporting
// progress, and returns its file (not yet recorded; the project's too) and
// its row count.
func (e *Exporter) Run(ctx context.Context, exportID, project string, o ExportOptions) (*store.File, int64, error) {
	filter := store.TaskFilter{Project: project, Type: o.Type}
	if o.Format == FormatICL || (o.Format == FormatSFT && o.Source == "gold") {
		gold := true
		filter.Gold = &gold
	}
	total, err := e.Store.CurationCount(ctx, filter)
	if err != nil {
		return nil, 0, err
	}
	if err := e.Store.ExportProgress(ctx, exportID, store.ExportRunning, 0, total, 0); err != nil {
		return nil, 0, err
	}
	name := fmt.Sprintf("kiln-%s-%s.jsonl", o.Format, time.Now().UTC().Format("20060102-150405"))
	if o.Format == FormatLabelStudio {
		name = fmt.Sprintf("kiln-label-studio-%s.json", time.Now().UTC().Format("20060102-150405"))
	}
	if o.FileFormat == FileParquet {
		name = strings.TrimSuffix(name, ".jsonl") + ".parquet"
	}
	nf := batch.NewFile(batch.PurposeFineTune, name)
	nf.Owner = store.FileOwnerCuration // curators' alone: no API key sees it
	nf.ProjectID = project
	f := &nf
	prefs, err := preferred(ctx, e.Store, project, o)
	if err != nil {
		return nil, 0, err
	}
	skip, err := duplicates(ctx, e.Store, project, o)
	if err != nil {
		return nil, 0, err
	}
	var rows, done int64
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		var out io.Writer = bw
		var pq *lineSplitter
		if o.FileFormat == FileParquet {
			sink, err := newParquetSink(bw, o.Format)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			pq = &lineSplitter{sink: sink}
			out = pq
		}
		w := newWriter(out, o)
		w.prefs = prefs
		err := e.Store.CurationEach(ctx, filter, func(t store.CurationTask, outs []store.CurationOutput) error {
			if skip[t.ID] {
				done++
				return nil
			}
			if pq != nil {
				pq.task = t.ID
			}
			n, err := w.task(t, outs)
			rows += n
			done++
			if done%1000 == 0 {
				_ = e.Store.ExportProgress(ctx, exportID, store.ExportRunning, done, total, rows)
			}
			return err
		})
		if err == nil {
			err = w.close()
		}
		if err == nil && pq != nil {
			err = pq.sink.close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	info, err := e.Bucket.Put(ctx, f.ObjectKey, pr, -1)
	_ = pr.CloseWithError(err)
	if err != nil {
		return nil, rows, err
	}
	if rows == 0 {
		_ = e.Bucket.Delete(context.WithoutCancel(ctx), f.ObjectKey)
		return nil, 0, ErrEmptyExport
	}
	f.Bytes = info.Size
	return f, rows, nil
}

// writer writes one format.
type writer struct {
	w     io.Writer
	o     ExportOptions
	perTy map[string]int
	first bool
	// prefs are the decided pairs of outputs by task, for the preference
	// formats.
	prefs map[string][]decided
	// picked, when set, hears of each example's output and its source
	// (gold, corrected, pairwise, ratings): a dataset's manifest counts
	// them.
	picked func(o store.CurationOutput, source string)
}

func (w *writer) pick(o store.CurationOutput, source string) {
	if w.picked != nil {
		if o.Corrected != nil && source == "gold" {
			source = "corrected"
		}
		w.picked(o, source)
	}
}

// decided is a pair of outputs that curators' verdicts decide: more said
// chosen was better than rejected.
type decided struct{ chosen, rejected string }

// preferred reads, for the preference formats, the pairs of outputs that
// the verdicts decide, by task: where an admin settled a pair, their
// verdict; else the majority of a and b (ties and both_bad decide
// nothing).
func preferred(ctx context.Context, st *store.Store, project string, o ExportOptions) (map[string][]decided, error) {
	if o.Format != FormatDPO && o.Format != FormatTRL {
		return nil, nil
	}
	verdicts, err := st.PreferenceVerdicts(ctx, project, o.Type)
	if err != nil {
		return nil, err
	}
	out := map[string][]decided{}
	for _, v := range verdicts {
		switch {
		case v.A > v.B:
			out[v.TaskID] = append(out[v.TaskID], decided{v.OutputA, v.OutputB})
		case v.B > v.A:
			out[v.TaskID] = append(out[v.TaskID], decided{v.OutputB, v.OutputA})
		}
	}
	return out, nil
}

func newWriter(w io.Writer, o ExportOptions) *writer {
	if o.PerType <= 0 {
		o.PerType = 5
	}
	wr := &writer{w: w, o: o, perTy: map[string]int{}, first: true}
	if o.Format == FormatLabelStudio {
		_, _ = io.WriteString(w, "[\n")
	}
	return wr
}

func (w *writer) close() error {
	if w.o.Format == FormatLabelStudio {
		_, err := io.WriteString(w.w, "\n]\n")
		return err
	}
	return nil
}

func (w *writer) line(v any) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	b = append(b, '\n')
	_, err = w.w.Write(b)
	return 1, err
}

type message struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
	Weight  *int   `json:"weight,omitempty"`
}

func messagesOf(t store.CurationTask) []message {
	var in struct {
		Messages []message `json:"messages"`
	}
	_ = json.Unmarshal(t.Input, &in)
	return in.Messages
}

// answer is an output's text: its correction if it has one.
func answer(o store.CurationOutput) string {
	if o.Corrected != nil {
		return *o.Corrected
	}
	return o.Content
}

func (w *writer) task(t store.CurationTask, outs []store.CurationOutput) (int64, error) {
	switch w.o.Format {
	case FormatSFT:
		var chosen *store.CurationOutput
		for i := range outs {
			o := &outs[i]
			isGold := t.GoldOutputID != nil && *t.GoldOutputID == o.ID
			switch w.o.Source {
			case "gold":
				if isGold {
					chosen = o
				}
			case "corrected":
				if o.Corrected != nil && (chosen == nil || isGold) {
					chosen = o
				}
			default:
				if isGold || (o.Corrected != nil && chosen == nil) {
					chosen = o
				}
			}
		}
		if chosen == nil {
			return 0, nil
		}
		one := 1
		w.pick(*chosen, "gold")
		msgs := append(messagesOf(t), message{Role: "assistant", Content: answer(*chosen), Weight: &one})
		return w.line(map[string]any{"messages": msgs})
	case FormatDPO, FormatTRL:
		if n, err := w.preferences(t, outs); n > 0 || err != nil {
			return n, err
		}
		best, worst, ok := pair(t, outs)
		if !ok {
			return 0, nil
		}
		w.pick(best, "ratings")
		return w.preference(t, best, worst)
	case FormatICL:
		if t.GoldOutputID == nil || w.perTy[t.ConquestType] >= w.o.PerType {
			return 0, nil
		}
		for _, o := range outs {
			if o.ID == *t.GoldOutputID {
				w.perTy[t.ConquestType]++
				w.pick(o, "gold")
				var parsed any = answer(o)
				var v any
				if json.Unmarshal([]byte(answer(o)), &v) == nil {
					parsed = v
				}
				return w.line(map[string]any{"type": t.ConquestType, "task_id": t.ID, "key": t.Key, "messages": messagesOf(t), "output": parsed})
			}
		}
		return 0, nil
	case FormatLabelStudio:
		return w.labelStudio(t, outs)
	}
	return 0, fmt.Errorf("unknown format %q", w.o.Format)
}

// preferences writes a line per pair of the task's outputs that verdicts
// decide; none when there is none.
func (w *writer) preferences(t store.CurationTask, outs []store.CurationOutput) (int64, error) {
	byID := make(map[string]store.CurationOutput, len(outs))
	for _, o := range outs {
		byID[o.ID] = o
	}
	var rows int64
	for _, p := range w.prefs[t.ID] {
		chosen, ok1 := byID[p.chosen]
		rejected, ok2 := byID[p.rejected]
		if !ok1 || !ok2 {
			continue
		}
		w.pick(chosen, "pairwise")
		n, err := w.preference(t, chosen, rejected)
		rows += n
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// preference writes one preference line: chosen over rejected.
func (w *writer) preference(t store.CurationTask, chosen, rejected store.CurationOutput) (int64, error) {
	msgs := messagesOf(t)
	if w.o.Format == FormatDPO {
		return w.line(map[string]any{
			"input":                map[string]any{"messages": msgs},
			"preferred_output":     []message{{Role: "assistant", Content: answer(chosen)}},
			"non_preferred_output": []message{{Role: "assistant", Content: answer(rejected)}},
		})
	}
	return w.line(map[string]any{
		"prompt":   msgs,
		"chosen":   []message{{Role: "assistant", Content: answer(chosen)}},
		"rejected": []message{{Role: "assistant", Content: answer(rejected)}},
	})
}

// pair picks the best and worst rated outputs of a task (the gold star
// counts as best); a task without two different ratings has no pair.
func pair(t store.CurationTask, outs []store.CurationOutput) (best, worst store.CurationOutput, ok bool) {
	var rated []store.CurationOutput
	for _, o := range outs {
		if o.Rating != nil {
			rated = append(rated, o)
		}
	}
	if len(rated) < 2 {
		return best, worst, false
	}
	score := func(o store.CurationOutput) int64 {
		s := *o.Rating * 10
		if t.GoldOutputID != nil && *t.GoldOutputID == o.ID {
			s += 5
		}
		return s
	}
	sort.SliceStable(rated, func(i, j int) bool { return score(rated[i]) > score(rated[j]) })
	best, worst = rated[0], rated[len(rated)-1]
	return best, worst, *best.Rating > *worst.Rating
}

// labelStudio writes one Label Studio task: the prompt as data, each
// output as a prediction, the gold output as a ground-truth annotation.
func (w *writer) labelStudio(t store.CurationTask, outs []store.CurationOutput) (int64, error) {
	prompt := ""
	for _, m := range messagesOf(t) {
		if s, ok := m.Content.(string); ok {
			prompt += m.Role + ": " + s + "\n\n"
		}
	}
	result := func(o store.CurationOutput) []map[string]any {
		return []map[string]any{{"from_name": "answer", "to_name": "prompt", "type": "textarea",
			"value": map[string]any{"text": []string{answer(o)}}}}
	}
	task := map[string]any{
		"data": map[string]any{"prompt": prompt, "kiln_task_id": t.ID, "conquest_type": t.ConquestType, "key": t.Key},
	}
	var preds, anns []map[string]any
	for _, o := range outs {
		p := map[string]any{"model_version": o.Model, "result": result(o)}
		if o.Rating != nil {
			p["score"] = float64(*o.Rating) / 5
		}
		preds = append(preds, p)
		if t.GoldOutputID != nil && *t.GoldOutputID == o.ID {
			anns = append(anns, map[string]any{"ground_truth": true, "result": result(o), "completed_by": t.Curator})
		}
	}
	task["predictions"] = preds
	if anns != nil {
		task["annotations"] = anns
	}
	b, err := json.Marshal(task)
	if err != nil {
		return 0, err
	}
	if !w.first {
		if _, err := io.WriteString(w.w, ",\n"); err != nil {
			return 0, err
		}
	}
	w.first = false
	_, err = w.w.Write(b)
	return 1, err
}
