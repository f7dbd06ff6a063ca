package faulttest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"

	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// chaosRunsCI is how many runs TestChaos makes when KILN_CHAOS_RUNS is
// unset: the slice of `make chaos` that `make test` runs.
const chaosRunsCI = 2

// TestChaos runs seeded chaos runs, each on a stack of its own: a private
// Postgres and MinIO, `kiln serve` (agent off), one or two `kiln agent`
// processes and `kiln sim` as their engine, each a process. A run
// registers a webhook endpoint on a receiver in the test, creates batches
// of a few hundred requests (some through the Uploads API, some with a
// completion window of seconds, one in some runs with an invalid line),
// cancels some, and meanwhile, at points its seed chooses, SIGKILLs kiln
// serve, an agent or both, stops or crashes Postgres or MinIO, and kills
// the engine, starting each again. It then waits until every batch ends
// and checks the invariants (see chaosRun.check). The test prints a table of
// the runs and the faults of each kind.
//
// KILN_CHAOS_RUNS=N makes N runs (default 2), KILN_CHAOS_SEED=S starts
// from seed S (default: the time); run i has seed S+i, so
// KILN_CHAOS_SEED=<a run's seed> KILN_CHAOS_RUNS=1 replays that run's
// plan. A failed run's process logs are kept under $KILN_TEST_ARTIFACTS.
func TestChaos(t *testing.T) {
	t.Parallel()
	runs := chaosRunsCI
	if s := os.Getenv("KILN_CHAOS_RUNS"); s != "" {
		var err error
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("KILN_CHAOS_RUNS=%q: want a positive number", s)
		}
	}
	seed := uint64(time.Now().UnixNano()) % 1_000_000_000
	if s := os.Getenv("KILN_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("KILN_CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("chaos: %d runs from seed %d (run i has seed %d+i; KILN_CHAOS_SEED=<seed> KILN_CHAOS_RUNS=1 replays one)", runs, seed, seed)
	bin := kilntest.KilnBinary(t)
	results := make([]*chaosResult, runs)
	began := time.Now()
	t.Run("run", func(t *testing.T) {
		for i := range runs {
			s := seed + uint64(i)
			t.Run(strconv.FormatUint(s, 10), func(t *testing.T) {
				res := &chaosResult{seed: s, faults: map[chaosFault]int{}, outcomes: map[openai.BatchStatus]int{}}
				results[i] = res
				defer func() {
					if t.Failed() && len(res.problems) == 0 {
						res.problems = append(res.problems, "the run failed; see its log")
					}
					t.Log(res.row())
				}()
				runChaos(t, bin, res)
				if len(res.problems) > 0 {
					t.Errorf("seed %d broke invariants:\n\t%s", s, strings.Join(res.problems, "\n\t"))
				}
			})
		}
	})
	t.Logf("chaos: %d runs in %s\n%s", runs, time.Since(began).Round(time.Second), chaosTable(results))
}

// chaosFault is a kind of fault a chaos run injects.
type chaosFault string

const (
	faultServe      chaosFault = "serve"       // SIGKILL kiln serve
	faultAgent      chaosFault = "agent"       // SIGKILL a kiln agent
	faultBoth       chaosFault = "serve+agent" // SIGKILL both at once
	faultPGStop     chaosFault = "pg-stop"     // stop Postgres cleanly
	faultPGCrash    chaosFault = "pg-crash"    // crash Postgres (immediate shutdown)
	faultMinIOStop  chaosFault = "minio-stop"  // SIGTERM MinIO
	faultMinIOCrash chaosFault = "minio-crash" // SIGKILL MinIO
	faultEngine     chaosFault = "engine"      // SIGKILL kiln sim
)

var chaosFaults = []chaosFault{faultServe, faultAgent, faultBoth, faultPGStop, faultPGCrash, faultMinIOStop, faultMinIOCrash, faultEngine}

// chaosPlan is everything a run does, drawn from its seed before it starts.
type chaosPlan struct {
	agents  int
	batches []batchPlan
	faults  []faultPlan
	// cancelUpload starts an upload with a part and cancels it.
	cancelUpload bool
}

