package curation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// Model judges. A judge asks a local model, through a kiln batch run by
// kiln's own queue and agents, for a pairwise verdict on two outputs of a
// task (kind preference) or a rating of one output from 1 to 5 (kind
// rating), in a strict JSON schema. When the batch ends its answers become
// pre-labels: shown beside the outputs (in blind review only once the
// curator has decided), and counted in agreement as one more coder, so
// that how far the judge agrees with the curators is read like any two
// curators' agreement. Pre-labels are no curator's verdicts: the
// leaderboard and the exports leave them out.
//
// Each pair's sides are shuffled in the judge's prompt (and shuffled back
// when its answer is read), so that a model's bias for the first answer
// does not favour either output; the prompt asks for the reason before the
// verdict.

// MetaJudge is the metadata key of a judge's batch: the judge's ID.
const MetaJudge = "curation_judge"

// Judge limits: how many requests one judge may ask (JudgeLimitDefault
// unless the request says), and how much of a task's prompt and of each
// answer goes into the judge's prompt.
const (
	JudgeLimitDefault = 500
	JudgeLimitMax     = 10_000
	judgeTextMax      = 12 << 10
)

// judgeSchemas are the judges' output schemas by kind, strict as OpenAI's
// structured outputs want them: every property required, no other.
var judgeSchemas = map[string]json.RawMessage{
	store.JudgePreference: json.RawMessage(`{"type":"object","properties":{"reason":{"type":"string"},` +
		`"winner":{"type":"string","enum":["a","b","tie","both_bad"]}},"required":["reason","winner"],"additionalProperties":false}`),
	store.JudgeRating: json.RawMessage(`{"type":"object","properties":{"reason":{"type":"string"},` +
		`"rating":{"type":"integer","enum":[1,2,3,4,5]}},"required":["reason","rating"],"additionalProperties":false}`),
}

func registerJudges(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "createCurationJudge", Method: http.MethodPost, Path: "/v1/curation/judges",
		Summary: "Run a model judge over a type's outputs", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "run a judge"),
		Description: "Builds a kiln batch that asks `model` to compare two outputs of each task of `type` (kind preference: " +
			"winner a, b, tie or both_bad) or to rate each output from 1 to 5 (kind rating), with a reason, in a strict JSON " +
			"schema; kiln runs it like any batch and, when it ends, keeps the answers as pre-labels. Units this model already " +
			"judged are skipped. 400 model_not_found for a model kiln does not know, 400 nothing_to_judge when no unit is left.",
	}), d.createJudge)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationJudges", Method: http.MethodGet, Path: "/v1/curation/judges",
		Summary: "List judge runs", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "Newest first, with each one's batch progress.",
	}), d.listJudges)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "retrieveCurationJudge", Method: http.MethodGet, Path: "/v1/curation/judges/{judge_id}",
		Summary: "A judge run", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.getJudge)
}

// JudgeView is a judge run as the API shows it.
type JudgeView struct {
	ID      string        `json:"id"`
	Object  string        `json:"object" enum:"curation.judge"`
	Type    string        `json:"type"`
	Model   string        `json:"model"`
	Kind    judgementKind `json:"kind"`
	BatchID string        `json:"batch_id"`
	Status  string        `json:"status" enum:"running,imported,failed" doc:"running until its batch ends; imported: its answers are pre-labels; failed: error says why."`
	// Requests, and the batch's progress while it runs.
	Requests    int64  `json:"requests"`
	BatchStatus string `json:"batch_status"`
	Completed   int64  `json:"completed" doc:"Requests the batch has answered so far."`
	Labels      int64  `json:"labels" doc:"Answers kept as pre-labels."`
	Unreadable  int64  `json:"unreadable" doc:"Requests with no answer in the schema (failed, or the model's JSON did not fit)."`
	Error       string `json:"error"`
	CreatedAt   int64  `json:"created_at"`
	EndedAt     *int64 `json:"ended_at"`
}

