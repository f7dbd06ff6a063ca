package curation

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Several curators: an admin gives each a queue (the tasks of a type, a
// model or a text) and sets an overlap, the share of tasks that several
// curators review. A task goes to the curators whose queue holds it: one
// of them, chosen by a hash of its ID, and, for the overlap's share of
// tasks (chosen by the same hash), the next ones after them too, up to
// Reviewers. A curator without a queue sees the whole project, as before
// queues.

func registerAssignment(api huma.API, d Deps) {
	huma.Register(api, inProject(huma.Operation{
		OperationID: "retrieveCurationAssignment", Method: http.MethodGet, Path: "/v1/curation/assignment",
		Summary: "Queues per curator and the overlap", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
	}), d.getAssignment)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "setCurationAssignment", Method: http.MethodPut, Path: "/v1/curation/assignment",
		Summary: "Set queues per curator and the overlap", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "assign tasks"),
		Description: "Replaces the project's queues. A task goes to the curators whose queue holds it (type, model and text in the " +
			"prompt, each optional): one, chosen by a hash of the task's ID, and for a share `overlap` of tasks (by the same hash) " +
			"`reviewers` of them, so that their agreement can be measured. A curator without a queue sees every task.",
	}), d.setAssignment)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "listCurationQueue", Method: http.MethodGet, Path: "/v1/curation/queue",
		Summary: "The signed-in curator's tasks", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "The tasks assigned to the caller, oldest first, each with whether they judged it (a preference or a rating); " +
			"keyset pagination with after (the last task ID). A curator without a queue gets every task.",
	}), d.listQueue)

	huma.Register(api, inProject(huma.Operation{
		OperationID: "curationProgress", Method: http.MethodGet, Path: "/v1/curation/progress",
		Summary: "Tasks assigned and done per curator", Tags: tags, Middlewares: curatorsOnly(api, d.Store),
		Description: "A curator sees their own progress; an admin sees every curator's.",
	}), d.progress)
}

// taskHash is a task's place in the assignment: which of its curators
// comes first, and whether it is in the overlap (a number in [0, 1)).
func taskHash(taskID string) (first uint64, draw float64) {
	sum := sha256.Sum256([]byte(taskID))
	first = binary.BigEndian.Uint64(sum[0:8])
	draw = float64(binary.BigEndian.Uint64(sum[8:16])>>11) / (1 << 53)
	return first, draw
}

// Assignees are the curators a task goes to, among eligible (sorted: the
// curators whose queue holds it): one by the task's hash, and the next
// ones, up to reviewers, when the task falls in the overlap.
func Assignees(taskID string, eligible []string, overlap float64, reviewers int) []string {
	n := len(eligible)
	if n == 0 {
		return nil
	}
	first, draw := taskHash(taskID)
	k := 1
	if draw < overlap {
		k = max(1, min(reviewers, n))
	}
	out := make([]string, k)
	for i := range k {
		out[i] = eligible[(int(first%uint64(n))+i)%n]
	}
	return out
}

// assigner finds the tasks of a project assigned to a curator.
type assigner struct {
	st      *store.Store
	project string
	a       store.Assignment
}

func newAssigner(ctx context.Context, st *store.Store, project string) (*assigner, error) {
	a, err := st.AssignmentGet(ctx, project)
	if err != nil {
		return nil, err
	}
	return &assigner{st: st, project: project, a: a}, nil
}

// queueOf is a curator's queue, if they have one.
func (as *assigner) queueOf(curatorID string) (store.Queue, bool) {
	i := slices.IndexFunc(as.a.Queues, func(q store.Queue) bool { return q.CuratorID == curatorID })
	if i < 0 {
		return store.Queue{}, false
	}
	return as.a.Queues[i], true
}