type batchPlan struct {
	requests int
	at       time.Duration // when it is created
	window   string        // completion window
	// cancelAt, when not zero, is when it is cancelled.
	cancelAt time.Duration
	upload   bool // its input goes up through the Uploads API, in parts
	invalid  bool // its input has an invalid line: it fails validation
}

type faultPlan struct {
	kind  chaosFault
	at    time.Duration
	down  time.Duration // how long the part stays down
	agent int           // which agent, for faultAgent and faultBoth
}

// chaosSpan is how long the faults of a run last: faults start within it,
// batches are created within its first three quarters.
const chaosSpan = 8 * time.Second

func planChaos(rng *rand.Rand) chaosPlan {
	p := chaosPlan{agents: 1 + rng.IntN(2), cancelUpload: rng.IntN(3) == 0}
	nb := 3 + rng.IntN(3)
	for i := range nb {
		b := batchPlan{requests: 150 + rng.IntN(351), window: "24h", upload: rng.IntN(3) == 0}
		if i >= 2 {
			b.at = time.Duration(rng.Int64N(int64(chaosSpan * 3 / 4)))
		}
		if rng.IntN(10) < 3 {
			// About as long as the batch takes: it may expire.
			b.window = fmt.Sprintf("%ds", 1+rng.IntN(4))
		}
		if rng.IntN(4) == 0 {
			b.cancelAt = b.at + 200*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
		}
		b.invalid = rng.IntN(12) == 0
		p.batches = append(p.batches, b)
	}
	nf := 4 + rng.IntN(5)
	for range nf {
		f := faultPlan{kind: chaosFaults[rng.IntN(len(chaosFaults))], at: time.Duration(rng.Int64N(int64(chaosSpan))), agent: rng.IntN(p.agents)}
		switch f.kind {
		case faultPGStop, faultPGCrash, faultMinIOStop, faultMinIOCrash:
			// Up to past the agents' lease (2s): they can neither renew
			// nor commit before it runs out.
			f.down = 200*time.Millisecond + time.Duration(rng.Int64N(int64(3300*time.Millisecond)))
		default:
			f.down = time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		}
		p.faults = append(p.faults, f)
	}
	slices.SortStableFunc(p.faults, func(a, b faultPlan) int { return cmp.Compare(a.at, b.at) })
	return p
}

// chaosResult is one run's line in the table.
type chaosResult struct {
	seed     uint64
	agents   int
	faults   map[chaosFault]int
	outcomes map[openai.BatchStatus]int
	requests int64
	// redelivered counts webhook events delivered again after a crash
	// (same message ID), which receivers drop by webhook-id.
	redelivered int
	// orphans counts objects without their row once kiln's immediate
	// cleanup is over, which only the objects sweep removes.
	orphans int
	// exits counts processes that exited on their own, which the run
	// started again as a supervisor would.
	exits    int
	took     time.Duration
	problems []string
}

func (r *chaosResult) row() string {
	verdict := "ok"
	if len(r.problems) > 0 {
		verdict = fmt.Sprintf("FAIL (%d)", len(r.problems))
	}
	var f []string
	for _, k := range chaosFaults {
		f = append(f, strconv.Itoa(r.faults[k]))
	}
	return fmt.Sprintf("%-10d %6d   %-24s %4d %4d %4d %4d %8d %5d %5d %5d %7s  %s", r.seed, r.agents, strings.Join(f, " "),
		r.outcomes[openai.BatchStatusCompleted], r.outcomes[openai.BatchStatusCancelled], r.outcomes[openai.BatchStatusExpired],
		r.outcomes[openai.BatchStatusFailed], r.requests, r.redelivered, r.orphans, r.exits, r.took.Round(100*time.Millisecond), verdict)
}