func (d Deps) judgeView(ctx context.Context, j store.Judge) (JudgeView, error) {
	v := JudgeView{ID: j.ID, Object: "curation.judge", Type: j.Type, Model: j.Model, Kind: judgementKind(j.Kind), BatchID: j.BatchID,
		Status: j.Status, Requests: j.Requests, Labels: j.Labels, Unreadable: j.Unreadable, Error: j.Error, CreatedAt: j.CreatedAt, EndedAt: j.EndedAt}
	b, err := d.Store.BatchGet(ctx, j.BatchID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return JudgeView{}, err
	default:
		v.BatchStatus, v.Completed = string(b.Status), b.Completed+b.Failed
	}
	return v, nil
}

// createCurationJudgeRequest is named after its operation, as Huma names
// an anonymous body in the OpenAPI document.
type createCurationJudgeRequest struct {
	Type             string        `json:"type" minLength:"1" doc:"The conquest type (or imported type) whose outputs to judge."`
	Model            string        `json:"model" minLength:"1" doc:"The judge: a model kiln knows (GET /v1/models)."`
	Kind             judgementKind `json:"kind,omitempty" default:"preference"`
	Limit            int           `json:"limit,omitempty" minimum:"1" maximum:"10000" default:"500" doc:"The most requests to make, in order of task."`
	CompletionWindow string        `json:"completion_window,omitempty" doc:"The batch's window. Default: the API's (24h)."`
}

type createJudgeInput struct {
	Body createCurationJudgeRequest
}

type judgeOutput struct {
	Body JudgeView
}

// judgeUnit is one request of a judge: a pair of outputs (b set) or one.
type judgeUnit struct {
	task store.CurationTask
	a, b *store.CurationOutput
}