// filterOf is the tasks a curator may be given: their queue's, or every
// task of the project (and type) when they have none.
func (as *assigner) filterOf(curatorID, typ string) (store.TaskFilter, bool) {
	q, ok := as.queueOf(curatorID)
	if !ok {
		return store.TaskFilter{Project: as.project, Type: typ}, false
	}
	f := q.Filter(as.project)
	if typ != "" && f.Type != "" && f.Type != typ {
		f.IDs = []string{"-"} // no task: the queue is of another type
	}
	if typ != "" {
		f.Type = typ
	}
	return f, true
}

// keep returns those of ids (tasks the curator's queue holds) that are
// assigned to the curator: it asks each other queue which of them it
// holds too.
func (as *assigner) keep(ctx context.Context, curatorID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if _, ok := as.queueOf(curatorID); !ok {
		return ids, nil
	}
	eligible := make(map[string][]string, len(ids))
	for _, q := range as.a.Queues { // by curator ID: eligible lists come out sorted
		if q.CuratorID == curatorID {
			for _, id := range ids {
				eligible[id] = append(eligible[id], q.CuratorID)
			}
			continue
		}
		f := q.Filter(as.project)
		f.IDs = ids
		theirs, err := as.st.CurationTaskIDs(ctx, f, "", len(ids))
		if err != nil {
			return nil, err
		}
		for _, id := range theirs {
			eligible[id] = append(eligible[id], q.CuratorID)
		}
	}
	var out []string
	for _, id := range ids {
		if slices.Contains(Assignees(id, eligible[id], as.a.Overlap, int(as.a.Reviewers)), curatorID) {
			out = append(out, id)
		}
	}
	return out, nil
}

// assignedPage is the next tasks (by ID, after the cursor) assigned to a
// curator, up to limit, and the cursor after the tasks it read.
func (as *assigner) assignedPage(ctx context.Context, curatorID, typ, after string, limit int) ([]string, string, bool, error) {
	f, _ := as.filterOf(curatorID, typ)
	var out []string
	for len(out) < limit {
		ids, err := as.st.CurationTaskIDs(ctx, f, after, 500)
		if err != nil {
			return nil, "", false, err
		}
		if len(ids) == 0 {
			return out, after, false, nil
		}
		mine, err := as.keep(ctx, curatorID, ids)
		if err != nil {
			return nil, "", false, err
		}
		for _, id := range mine {
			out = append(out, id)
			after = id
			if len(out) == limit {
				return out, after, true, nil
			}
		}
		after = ids[len(ids)-1]
		if len(ids) < 500 {
			return out, after, false, nil
		}
	}
	return out, after, true, nil
}

// ---- The routes ------------------------------------------------------

// QueueSpec is one curator's queue.
type QueueSpec struct {
	CuratorID string `json:"curator_id"`
	Curator   string `json:"curator,omitempty" readOnly:"true" doc:"The curator's name."`
	Type      string `json:"type,omitempty" doc:"Tasks of this conquest type; default any."`
	Model     string `json:"model,omitempty" doc:"Tasks with an output of this model; default any."`
	Q         string `json:"q,omitempty" maxLength:"200" doc:"Tasks whose prompt holds this text; default any."`
}

// AssignmentSpec is a project's queues and overlap.
type AssignmentSpec struct {
	Overlap   float64     `json:"overlap" minimum:"0" maximum:"1" doc:"The share of tasks that several curators review."`
	Reviewers int64       `json:"reviewers,omitempty" minimum:"2" maximum:"10" doc:"How many curators review a task of the overlap; default 2."`
	Queues    []QueueSpec `json:"queues" maxItems:"200"`
}

type assignmentOutput struct {
	Body AssignmentSpec
}

func (d Deps) assignmentSpec(ctx context.Context) (AssignmentSpec, error) {
	a, err := d.Store.AssignmentGet(ctx, projectOf(ctx))
	if err != nil {
		return AssignmentSpec{}, err
	}
	names, err := d.curatorNames(ctx)
	if err != nil {
		return AssignmentSpec{}, err
	}
	out := AssignmentSpec{Overlap: a.Overlap, Reviewers: a.Reviewers, Queues: []QueueSpec{}}
	for _, q := range a.Queues {
		out.Queues = append(out.Queues, QueueSpec{CuratorID: q.CuratorID, Curator: names[q.CuratorID], Type: q.Type, Model: q.Model, Q: q.Query})
	}
	return out, nil
}