func chaosTable(results []*chaosResult) string {
	var b strings.Builder
	b.WriteString("faults: serve agent serve+agent pg-stop pg-crash minio-stop minio-crash engine; batches: completed cancelled expired failed;\n" +
		"redel: webhooks redelivered after a crash (same webhook-id); swept: objects a crash left without their row, which the objects sweep removed;\n" +
		"exits: processes that exited on their own and were started again\n")
	fmt.Fprintf(&b, "%-10s %6s   %-24s %4s %4s %4s %4s %8s %5s %5s %5s %7s  %s\n", "seed", "agents", "faults", "comp", "canc", "exp", "fail", "requests", "redel", "swept", "exits", "took", "verdict")
	totals := map[chaosFault]int{}
	outcomes := map[openai.BatchStatus]int{}
	var requests int64
	failed, done := 0, 0
	for _, r := range results {
		if r == nil {
			continue
		}
		done++
		b.WriteString(r.row())
		b.WriteByte('\n')
		for k, n := range r.faults {
			totals[k] += n
		}
		for k, n := range r.outcomes {
			outcomes[k] += n
		}
		requests += r.requests
		if len(r.problems) > 0 {
			failed++
		}
	}
	fmt.Fprintf(&b, "runs: %d, failed: %d; requests: %d\n", done, failed, requests)
	b.WriteString("faults injected:")
	sum := 0
	for _, k := range chaosFaults {
		fmt.Fprintf(&b, " %s %d,", k, totals[k])
		sum += totals[k]
	}
	fmt.Fprintf(&b, " in all %d\n", sum)
	fmt.Fprintf(&b, "batches: completed %d, cancelled %d, expired %d, failed %d\n", outcomes[openai.BatchStatusCompleted],
		outcomes[openai.BatchStatusCancelled], outcomes[openai.BatchStatusExpired], outcomes[openai.BatchStatusFailed])
	return b.String()
}

// chaosRun is one run in progress.
type chaosRun struct {
	t     *testing.T
	res   *chaosResult
	plan  chaosPlan
	stack *chaosStack
	c     openai.Client
	rcv   *receiver
	t0    time.Time

	// locks keep two faults off one part at once.
	serveMu, pgMu, s3Mu, simMu sync.Mutex
	agentMu                    []sync.Mutex

	mu sync.Mutex
	// inputs are the batch input files made, with their requests; a
	// batch whose creation answer was lost and that was created again
	// shares its file with its twin.
	inputs map[string]inputFile
	// cancelled are the batches a cancel moved to cancelling.
	cancelled map[string]bool
	// webhookGaps are when kiln serve was dead or Postgres down: the
	// outcome of a delivery made then may be lost, and it is made again.
	webhookGaps [][2]time.Time
	errs        []string
}

type inputFile struct {
	requests int
	invalid  bool
}

