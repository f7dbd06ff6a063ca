package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// ClockSkewLimit is the most the clock may differ from the database's.
// kiln's processes stamp heartbeats, leases and expiries with their own
// clocks and compare them with each other's through the database; past a
// few seconds, a live agent looks dead or a lease outlives its holder.
const ClockSkewLimit = 2 * time.Second

// pingArgs is the job the queue check sends through River.
type pingArgs struct {
	ID string `json:"id"`
}

func (pingArgs) Kind() string { return "kiln_doctor_ping" }

// pingWorker hands each job it works to the check.
type pingWorker struct {
	river.WorkerDefaults[pingArgs]
	worked chan *rivertype.JobRow
}

func (w *pingWorker) Work(ctx context.Context, job *river.Job[pingArgs]) error {
	select {
	case w.worked <- job.JobRow:
	case <-ctx.Done():
	}
	return nil
}

// queueAndClock sends a job through River on a queue of its own, which no
// kiln process works, and works it: River's tables, inserts and fetches
// work. The job's creation time, which the database stamps, gives the
// clock's skew.
func (d *doctor) queueAndClock(ctx context.Context, st *store.Store) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	queue := ids.New("kiln_doctor_")
	w := &pingWorker{worked: make(chan *rivertype.JobRow, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	start := time.Now()
	if err := st.StartWorkers(ctx, store.WorkerOpts{Workers: workers, Queues: map[string]int{queue: 1},
		PollInterval: 50 * time.Millisecond, ID: queue}); err != nil {
		d.add("job queue", Fail, "River: %v", err)
		d.add("clock", Skip, "needs the job queue")
		return
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
		defer cancel()
		_ = st.StopWorkers(stopCtx)
	}()
	id := ids.New("")
	before := time.Now()
	err := st.Enqueue(ctx, store.Job{Args: pingArgs{ID: id}, Opts: &river.InsertOpts{Queue: queue}})
	after := time.Now()
	if err != nil {
		d.add("job queue", Fail, "River: insert a job: %v", err)
		d.add("clock", Skip, "needs the job queue")
		return
	}
	var job *rivertype.JobRow
	select {
	case job = <-w.worked:
	case <-ctx.Done():
		d.add("job queue", Fail, "River: a job inserted on queue %s was not worked within %s", queue, d.timeout)
		d.add("clock", Skip, "needs the job queue")
		return
	}
	d.add("job queue", OK, "River: a job went in and was worked (%s)", round(time.Since(start)))

	if st.Dialect() == "sqlite" {
		d.add("clock", OK, "sqlite: the database is a file on this machine, on its clock")
		return
	}
	// The database stamped the job between before and after: its clock's
	// offset is the stamp less the midpoint, give or take half the span.
	mid := before.Add(after.Sub(before) / 2)
	s, detail := clockStatus(job.CreatedAt.Sub(mid), after.Sub(before)/2)
	d.add("clock", s, "%s", detail)
}

// clockStatus judges a measured skew (the database's clock less this
// machine's) known to within margin.
func clockStatus(skew, margin time.Duration) (Status, string) {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	ahead := "ahead of"
	if skew < 0 {
		ahead = "behind"
	}
	detail := fmt.Sprintf("the database's clock is %s %s this machine's (±%s)", round(abs), ahead, round(margin))
	if abs-margin > ClockSkewLimit {
		return Fail, detail + fmt.Sprintf("; more than %s: synchronise the clocks (NTP)", ClockSkewLimit)
	}
	return OK, detail
}

// round rounds a duration for reading.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