func (d Deps) getAssignment(ctx context.Context, _ *struct{}) (*assignmentOutput, error) {
	out, err := d.assignmentSpec(ctx)
	if err != nil {
		return nil, err
	}
	return &assignmentOutput{out}, nil
}

type setAssignmentInput struct {
	Body AssignmentSpec
}

func (d Deps) setAssignment(ctx context.Context, in *setAssignmentInput) (*assignmentOutput, error) {
	a := store.Assignment{Overlap: in.Body.Overlap, Reviewers: in.Body.Reviewers}
	seen := map[string]bool{}
	for i, q := range in.Body.Queues {
		if seen[q.CuratorID] {
			return nil, apierror.InvalidCode("queues", "duplicate_queue", "A curator has one queue: "+q.CuratorID+" is named twice.")
		}
		seen[q.CuratorID] = true
		if _, err := d.projectCurator(ctx, q.CuratorID); err != nil {
			return nil, apierror.NotFoundParam("queues["+strconv.Itoa(i)+"].curator_id", "curator", q.CuratorID)
		}
		a.Queues = append(a.Queues, store.Queue{CuratorID: q.CuratorID, Type: q.Type, Model: q.Model, Query: q.Q})
	}
	slices.SortFunc(a.Queues, func(x, y store.Queue) int { return strings.Compare(x.CuratorID, y.CuratorID) })
	if err := d.Store.AssignmentSet(ctx, projectOf(ctx), a); err != nil {
		return nil, err
	}
	out, err := d.assignmentSpec(ctx)
	if err != nil {
		return nil, err
	}
	return &assignmentOutput{out}, nil
}

// QueueTask is a task in a curator's queue.
type QueueTask struct {
	TaskSummary
	Done bool `json:"done" doc:"The curator judged it: a preference or a rating of theirs."`
}

// QueuePage is a page of a curator's queue.
type QueuePage struct {
	Object  string      `json:"object" enum:"list"`
	Data    []QueueTask `json:"data"`
	HasMore bool        `json:"has_more"`
	LastID  *string     `json:"last_id" doc:"The cursor of the next page (after)."`
}

