// Package doctor checks that what a kiln deployment depends on works: the
// database and its job queue, the clock against the database's, the object
// store and its presigned URLs, the folder store's disk, the GPU agents'
// heartbeats and the webhook endpoints' reachability. kiln doctor prints its
// report, one line per check.
package doctor

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/store"
)

// Status is a check's outcome.
type Status string

const (
	// OK is a check that passed.
	OK Status = "ok"
	// Warn is a check that passed with something to look at, such as no
	// live agent: kiln works, but not as well as it could.
	Warn Status = "warn"
	// Fail is a check that failed: kiln cannot work as configured.
	Fail Status = "FAIL"
	// Skip is a check that could not run, because one it needs failed.
	Skip Status = "skip"
)

// Result is one check's outcome.
type Result struct {
	// Check names what was checked: "database", "agent vm-1", ...
	Check  string
	Status Status
	// Detail says what was found, and for a failure what to do.
	Detail string
}

// Report is the outcome of every check, in the order they ran.
type Report struct {
	Results []Result
}

// Failed says whether a check failed.
func (r Report) Failed() bool { return r.Count(Fail) > 0 }

// Count is the number of results with status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// Summary is one line: how many checks ran and how they went.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d checks: %d ok, %d warnings, %d failed", len(r.Results), r.Count(OK), r.Count(Warn), r.Count(Fail))
	if n := r.Count(Skip); n > 0 {
		s += fmt.Sprintf(", %d skipped", n)
	}
	return s
}

// WriteTo writes the report, a line per check and the summary, to w.
func (r Report) WriteTo(w io.Writer) (int64, error) {
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Check))
	}
	var b strings.Builder
	for _, res := range r.Results {
		fmt.Fprintf(&b, "%-4s  %-*s  %s\n", res.Status, width, res.Check, res.Detail)
	}
	fmt.Fprintf(&b, "\n%s\n", r.Summary())
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// TimeoutDefault is the default of Opts.Timeout.
const TimeoutDefault = 10 * time.Second

// Opts are the settings of Run; nil means defaults.
type Opts struct {
	// Timeout bounds each check. Default: TimeoutDefault.
	Timeout time.Duration
	// Log receives the logs of the store and its job queue. Default:
	// discarded.
	Log *slog.Logger
}

// Run checks the deployment that cfg configures, as kiln serve would run
// it. It changes nothing in the database: a schema that lacks this kiln's
// migrations fails the check (kiln serve applies them at start).
func Run(ctx context.Context, cfg config.Config, opts *Opts) Report {
	if opts == nil {
		opts = &Opts{}
	}
	d := &doctor{cfg: cfg.WithDefaults(), timeout: cmp.Or(opts.Timeout, TimeoutDefault), log: opts.Log}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.cfg.Validate(); err != nil {
		d.add("config", Fail, "%v", err)
		return d.report
	}
	st := d.database(ctx)
	if st != nil {
		defer st.Close()
		d.queueAndClock(ctx, st)
	} else {
		d.add("job queue", Skip, "needs the database")
		d.add("clock", Skip, "needs the database")
	}
	d.objectStore(ctx)
	if st != nil {
		d.agents(ctx, st)
		d.webhooks(ctx, st)
	} else {
		d.add("agents", Skip, "needs the database")
		d.add("webhooks", Skip, "needs the database")
	}
	return d.report
}

// doctor runs the checks and gathers their results.
type doctor struct {
	cfg     config.Config
	timeout time.Duration
	log     *slog.Logger
	report  Report
}

func (d *doctor) add(check string, s Status, detail string, args ...any) {
	d.report.Results = append(d.report.Results, Result{Check: check, Status: s, Detail: fmt.Sprintf(detail, args...)})
}

// database opens the store without migrating it and checks that its
// schema is this kiln's, or says why not.
func (d *doctor) database(ctx context.Context) *store.Store {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	start := time.Now()
	st, err := store.OpenWith(ctx, d.cfg.DatabaseURL, d.log, &store.OpenOpts{NoMigrate: true})
	where := databaseName(d.cfg.DatabaseURL)
	if err != nil {
		d.add("database", Fail, "%s: %v (KILN_DATABASE_URL)", where, err)
		return nil
	}
	pending, err := st.PendingMigrations(ctx)
	if err != nil {
		st.Close()
		d.add("database", Fail, "%s %s: %v", st.Dialect(), where, err)
		return nil
	}
	if len(pending) > 0 {
		st.Close()
		d.add("database", Fail, "%s %s: reachable, but %d of this kiln's migrations are not applied (versions %v): start kiln serve, which applies them",
			st.Dialect(), where, len(pending), pending)
		return nil
	}
	d.add("database", OK, "%s %s: reachable, schema migrated (%s)", st.Dialect(), where, round(time.Since(start)))
	return st
}

// databaseName is where a database URL points, without its credentials.
func databaseName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.Scheme == "sqlite" {
		return strings.TrimPrefix(raw, "sqlite://")
	}
	return u.Host + u.Path
}