func (r *chaosRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func runChaos(t *testing.T, bin string, res *chaosResult) {
	began := time.Now()
	defer func() { res.took = time.Since(began) }()
	plan := planChaos(rand.New(rand.NewPCG(res.seed, 0)))
	res.agents = plan.agents
	stack := startChaosStack(t, bin, plan.agents)
	defer stack.stop()
	r := &chaosRun{t: t, res: res, plan: plan, stack: stack, inputs: map[string]inputFile{}, cancelled: map[string]bool{},
		agentMu: make([]sync.Mutex, plan.agents)}
	r.c = openai.NewClient(option.WithBaseURL(stack.base+"/v1/"), option.WithAPIKey(chaosKey), option.WithMaxRetries(0),
		option.WithRequestTimeout(15*time.Second))
	r.rcv = newReceiver(t, r.c, rand.New(rand.NewPCG(res.seed, 1)), 0.2)
	var ep *webhooks.WebhookEndpointWithSecret
	err := r.retry("create the webhook endpoint", func(ctx context.Context) error {
		var err error
		ep, err = r.c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: r.rcv.srv.URL, Name: "chaos",
			EventTypes: []string{store.EventBatchCompleted, store.EventBatchFailed, store.EventBatchExpired, store.EventBatchCancelled}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r.rcv.setSecret(ep.SigningSecret)

	r.t0 = time.Now()
	var wg sync.WaitGroup
	for i, bp := range plan.batches {
		wg.Go(func() { r.batch(i, bp) })
	}
	if plan.cancelUpload {
		wg.Go(r.abandonedUpload)
	}
	for _, f := range plan.faults {
		wg.Go(func() { r.fault(f) })
	}
	wg.Wait()
	r.check(ep.ID)
	for _, p := range stack.procs() {
		res.exits += p.selfExits()
	}
	r.mu.Lock()
	res.problems = append(res.problems, r.errs...)
	r.mu.Unlock()
}

// at waits until d after the run's start: the plan's clock.
func (r *chaosRun) at(d time.Duration) { <-time.After(time.Until(r.t0.Add(d))) }

// retry calls fn until it succeeds, riding out kiln serve's restarts and
// outages, or until waitFor has passed. An answer 4xx is final.
func (r *chaosRun) retry(what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(waitFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := fn(ctx)
		cancel()
		var apiErr *openai.Error
		if err == nil || (errors.As(err, &apiErr) && apiErr.StatusCode < 500) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %w", what, waitFor, err)
		}
		// A client's retry policy; not a wait for a condition.
		<-time.After(100 * time.Millisecond)
	}
}

// batch creates a batch as planned, and cancels it if planned.
func (r *chaosRun) batch(i int, bp batchPlan) {
	r.at(bp.at)
	data := chaosLines(bp.requests, bp.invalid)
	fileID, err := r.inputFile(fmt.Sprintf("batch-%d.jsonl", i), data, bp.upload)
	if err != nil {
		r.problem("batch %d: %v", i, err)
		return
	}
	r.mu.Lock()
	r.inputs[fileID] = inputFile{requests: bp.requests, invalid: bp.invalid}
	r.mu.Unlock()
	var b *openai.Batch
	err = r.retry("create batch", func(ctx context.Context) error {
		var err error
		b, err = r.c.Batches.New(ctx, openai.BatchNewParams{InputFileID: fileID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
			CompletionWindow: openai.BatchNewParamsCompletionWindow(bp.window), Metadata: map[string]string{"plan": strconv.Itoa(i)}})
		return err
	})
	if err != nil {
		r.problem("batch %d: %v", i, err)
		return
	}
	if bp.cancelAt == 0 {
		return
	}
	r.at(bp.cancelAt)
	err = r.retry("cancel batch", func(ctx context.Context) error {
		got, err := r.c.Batches.Cancel(ctx, b.ID)
		if err == nil && got.Status == openai.BatchStatusCancelling {
			r.mu.Lock()
			r.cancelled[b.ID] = true
			r.mu.Unlock()
		}
		return err
	})
	var apiErr *openai.Error
	if err != nil && !(errors.As(err, &apiErr) && apiErr.StatusCode == 409) {
		r.problem("cancel batch %s: %v", b.ID, err)
	}
}

// inputFile uploads a batch input, in one request or through the Uploads
// API in three parts, and returns its file ID.
func (r *chaosRun) inputFile(name string, data []byte, upload bool) (string, error) {
	var id string
	if !upload {
		err := r.retry("upload "+name, func(ctx context.Context) error {
			f, err := r.c.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(data), name, "application/jsonl"), Purpose: openai.FilePurposeBatch})
			if err == nil {
				id = f.ID
			}
			return err
		})
		return id, err
	}
	for attempt := 1; ; attempt++ {
		id, err := r.upload(name, data)
		var apiErr *openai.Error
		if attempt < 5 && errors.As(err, &apiErr) && apiErr.StatusCode == 409 {
			// The completion's answer was lost: it completed, or kiln
			// died in the middle and the upload stays completing until
			// it expires. Either way, start again, as a client would.
			r.t.Logf("upload %s: %v; uploading again", name, err)
			continue
		}
		return id, err
	}
}