type queueInput struct {
	Type  string `query:"type"`
	After string `query:"after"`
	Limit int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type queueOutput struct {
	Body QueuePage
}

func (d Deps) listQueue(ctx context.Context, in *queueInput) (*queueOutput, error) {
	as, err := newAssigner(ctx, d.Store, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	me := curatorOf(ctx).ID
	ids, cursor, more, err := as.assignedPage(ctx, me, in.Type, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := QueuePage{Object: "list", Data: []QueueTask{}, HasMore: more}
	if cursor != "" && more {
		out.LastID = &cursor
	}
	if len(ids) == 0 {
		return &queueOutput{out}, nil
	}
	list, _, err := d.Store.CurationTaskList(ctx, store.TaskFilter{Project: projectOf(ctx), IDs: ids}, "", len(ids))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b store.CurationTask) int { return strings.Compare(a.ID, b.ID) })
	var done []string
	for from := prevID(ids[0]); ; {
		page, err := d.Store.CuratorTasksDone(ctx, projectOf(ctx), me, from, 500)
		if err != nil {
			return nil, err
		}
		done = append(done, page...)
		if len(page) < 500 || page[len(page)-1] >= ids[len(ids)-1] {
			break
		}
		from = page[len(page)-1]
	}
	sums := make([]TaskSummary, len(list))
	for i, t := range list {
		sums[i] = summaryOf(t)
	}
	if err := d.withPreviews(ctx, sums); err != nil {
		return nil, err
	}
	for _, s := range sums {
		out.Data = append(out.Data, QueueTask{TaskSummary: s, Done: slices.Contains(done, s.ID)})
	}
	return &queueOutput{out}, nil
}

// prevID is a cursor just before id: every ID after it includes id.
func prevID(id string) string {
	if id == "" {
		return ""
	}
	return id[:len(id)-1]
}

// CuratorProgress is one curator's progress.
type CuratorProgress struct {
	CuratorID string `json:"curator_id"`
	Curator   string `json:"curator"`
	HasQueue  bool   `json:"has_queue" doc:"false: no queue, the whole project is theirs."`
	Assigned  int64  `json:"assigned" doc:"Tasks assigned."`
	Done      int64  `json:"done" doc:"Of those, the tasks they judged (a preference or a rating)."`
	Overlap   int64  `json:"overlap" doc:"Of those assigned, the tasks in the overlap's share (reviewed by several curators where several queues hold them)."`
}

type progressOutput struct {
	Body listOf[CuratorProgress]
}

// ProgressOf counts a curator's tasks in a project: assigned, done and
// shared with another curator. It reads the curator's queue a page at a
// time, and their judged tasks alongside.
func ProgressOf(ctx context.Context, st *store.Store, project, curatorID string) (CuratorProgress, error) {
	as, err := newAssigner(ctx, st, project)
	if err != nil {
		return CuratorProgress{}, err
	}
	return as.progress(ctx, curatorID)
}

func (as *assigner) progress(ctx context.Context, curatorID string) (CuratorProgress, error) {
	p := CuratorProgress{CuratorID: curatorID}
	f, hasQueue := as.filterOf(curatorID, "")
	p.HasQueue = hasQueue
	var done []string
	doneAfter, doneEnd := "", false
	nextDone := func() error {
		var err error
		done, err = as.st.CuratorTasksDone(ctx, as.project, curatorID, doneAfter, 2000)
		if len(done) > 0 {
			doneAfter = done[len(done)-1]
		}
		doneEnd = len(done) < 2000
		return err
	}
	if err := nextDone(); err != nil {
		return p, err
	}
	after := ""
	for {
		ids, err := as.st.CurationTaskIDs(ctx, f, after, 1000)
		if err != nil {
			return p, err
		}
		if len(ids) == 0 {
			return p, nil
		}
		mine := ids
		if hasQueue {
			// Assigned, and in the overlap: the curators of each task.
			mine, err = as.keep(ctx, curatorID, ids)
			if err != nil {
				return p, err
			}
		}
		for _, id := range mine {
			p.Assigned++
			for len(done) > 0 && done[0] < id {
				done = done[1:]
				if len(done) == 0 && !doneEnd {
					if err := nextDone(); err != nil {
						return p, err
					}
				}
			}
			if len(done) > 0 && done[0] == id {
				p.Done++
			}
		}
		if hasQueue && as.a.Overlap > 0 {
			for _, id := range mine {
				if _, draw := taskHash(id); draw < as.a.Overlap {
					p.Overlap++
				}
			}
		}
		after = ids[len(ids)-1]
		if len(ids) < 1000 {
			return p, nil
		}
	}
}

func (d Deps) progress(ctx context.Context, _ *struct{}) (*progressOutput, error) {
	as, err := newAssigner(ctx, d.Store, projectOf(ctx))
	if err != nil {
		return nil, err
	}
	me := curatorOf(ctx)
	who := []store.Curator{me}
	if me.Role == RoleAdmin {
		who, err = d.Store.CuratorListByProject(ctx, projectOf(ctx))
		if err != nil {
			return nil, err
		}
		who = slices.DeleteFunc(who, func(c store.Curator) bool { return c.RevokedAt != nil })
	}
	out := &progressOutput{}
	out.Body.Data = []CuratorProgress{}
	for _, c := range who {
		p, err := as.progress(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		p.Curator = c.Name
		out.Body.Data = append(out.Body.Data, p)
	}
	return out, nil
}