func (d Deps) createJudge(ctx context.Context, in *createJudgeInput) (*judgeOutput, error) {
	kind := cmpKind(string(in.Body.Kind))
	limit := in.Body.Limit
	if limit == 0 {
		limit = JudgeLimitDefault
	}
	if d.Batches == nil {
		return nil, apierror.InvalidCode("", "judges_unavailable", "This kiln runs no batch service: judges need one.")
	}
	known, err := d.Batches.ModelKnown(ctx, in.Body.Model)
	if err != nil {
		return nil, err
	}
	if !known {
		return nil, apierror.InvalidCode("model", batch.CodeModelNotFound, fmt.Sprintf(
			"The model %q does not exist: no agent has declared it and KILN_MODELS does not name it. GET /v1/models lists the models kiln knows.",
			in.Body.Model))
	}
	project := projectOf(ctx)
	units, err := d.judgeUnits(ctx, project, in.Body.Type, in.Body.Model, kind, limit)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, apierror.InvalidCode("type", "nothing_to_judge", fmt.Sprintf(
			"No %s of type %q is left for %s to judge: the type has no tasks with %s, or this model judged them all.",
			map[string]string{store.JudgePreference: "pair of outputs", store.JudgeRating: "output"}[kind], in.Body.Type, in.Body.Model,
			map[string]string{store.JudgePreference: "two outputs of different models", store.JudgeRating: "outputs"}[kind]))
	}
	def := &judgeType{title: in.Body.Type}
	if vs := d.Schemas.Versions(in.Body.Type); len(vs) > 0 {
		if cd, err := d.Schemas.Get(in.Body.Type, vs[len(vs)-1]); err == nil {
			def = &judgeType{title: cd.Title, description: cd.Description}
		}
	}
	id := ids.New("judge_")
	b, err := d.Batches.CreateGenerated(ctx, project, batch.CreateParams{Endpoint: "/v1/chat/completions",
		CompletionWindow: in.Body.CompletionWindow, Metadata: map[string]string{MetaJudge: id}, Model: in.Body.Model},
		fmt.Sprintf("judge-%s-%s.jsonl", in.Body.Type, kind), func(w io.Writer) error {
			for _, u := range units {
				if err := writeJudgeRequest(w, def, in.Body.Model, kind, u); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	j := store.Judge{ID: id, ProjectID: project, Type: in.Body.Type, Model: in.Body.Model, Kind: kind, BatchID: b.ID,
		Requests: int64(len(units)), CuratorID: curatorOf(ctx).ID, CreatedAt: time.Now().Unix()}
	if err := d.Store.JudgeCreate(ctx, j); err != nil {
		return nil, err
	}
	d.Log.InfoContext(ctx, "judge started", "judge", id, "batch", b.ID, "type", in.Body.Type, "model", in.Body.Model, "kind", kind,
		"requests", len(units))
	j.Status = store.JudgeRunning
	v, err := d.judgeView(ctx, j)
	if err != nil {
		return nil, err
	}
	return &judgeOutput{v}, nil
}

// cmpKind is a judge's kind, preference by default.
func cmpKind(k string) string {
	if k == "" {
		return store.JudgePreference
	}
	return k
}

// judgeUnits are the units of a project's type that model has not judged
// yet, in order of task, at most limit: for preferences, each two outputs
// of different models of a task; for ratings, each output.
func (d Deps) judgeUnits(ctx context.Context, project, typ, model, kind string, limit int) ([]judgeUnit, error) {
	var units []judgeUnit
	judged, err := d.judgedBy(ctx, project, model, kind)
	if err != nil {
		return nil, err
	}
	err = d.Store.CurationEach(ctx, store.TaskFilter{Project: project, Type: typ}, func(t store.CurationTask, outs []store.CurationOutput) error {
		for i := range outs {
			if kind == store.JudgeRating {
				if !judged[t.ID+" "+outs[i].ID+" "] {
					units = append(units, judgeUnit{task: t, a: &outs[i]})
				}
			}
			for j := i + 1; kind == store.JudgePreference && j < len(outs); j++ {
				if outs[i].Model == outs[j].Model {
					continue
				}
				lo, hi := &outs[i], &outs[j]
				if lo.ID > hi.ID {
					lo, hi = hi, lo
				}
				if !judged[t.ID+" "+lo.ID+" "+hi.ID] {
					units = append(units, judgeUnit{task: t, a: lo, b: hi})
				}
			}
			if len(units) >= limit {
				units = units[:limit]
				return errEnough
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return units, nil
}

// judgedBy are the units a model has judged in a project, of a kind, as
// "task output_a output_b".
func (d Deps) judgedBy(ctx context.Context, project, model, kind string) (map[string]bool, error) {
	keys, err := d.Store.PrelabelKeys(ctx, project, model, kind)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out, nil
}

// judgeType is what a judge's prompt says of the task's type.
type judgeType struct{ title, description string }

// judgeRequest is one line of a judge's batch.
type judgeRequest struct {
	CustomID string         `json:"custom_id"`
	Method   string         `json:"method"`
	URL      string         `json:"url"`
	Body     map[string]any `json:"body"`
}

// judgeID is a judge request's custom_id: the task and the outputs in the
// order the prompt shows them (A, then B).
func judgeID(task string, outputs ...string) string {
	return "judge:" + task + ":" + strings.Join(outputs, ":")
}

func writeJudgeRequest(w io.Writer, def *judgeType, model, kind string, u judgeUnit) error {
	var user strings.Builder
	fmt.Fprintf(&user, "## The task\n\n%s\n\n", cut(taskText(u.task.Input)))
	var custom string
	if kind == store.JudgePreference {
		a, b := u.a, u.b
		if rand.IntN(2) == 1 {
			a, b = b, a
		}
		custom = judgeID(u.task.ID, a.ID, b.ID)
		fmt.Fprintf(&user, "## Answer A\n\n%s\n\n## Answer B\n\n%s\n\n", cut(a.Content), cut(b.Content))
		user.WriteString(`Which answer does the task better? winner: "a", "b", "tie" (equally good) or "both_bad" (neither is acceptable).`)
	} else {
		custom = judgeID(u.task.ID, u.a.ID)
		fmt.Fprintf(&user, "## The answer\n\n%s\n\n", cut(u.a.Content))
		user.WriteString("Rate the answer: 1 unusable, 2 poor, 3 acceptable, 4 good, 5 excellent (fit to train on).")
	}
	system := "You are a careful, impartial judge of answers to one kind of task: " + def.title + "."
	if def.description != "" {
		system += " " + strings.TrimSpace(def.description)
	}
	system += " Judge correctness, completeness and faithfulness to the task's instructions and output format. " +
		"Neither the answers' order nor their length may sway you. Reply in JSON: first your reason in one or two sentences, then your verdict."
	line, err := json.Marshal(judgeRequest{CustomID: custom, Method: http.MethodPost, URL: "/v1/chat/completions", Body: map[string]any{
		"model": model,
		"messages": []map[string]string{
			{"role": "system", "content": system},
			{"role": "user", "content": user.String()},
		},
		"temperature": 0,
		"max_tokens":  512,
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{
			"name": "kiln_judge_" + kind, "strict": true, "schema": judgeSchemas[kind]}},
	}})
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	return err
}

// cut bounds a text put into a judge's prompt.
func cut(s string) string {
	if len(s) <= judgeTextMax {
		return s
	}
	return strings.ToValidUTF8(s[:judgeTextMax], "") + "\n[… cut]"
}

// taskText is a task's prompt as text: each message's role and content
// (text parts of a content array), in order.
func taskText(input json.RawMessage) string {
	var in struct {
		Messages []struct {
			Role    string `json:"role"`
			Content any    `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(input, &in) != nil || len(in.Messages) == 0 {
		return string(input)
	}
	var b strings.Builder
	for i, m := range in.Messages {
		if i > 0 {
			b.WriteString("\n\n")
		}
		fmt.Fprintf(&b, "[%s]\n", m.Role)
		switch c := m.Content.(type) {
		case string:
			b.WriteString(c)
		case []any:
			for _, p := range c {
				if part, ok := p.(map[string]any); ok {
					if s, ok := part["text"].(string); ok {
						b.WriteString(s)
					}
				}
			}
		}
	}
	return b.String()
}

// JudgeList is the judge runs, with what a new one may name.
type JudgeList struct {
	Data []JudgeView `json:"data"`
	// Types and Models are what a new judge may name.
	Types  []string `json:"types" doc:"The project's types with outputs of models."`
	Models []string `json:"models" doc:"The models kiln knows (GET /v1/models), any of which may judge."`
}

type judgeListOutput struct {
	Body JudgeList
}

func (d Deps) listJudges(ctx context.Context, _ *struct{}) (*judgeListOutput, error) {
	list, err := d.Store.JudgeList(ctx, projectOf(ctx), 100)
	if err != nil {
		return nil, err
	}
	out := JudgeList{Data: make([]JudgeView, len(list)), Types: []string{}, Models: []string{}}
	for i, j := range list {
		if out.Data[i], err = d.judgeView(ctx, j); err != nil {
			return nil, err
		}
	}
	tms, err := d.Store.CurationTypeModels(ctx, projectOf(ctx), "")
	if err != nil {
		return nil, err
	}
	for _, tm := range tms {
		if !slices.Contains(out.Types, tm.Type) {
			out.Types = append(out.Types, tm.Type)
		}
	}
	if d.Batches != nil {
		if out.Models, err = d.Batches.KnownModels(ctx); err != nil {
			return nil, err
		}
	}
	return &judgeListOutput{out}, nil
}

type judgeIDInput struct {
	JudgeID string `path:"judge_id"`
}

func (d Deps) getJudge(ctx context.Context, in *judgeIDInput) (*judgeOutput, error) {
	j, err := d.Store.JudgeGet(ctx, projectOf(ctx), in.JudgeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierror.NotFound("judge", in.JudgeID)
	}
	if err != nil {
		return nil, err
	}
	v, err := d.judgeView(ctx, j)
	if err != nil {
		return nil, err
	}
	return &judgeOutput{v}, nil
}

// ---- Reading a judge's answers ---------------------------------------

// errJudgeNotYet is a judge's batch that ended before its judge was
// recorded (the two are written one after the other): the import is
// retried.
var errJudgeNotYet = errors.New("curation: the judge of this batch is not recorded yet")

// importJudge turns the answers of a judge's ended batch into pre-labels,
// once: a judge that has ended is left as it is.
func (im *Importer) importJudge(ctx context.Context, b store.Batch) error {
	j, err := im.Store.JudgeByBatch(ctx, b.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errJudgeNotYet
	}
	if err != nil || j.Status != store.JudgeRunning {
		return err
	}
	now := time.Now().Unix()
	if b.OutputFileID == nil {
		why := fmt.Sprintf("Its batch %s ended %s with no answer.", b.ID, b.Status)
		if len(b.Errors) > 0 {
			why += " " + b.Errors[0].Message
		}
		_, err := im.Store.JudgeEnd(ctx, j.ID, store.JudgeFailed, why, nil, j.Requests, now)
		return err
	}
	var labels []store.Prelabel
	err = im.eachLine(ctx, *b.OutputFileID, MaxOutputBytes, func(line []byte, tooLong bool, _ int) error {
		if tooLong {
			return nil
		}
		if l, ok := readJudgeAnswer(j, line); ok {
			labels = append(labels, l)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ended, err := im.Store.JudgeEnd(ctx, j.ID, store.JudgeImported, "", labels, j.Requests-int64(len(labels)), now)
	if ended {
		im.Log.InfoContext(ctx, "judge imported", "judge", j.ID, "batch", b.ID, "labels", len(labels), "unreadable", j.Requests-int64(len(labels)))
	}
	return err
}

// readJudgeAnswer reads one output line of a judge's batch: its custom_id
// names the task and the outputs as the prompt showed them, its answer is
// the judge's JSON. ok is false for a line that is no answer in the schema.
func readJudgeAnswer(j store.Judge, line []byte) (store.Prelabel, bool) {
	var l struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int `json:"status_code"`
			Body       struct {
				Choices []struct {
					Message struct {
						Content string `json:"content"`
					} `json:"message"`
				} `json:"choices"`
			} `json:"body"`
		} `json:"response"`
	}
	if json.Unmarshal(line, &l) != nil || l.Response == nil || l.Response.StatusCode != http.StatusOK || len(l.Response.Body.Choices) == 0 {
		return store.Prelabel{}, false
	}
	parts := strings.Split(l.CustomID, ":")
	if parts[0] != "judge" || (j.Kind == store.JudgePreference && len(parts) != 4) || (j.Kind == store.JudgeRating && len(parts) != 3) {
		return store.Prelabel{}, false
	}
	var ans struct {
		Reason string `json:"reason"`
		Winner string `json:"winner"`
		Rating *int   `json:"rating"`
	}
	if json.Unmarshal([]byte(l.Response.Body.Choices[0].Message.Content), &ans) != nil {
		return store.Prelabel{}, false
	}
	p := store.Prelabel{ProjectID: j.ProjectID, Type: j.Type, TaskID: parts[1], Kind: j.Kind, OutputA: parts[2],
		Reason: clipReason(ans.Reason)}
	if j.Kind == store.JudgeRating {
		if ans.Rating == nil || *ans.Rating < 1 || *ans.Rating > 5 {
			return store.Prelabel{}, false
		}
		p.Value = fmt.Sprint(*ans.Rating)
		return p, true
	}
	if !slices.Contains(winners, ans.Winner) {
		return store.Prelabel{}, false
	}
	// Kept as curation_preferences keeps a pair: output_a < output_b.
	p.OutputB, p.Value = parts[3], ans.Winner
	if p.OutputA > p.OutputB {
		p.OutputA, p.OutputB, p.Value = p.OutputB, p.OutputA, flipWinner(p.Value)
	}
	return p, true
}

// flipWinner is a winner with the sides swapped.
func flipWinner(w string) string {
	switch w {
	case store.PreferA:
		return store.PreferB
	case store.PreferB:
		return store.PreferA
	}
	return w
}

// clipReason bounds a judge's reason as a curator's is bounded.
func clipReason(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = strings.ToValidUTF8(s[:2000], "")
	}
	return s
}

// ---- Pre-labels beside the outputs -------------------------------------

// Prelabel is a judge's answer as the workbench shows it.
type Prelabel struct {
	JudgeID string        `json:"judge_id"`
	Model   string        `json:"model"`
	Kind    judgementKind `json:"kind"`
	// OutputIDs: the pair (a, then b) of a preference; the output rated.
	OutputIDs []string `json:"output_ids" doc:"The pair (a, then b) of a preference, as winner reads; the output rated."`
	Value     string   `json:"value" doc:"A winner (a, b, tie, both_bad) or a rating (1 to 5)."`
	Reason    string   `json:"reason"`
}

// prelabelsOf are a task's pre-labels for a curator: in blind review only
// those of units the curator has decided (rated the output, judged the
// pair); hidden counts the rest.
func (d Deps) prelabelsOf(ctx context.Context, taskID, curatorID string, blind bool) (out []Prelabel, hidden int, err error) {
	list, err := d.Store.PrelabelsOfTask(ctx, projectOf(ctx), taskID)
	if err != nil || len(list) == 0 {
		return []Prelabel{}, 0, err
	}
	var rated map[string]bool
	judged := map[string]bool{}
	if blind {
		if rated, err = d.Store.RatedBy(ctx, taskID, curatorID); err != nil {
			return nil, 0, err
		}
		prefs, _, err := d.Store.PreferenceList(ctx, store.PreferenceFilter{Project: projectOf(ctx), TaskID: taskID, CuratorID: curatorID}, "", 1000)
		if err != nil {
			return nil, 0, err
		}
		for _, p := range prefs {
			judged[p.OutputA+" "+p.OutputB] = true
		}
	}
	out = []Prelabel{}
	for _, l := range list {
		if blind && ((l.Kind == store.JudgeRating && !rated[l.OutputA]) || (l.Kind == store.JudgePreference && !judged[l.OutputA+" "+l.OutputB])) {
			hidden++
			continue
		}
		p := Prelabel{JudgeID: l.JudgeID, Model: l.Model, Kind: judgementKind(l.Kind), OutputIDs: []string{l.OutputA}, Value: l.Value, Reason: l.Reason}
		if l.Kind == store.JudgePreference {
			p.OutputIDs = append(p.OutputIDs, l.OutputB)
		}
		out = append(out, p)
	}
	return out, hidden, nil
}

// pairPrelabels are the pre-labels of a pair, with winner read for the
// pair as outputA (then the other) shows it.
func (d Deps) pairPrelabels(ctx context.Context, taskID, outputA, outputB string) ([]Prelabel, error) {
	list, err := d.Store.PrelabelsOfTask(ctx, projectOf(ctx), taskID)
	if err != nil {
		return nil, err
	}
	out := []Prelabel{}
	lo, hi := min(outputA, outputB), max(outputA, outputB)
	for _, l := range list {
		if l.Kind != store.JudgePreference || l.OutputA != lo || l.OutputB != hi {
			continue
		}
		p := Prelabel{JudgeID: l.JudgeID, Model: l.Model, Kind: store.JudgePreference, OutputIDs: []string{l.OutputA, l.OutputB}, Value: l.Value, Reason: l.Reason}
		if outputA != lo {
			p.OutputIDs, p.Value = []string{l.OutputB, l.OutputA}, flipWinner(l.Value)
		}
		out = append(out, p)
	}
	return out, nil
}

// judgeNames are the names agreement shows for a project's judges, by
// ID; none when the project has no judge.
func (d Deps) judgeNames(ctx context.Context) (map[string]string, error) {
	list, err := d.Store.JudgeList(ctx, projectOf(ctx), 1000)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list))
	for _, j := range list {
		out[j.ID] = fmt.Sprintf("Judge %s (%s)", j.Model, j.Kind)
	}
	return out, nil
}