// upload sends data through the Uploads API in three parts and returns
// the file's ID.
func (r *chaosRun) upload(name string, data []byte) (string, error) {
	var id string
	var u *openai.Upload
	err := r.retry("create upload "+name, func(ctx context.Context) error {
		var err error
		u, err = r.c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(data)), Filename: name, MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
		return err
	})
	if err != nil {
		return "", err
	}
	var parts []string
	for i := range 3 {
		part := data[len(data)*i/3 : len(data)*(i+1)/3]
		err := r.retry("upload a part of "+name, func(ctx context.Context) error {
			p, err := r.c.Uploads.Parts.New(ctx, u.ID, openai.UploadPartNewParams{Data: bytes.NewReader(part)})
			if err == nil {
				parts = append(parts, p.ID)
			}
			return err
		})
		if err != nil {
			return "", err
		}
	}
	err = r.retry("complete upload "+name, func(ctx context.Context) error {
		done, err := r.c.Uploads.Complete(ctx, u.ID, openai.UploadCompleteParams{PartIDs: parts})
		if err == nil {
			id = done.File.ID
		}
		return err
	})
	return id, err
}

// abandonedUpload starts an upload, sends a part and cancels it: its
// part must go.
func (r *chaosRun) abandonedUpload() {
	var u *openai.Upload
	err := r.retry("create an upload to cancel", func(ctx context.Context) error {
		var err error
		u, err = r.c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 1000, Filename: "cancelled.jsonl", MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
		return err
	})
	if err == nil {
		err = r.retry("upload a part to cancel", func(ctx context.Context) error {
			_, err := r.c.Uploads.Parts.New(ctx, u.ID, openai.UploadPartNewParams{Data: bytes.NewReader(chaosLines(3, false))})
			return err
		})
	}
	if err == nil {
		tries := 0
		err = r.retry("cancel an upload", func(ctx context.Context) error {
			tries++
			_, err := r.c.Uploads.Cancel(ctx, u.ID)
			// A try whose answer was lost (kiln killed meanwhile) may have
			// cancelled it: then the next one finds it cancelled already.
			var apiErr *openai.Error
			if tries > 1 && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict {
				return nil
			}
			return err
		})
	}
	if err != nil {
		r.problem("%v", err)
	}
}

// fault injects one planned fault and undoes it.
func (r *chaosRun) fault(f faultPlan) {
	r.at(f.at)
	t, s := r.t, r.stack
	deadline := time.Now().Add(waitFor)
	restart := func(ps ...*chaosProc) {
		for _, p := range ps {
			if err := p.start(deadline); err != nil {
				r.problem("fault %s: %v", f.kind, err)
			}
		}
	}
	down := func() { <-time.After(f.down) } // the length of the outage: part of the fault
	gap := -1
	noteGap := func() {
		r.mu.Lock()
		r.webhookGaps = append(r.webhookGaps, [2]time.Time{time.Now()})
		gap = len(r.webhookGaps) - 1
		r.mu.Unlock()
	}
	endGap := func() {
		r.mu.Lock()
		r.webhookGaps[gap][1] = time.Now()
		r.mu.Unlock()
	}
	switch f.kind {
	case faultServe, faultBoth:
		r.serveMu.Lock()
		defer r.serveMu.Unlock()
		procs := []*chaosProc{s.serve}
		if f.kind == faultBoth {
			r.agentMu[f.agent].Lock()
			defer r.agentMu[f.agent].Unlock()
			procs = append(procs, s.agents[f.agent])
		}
		noteGap()
		for _, p := range procs {
			p.kill()
		}
		down()
		restart(procs...)
		endGap()
	case faultAgent:
		r.agentMu[f.agent].Lock()
		defer r.agentMu[f.agent].Unlock()
		s.agents[f.agent].kill()
		down()
		restart(s.agents[f.agent])
	case faultEngine:
		r.simMu.Lock()
		defer r.simMu.Unlock()
		s.sim.kill()
		down()
		restart(s.sim)
	case faultPGStop, faultPGCrash:
		r.pgMu.Lock()
		defer r.pgMu.Unlock()
		noteGap()
		if f.kind == faultPGCrash {
			s.pg.Crash(t)
		} else {
			s.pg.Stop(t)
		}
		down()
		s.pg.Start(t)
		endGap()
	case faultMinIOStop, faultMinIOCrash:
		r.s3Mu.Lock()
		defer r.s3Mu.Unlock()
		if f.kind == faultMinIOCrash {
			s.s3.Crash(t)
		} else {
			s.s3.Stop(t)
		}
		down()
		s.s3.Start(t)
	}
	r.mu.Lock()
	r.res.faults[f.kind]++
	r.mu.Unlock()
}

// chaosLines makes n chat requests req-0 … req-(n-1), as chatLines; with
// invalid, one of them asks for another endpoint, so that the batch fails
// validation.
func chaosLines(n int, invalid bool) []byte {
	data := chatLines(n)
	if !invalid {
		return data
	}
	return bytes.Replace(data, []byte(`"url":"/v1/chat/completions"`), []byte(`"url":"/v1/embeddings"`), 1)
}

// check waits until every batch has ended, its webhook has been delivered
// and kiln has cleaned up after it, then checks the invariants:
//
//   - every batch is terminal;
//   - output lines + error lines == request_counts.total, and the counts
//     match the files; each custom_id of the input appears exactly once
//     across the output and error files; a batch cancelled (the cancel
//     answered cancelling) ends cancelled, a batch with a 24h window does
//     not expire;
//   - every object in the bucket has its row (files/ a file, batches/ a
//     batch that has not ended, uploads/ an upload that has not ended),
//     and every file row its object;
//   - every batch has exactly one terminal event, delivered to the
//     receiver under exactly one message ID, recorded as one succeeded
//     delivery. A message delivered (2xx) more than once is a failure
//     unless kiln serve died or Postgres was down between the deliveries:
//     then kiln may not have recorded the first, and sends it again with
//     the same webhook-id for the receiver to drop (Standard Webhooks'
//     at-least-once delivery). Those repeats are counted.
func (r *chaosRun) check(endpointID string) {
	t := r.t
	ctx := context.Background()
	var batches []openai.Batch
	poll(t, "every batch ends", func() (bool, error) {
		batches = batches[:0]
		iter := r.c.Batches.ListAutoPaging(ctx, openai.BatchListParams{Limit: openai.Int(100)})
		for iter.Next() {
			batches = append(batches, iter.Current())
		}
		if err := iter.Err(); err != nil {
			return false, err
		}
		for _, b := range batches {
			if !terminal(b.Status) {
				return false, fmt.Errorf("batch %s is %s", b.ID, b.Status)
			}
		}
		return true, nil
	})
	st, err := store.Open(ctx, r.stack.pg.URL(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bucket, err := objectstore.Open(ctx, r.stack.s3.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()

	r.mu.Lock()
	inputs, cancelled := r.inputs, r.cancelled
	r.mu.Unlock()
	for _, b := range batches {
		t.Logf("batch %s (plan %s, window %s): %s, %d of %d done, %d failed", b.ID, b.Metadata["plan"], b.CompletionWindow, b.Status,
			b.RequestCounts.Completed, b.RequestCounts.Total, b.RequestCounts.Failed)
		r.res.outcomes[b.Status]++
		r.res.requests += b.RequestCounts.Total
		in, ok := inputs[b.InputFileID]
		if !ok {
			r.problem("batch %s: its input %s is no file the run made", b.ID, b.InputFileID)
			continue
		}
		for _, p := range checkBatch(ctx, r.c, b, in.requests, checkOpts{}) {
			r.problem("%s", p)
		}
		switch {
		case in.invalid && b.Status != openai.BatchStatusFailed && b.Status != openai.BatchStatusCancelled && b.Status != openai.BatchStatusExpired:
			r.problem("batch %s with an invalid line is %s", b.ID, b.Status)
		case !in.invalid && b.Status == openai.BatchStatusFailed:
			r.problem("batch %s failed: %+v", b.ID, b.Errors.Data)
		case cancelled[b.ID] && b.Status != openai.BatchStatusCancelled:
			r.problem("batch %s was cancelling, and ended %s", b.ID, b.Status)
		case b.CompletionWindow == "24h" && b.Status == openai.BatchStatusExpired:
			r.problem("batch %s with a 24h window expired", b.ID)
		}
	}

	// Deleting a finished batch's chunks and an ended upload's parts
	// follows the change that ended them: wait for it.
	orphans, problems := settleObjects(t, st, bucket)
	r.res.orphans = orphans
	for _, p := range problems {
		r.problem("%s", p)
	}

	r.checkWebhooks(ctx, st, endpointID, batches)
}

// checkWebhooks checks each ended batch's event and its delivery.
func (r *chaosRun) checkWebhooks(ctx context.Context, st *store.Store, endpointID string, batches []openai.Batch) {
	t := r.t
	// The batches' events, by batch.
	events := map[string][]store.Event{}
	for _, typ := range []string{store.EventBatchCompleted, store.EventBatchFailed, store.EventBatchExpired, store.EventBatchCancelled} {
		after := ""
		for {
			page, more, err := st.EventList(ctx, "", typ, after, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range page {
				var data struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					r.problem("event %s: %v", ev.ID, err)
				}
				events[data.ID] = append(events[data.ID], ev)
				after = ev.ID
			}
			if !more {
				break
			}
		}
	}
	var want []string // the event of each batch
	for _, b := range batches {
		evs := events[b.ID]
		if len(evs) != 1 || evs[0].Type != "batch."+string(b.Status) {
			r.problem("batch %s (%s) has events %v, want one batch.%s", b.ID, b.Status, eventTypes(evs), b.Status)
			continue
		}
		want = append(want, evs[0].ID)
	}
	var got map[string]receipt
	var problems []string
	poll(t, "every batch's webhook is delivered", func() (bool, error) {
		got, problems = r.rcv.snapshot()
		for _, id := range want {
			if len(got[id].accepted) == 0 {
				return false, fmt.Errorf("event %s is not delivered", id)
			}
		}
		return true, nil
	})
	for _, p := range problems {
		r.problem("webhook: %s", p)
	}
	r.mu.Lock()
	gaps := slices.Clone(r.webhookGaps)
	r.mu.Unlock()
	byBatch := map[string][]string{}
	for id, rc := range got {
		byBatch[rc.batchID] = append(byBatch[rc.batchID], id)
	}
	for _, b := range batches {
		if ids := byBatch[b.ID]; len(ids) != 1 {
			r.problem("batch %s: the receiver got %d events for it, %v, want 1", b.ID, len(ids), ids)
		}
	}
	for id, rc := range got {
		if len(rc.accepted) < 2 {
			continue
		}
		first, last := rc.accepted[0], rc.accepted[len(rc.accepted)-1]
		excused := slices.ContainsFunc(gaps, func(g [2]time.Time) bool {
			return !g[0].After(last) && (g[1].IsZero() || !g[1].Before(first))
		})
		if !excused {
			r.problem("event %s (%s of %s) was delivered %d times, with neither kiln serve nor Postgres down between", id, rc.typ, rc.batchID, len(rc.accepted))
		}
		r.res.redelivered++
	}
	// The delivery log: one delivery per event, succeeded.
	poll(t, "every delivery is recorded", func() (bool, error) {
		byEvent := map[string][]store.Delivery{}
		after := ""
		for {
			page, more, err := st.DeliveryList(ctx, endpointID, "", after, 100)
			if err != nil {
				return false, err
			}
			for _, d := range page {
				byEvent[d.EventID] = append(byEvent[d.EventID], d)
				after = d.ID
			}
			if !more {
				break
			}
		}
		for _, id := range want {
			ds := byEvent[id]
			if len(ds) != 1 {
				return false, fmt.Errorf("event %s has %d deliveries", id, len(ds))
			}
			if ds[0].Status != store.DeliverySucceeded {
				return false, fmt.Errorf("event %s's delivery is %s", id, ds[0].Status)
			}
		}
		return true, nil
	})
}

func eventTypes(evs []store.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+" "+ev.ID)
	}
	return out
}
