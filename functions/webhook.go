package functions

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/tracing"
)

// WebhookName is the webhook function's name.
const WebhookName = "webhook"

// secretPrefix starts every webhook secret, as Standard Webhooks' secrets.
const secretPrefix = "whsec_"

// NewSecret makes a webhook signing secret: whsec_ and 32 random bytes in
// base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign is the webhook-signature header of a message per Standard Webhooks:
// v1, then the base64 HMAC-SHA256, keyed by the secret's bytes, of
// "<webhook-id>.<webhook-timestamp>.<body>". OpenAI's SDKs verify it with
// webhooks.unwrap.
func Sign(secret, msgID string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return "", fmt.Errorf("webhook secret is not base64: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", msgID, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Webhooks delivers events to registered endpoints, signed with their
// secrets. The function fans an event out into one delivery per target.
// Deliveries are kiln's own queue (not River jobs): Start runs a sender
// that claims the due ones in batches under a lease, sends each on its
// own, records the attempts together, and retries each failure on its own
// backoff, so that one failing receiver never delays or repeats another's.
type Webhooks struct {
	Store  *store.Store
	Client *http.Client
	// Retry bounds each delivery's retries; its MaxAge is how long kiln
	// keeps trying (24h by default).
	Retry Retry
	// KeepResponseBytes is how much of a receiver's answer the delivery log
	// keeps. Default: 1 KiB.
	KeepResponseBytes int
	Log               *slog.Logger
	// Metrics, when set, count invocations and deliveries.
	Metrics *Metrics
	// Concurrency is how many deliveries the sender has in flight at
	// once. Default: DeliverConcurrency.
	Concurrency int
	// Poll bounds how long the sender waits without being woken: on
	// SQLite, deliveries made by other processes wake no one. Default: 1s.
	Poll time.Duration
	// Tracer makes each delivery's span (webhook.deliver), in the trace of
	// the function that made it. Default: no spans.
	Tracer trace.TracerProvider

	recorder recorder
}

// DeliverConcurrency is the default of Webhooks.Concurrency: deliveries
// mostly wait on receivers.
const DeliverConcurrency = 100

// Function is the webhook function: every event type, fanned out to the
// endpoints that subscribe to it, and to a batch's own webhook_url.
func (h *Webhooks) Function() Function {
	return Function{Name: WebhookName, Events: store.EventTypes, Handle: h.fanOut}
}

func (h *Webhooks) fanOut(ctx context.Context, ev Event) error {
	eps, _, err := h.Store.WebhookEndpointList(ctx, ev.ProjectID, "", 0)
	if err != nil {
		return err
	}
	t := time.Now().Unix()
	tc := tracing.Inject(ctx)
	var ds []store.Delivery
	add := func(e store.WebhookEndpoint, target string) {
		ds = append(ds, store.Delivery{ID: ids.New(ids.Delivery), EventID: ev.ID, EndpointID: e.ID, URL: target, CreatedAt: t,
			ProjectID: ev.ProjectID, TraceContext: tc})
	}
	for _, e := range eps {
		for _, typ := range e.EventTypes {
			if typ == ev.Type {
				add(e, e.URL)
				break
			}
		}
	}
	if strings.HasPrefix(ev.Type, "batch.") {
		var data struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			return Permanent(fmt.Errorf("event data: %w", err))
		}
		b, err := h.Store.BatchGet(ctx, data.ID)
		if err != nil {
			return err
		}
		if target := b.Metadata[batch.MetadataWebhookURL]; target != "" {
			if e, ok := batch.CoveringEndpoint(eps, target); ok {
				add(e, target)
			} else {
				h.Log.WarnContext(ctx, "batch webhook_url is under no registered endpoint; not delivered", "batch", b.ID, "url", target)
			}
		}
	}
	if len(ds) == 0 {
		return nil
	}
	return h.Store.DeliveriesCreate(ctx, ds)
}

// DeliverArgs is the job of one delivery, from before deliveries were
// kiln's own queue. Such a job does nothing: its delivery is pending, and
// the sender sends it.
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind is stable; never rename it.
func (DeliverArgs) Kind() string { return "webhook_deliver" }

// DeliverWorker completes the delivery jobs left from before deliveries were
// kiln's own queue.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
}

// Work does nothing: the sender sends the job's delivery.
func (w *DeliverWorker) Work(context.Context, *river.Job[DeliverArgs]) error { return nil }

// Start starts the sender: it sends the due deliveries of every process,
// until stop is called. stop stops claiming and waits for the deliveries in
// flight until ctx ends, then cuts them short; a delivery cut short is
// handed back, with no attempt counted, for the next sender.
func (h *Webhooks) Start() (stop func(ctx context.Context)) {
	claiming, stopClaiming := context.WithCancel(context.Background())
	sending, cutSends := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(claiming, sending)
	}()
	return func(ctx context.Context) {
		stopClaiming()
		select {
		case <-done:
		case <-ctx.Done():
			cutSends()
			<-done
		}
		cutSends()
	}
}

// run claims due deliveries while claiming lasts, and sends each under
// sending; it returns once the deliveries in flight are done. It claims
// ahead: up to as many again as it has slots wait in a queue of its own,
// and a slot that frees starts the next delivery from it at once, even
// while a claim runs; claims (each a transaction) come in batches of half
// the slots or more while it is busy, two at once while the last one got
// all it asked for. An idle sender claims at once when woken. What waits
// in its queue when claiming ends is handed back.
func (h *Webhooks) run(claiming, sending context.Context) {
	n := cmp.Or(h.Concurrency, DeliverConcurrency)
	poll := cmp.Or(h.Poll, time.Second)
	// A lease outlasts the attempt: the client's timeout, and a margin to
	// record the outcome. A client without a timeout holds its deliveries
	// for an hour.
	lease := time.Hour
	if h.Client.Timeout > 0 {
		lease = h.Client.Timeout + 30*time.Second
	}
	var (
		inflight atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex // guards queue
		queue    []store.DeliveryToSend
	)
	freed := make(chan struct{}, 1)
	recording := make(chan struct{}, recordAhead*n)
	defer wg.Wait()
	defer func() {
		// Claimed, never sent: another sender may take them at once.
		mu.Lock()
		left := queue
		queue = nil
		mu.Unlock()
		if len(left) == 0 {
			return
		}
		ids := make([]string, len(left))
		for i, d := range left {
			ids[i] = d.Delivery.ID
		}
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		defer cancel()
		if err := h.Store.DeliveriesRelease(ctx, ids); err != nil {
			h.Log.Warn("handing back webhook deliveries failed; they are sent when their leases end", "deliveries", len(ids), "err", err)
		}
	}()
	// start sends what waits in the queue while slots are free; its caller
	// holds mu.
	var start func()
	start = func() {
		for len(queue) > 0 && int(inflight.Load()) < n {
			d := queue[0]
			queue = queue[1:]
			inflight.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The slot frees once the receiver has answered and one of
				// the n places for attempts being recorded is taken: the
				// write of one attempt does not hold up the next send, and
				// a slow database holds up sending rather than piling up
				// attempts. The next delivery waiting starts in its place,
				// without waiting for the loop, which may be claiming.
				free := sync.OnceFunc(func() {
					recording <- struct{}{}
					inflight.Add(-1)
					if claiming.Err() == nil {
						mu.Lock()
						start()
						mu.Unlock()
					}
					select {
					case freed <- struct{}{}:
					default:
					}
				})
				h.deliver(sending, d, free)
				free()
				<-recording
			}()
		}
	}
	// Claims run beside the loop, up to claimsAtOnce at a time: a claim
	// under load takes as long as the slots take to send half of what they
	// hold, so one claim at a time left the queue dry at its end.
	type claimed struct {
		asked int
		ds    []store.DeliveryToSend
		err   error
	}
	var (
		claims   int // claims running
		claimFor int // the deliveries they ask for
	)
	results := make(chan claimed, claimsAtOnce)
	defer func() {
		// A claim still running holds what it claimed: into the queue,
		// which is handed back.
		for ; claims > 0; claims-- {
			c := <-results
			mu.Lock()
			queue = append(queue, c.ds...)
			mu.Unlock()
		}
	}()
	// What claimState's fields say of them.
	backlog, woken, sentSince := false, true, false
	for claiming.Err() == nil {
		wake := h.Store.DeliveriesWake()
		mu.Lock()
		held := int(inflight.Load()) + len(queue) + claimFor
		waiting := len(queue) > 0
		mu.Unlock()
		st := claimState{n: n, held: held, claims: claims, busy: waiting || held >= n, backlog: backlog, woken: woken, sentSince: sentSince}
		if claimNow(st) {
			room := st.room()
			woken, sentSince = false, false
			claims++
			claimFor += room
			go func() {
				ds, err := h.Store.DeliveriesClaim(claiming, room, lease)
				results <- claimed{asked: room, ds: ds, err: err}
			}()
			continue
		}
		if claims > 0 || backlog || st.busy {
			// Busy: wait for a claim to end or a slot to free (or for
			// claiming to end).
			select {
			case <-claiming.Done():
			case <-freed:
				sentSince = true
			case c := <-results:
				claims--
				claimFor -= c.asked
				if c.err != nil {
					if claiming.Err() == nil {
						h.Log.Warn("claiming webhook deliveries failed; trying again", "err", c.err)
						sleep(claiming, poll)
					}
					backlog, woken = false, true
					continue
				}
				backlog = len(c.ds) == c.asked
				mu.Lock()
				queue = append(queue, c.ds...)
				start()
				mu.Unlock()
			}
			continue
		}
		wait := poll
		if at, ok, err := h.Store.DeliveryNextDue(claiming); err == nil && ok {
			wait = min(wait, max(time.Until(time.UnixMilli(at)), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-claiming.Done():
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		woken = true
	}
}

// claimsAtOnce is how many claims the sender runs at once while its queue
// is busy.
const claimsAtOnce = 2

// claimState is what the sender knows when it decides whether to claim.
type claimState struct {
	n      int // the sender's slots
	held   int // deliveries sending, queued, or asked for by claims running
	claims int // claims running
	// busy: deliveries wait in the queue, or every slot sends.
	busy bool
	// backlog: the last claim got all it asked for, so more may wait.
	backlog bool
	// woken: the sender has just started, woke from idling, or waited
	// after a failed claim.
	woken bool
	// sentSince: a slot freed since the last claim began.
	sentSince bool
}

// room is how many deliveries a claim asks for: what 2n leaves.
func (st claimState) room() int { return 2*st.n - st.held }

// claimNow reports whether the sender starts a claim: there is room for
// one worth its transaction (2n deliveries held at most, and half of n
// once every slot sends); and either none runs and there is reason to
// look (woken, or busy with a slot freed since the last), or more surely
// waits (a second claim beside the first). A sender that is idle and not
// woken never claims, whatever its last claim got.
func claimNow(st claimState) bool {
	room := st.room()
	fits := room > 0 && (st.held < st.n || room >= st.n/2)
	due := st.claims == 0 && (st.woken || st.busy && st.sentSince) || st.claims < claimsAtOnce && st.backlog
	return fits && due
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver sends a claimed delivery once and records the attempt.
//
// sent is called once the receiver has answered (or the attempt failed),
// before the attempt is recorded: the sender's slot is free then, while the
// delivery's lease holds it until the attempt is written.
func (h *Webhooks) deliver(ctx context.Context, ts store.DeliveryToSend, sent func()) {
	d, e, ev := ts.Delivery, ts.Endpoint, ts.Event
	// Without tracing, no span: a no-op one still costs its attributes
	// and the parent's extraction, on every delivery.
	var span trace.Span = noop.Span{}
	if _, off := h.Tracer.(noop.TracerProvider); h.Tracer != nil && !off {
		ctx, span = tracing.StartBatchWith(ctx, h.Tracer, d.TraceContext, "webhook.deliver",
			attribute.String("kiln.delivery.id", d.ID), attribute.String("kiln.event.type", ev.Type))
	}
	defer span.End()
	attempt := store.DeliveryAttempt{Attempts: d.Attempts + 1}
	if ts.EndpointDeleted {
		sent()
		attempt.Status, attempt.Error = store.DeliveryFailed, "the endpoint was deleted"
		h.recordOrLog(ctx, d, attempt)
		return
	}
	began := time.Now()
	sendErr := h.Send(ctx, e, d.URL, EventOf(ev), &attempt)
	took := time.Since(began).Seconds()
	sent()
	n := int(ts.RoundAttempts) + 1
	switch {
	case sendErr != nil && ctx.Err() != nil:
		// The sender is stopping: the attempt was cut short, not failed.
		// Another sender takes the delivery at once.
		release, cancel := context.WithTimeout(context.Background(), recordTimeout)
		defer cancel()
		if err := h.Store.DeliveriesRelease(release, []string{d.ID}); err != nil {
			h.Log.Warn("handing back a webhook delivery failed; it is sent when its lease ends", "delivery", d.ID, "err", err)
		}
	case sendErr == nil:
		h.Metrics.delivery("succeeded", took)
		attempt.Status = store.DeliverySucceeded
		if h.Log.Enabled(ctx, slog.LevelDebug) {
			h.Log.DebugContext(ctx, "webhook delivered", "delivery", d.ID, "event", ev.ID, "url", d.URL, "attempt", attempt.Attempts)
		}
		h.recordOrLog(ctx, d, attempt)
	case errors.As(sendErr, new(*RefusedError)), h.Retry.exhausted(n, time.UnixMilli(ts.RoundStarted)):
		// A refusal by policy stays one until the configuration changes:
		// retrying it for a day would only delay the news.
		h.Metrics.delivery("failed", took)
		attempt.Status, attempt.Error = store.DeliveryFailed, sendErr.Error()
		span.SetStatus(codes.Error, sendErr.Error())
		h.Log.WarnContext(ctx, "webhook delivery gave up", "delivery", d.ID, "event", ev.ID, "url", d.URL, "attempts", attempt.Attempts, "err", sendErr)
		h.recordOrLog(ctx, d, attempt)
	default:
		h.Metrics.delivery("retry", took)
		attempt.Status, attempt.Error = store.DeliveryPending, sendErr.Error()
		attempt.NextAttemptAt = time.Now().Add(h.Retry.Delay(n)).UnixMilli()
		span.SetStatus(codes.Error, sendErr.Error())
		h.Log.InfoContext(ctx, "webhook delivery failed; will retry", "delivery", d.ID, "url", d.URL, "attempt", attempt.Attempts, "err", sendErr)
		h.recordOrLog(ctx, d, attempt)
	}
}

// recordOrLog records an attempt. One that cannot be recorded is logged:
// the delivery stays pending, and is sent again when its lease ends.
func (h *Webhooks) recordOrLog(ctx context.Context, d store.Delivery, a store.DeliveryAttempt) {
	if err := h.record(d, a); err != nil {
		h.Log.ErrorContext(ctx, "recording a webhook attempt failed; the delivery is sent again when its lease ends", "delivery", d.ID, "err", err)
	}
}

// record records an attempt, gathered with the attempts other deliveries
// record at the same time into one write. A delivery no longer pending (a
// duplicate job finished it) is left as it is.
func (h *Webhooks) record(d store.Delivery, a store.DeliveryAttempt) error {
	w := &recording{of: store.DeliveryAttemptOf{DeliveryID: d.ID, Attempt: a}, done: make(chan struct{})}
	h.recorder.add(h.Store.DeliveriesRecord, w)
	<-w.done
	return w.err
}

// recordAhead is how many attempts per slot may wait to be written while
// the sender goes on sending.
const recordAhead = 4

// maxRecordBatch bounds the attempts written at once.
const maxRecordBatch = 400

// recordTimeout bounds one write of attempts. The write goes on when the
// job that asked for it is cancelled: the attempt happened.
const recordTimeout = 30 * time.Second

// recorder writes the attempts of deliveries (group commit): the attempts
// that arrive while a write runs, or while the next one gathers, go in one
// write, so that many deliveries at once cost few writes. Each write first
// gathers attempts for up to recordGather, until recordBatch wait: without
// it, a sender busy with many quick receivers wrote 3 or 4 attempts a
// transaction, and spent as much on the transactions as on the attempts.
// An attempt is recorded that much later; its receiver has its event
// already. A goroutine writes while attempts wait and ends when none do.
type recorder struct {
	mu      sync.Mutex
	waiting []*recording
	writing bool
	full    chan struct{} // signalled when recordBatch attempts wait
	gather  time.Duration // recordGather unless set
}

// recordWrite writes attempts: Store.DeliveriesRecord.
type recordWrite func(context.Context, []store.DeliveryAttemptOf) ([]bool, error)

// recordGather is how long a write of attempts waits for more to arrive.
const recordGather = 2 * time.Millisecond

// recordBatch is how many waiting attempts end the gathering at once.
const recordBatch = 64

// recording is one attempt waiting to be written.
type recording struct {
	of   store.DeliveryAttemptOf
	done chan struct{} // closed once written, or failed (err)
	err  error
}

func (r *recorder) add(write recordWrite, w *recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting = append(r.waiting, w)
	if r.full == nil {
		r.full = make(chan struct{}, 1)
	}
	if len(r.waiting) == recordBatch {
		select {
		case r.full <- struct{}{}:
		default:
		}
	}
	if !r.writing {
		r.writing = true
		go r.write(write, cmp.Or(r.gather, recordGather))
	}
}

// write writes the waiting attempts until none wait.
func (r *recorder) write(write recordWrite, wait time.Duration) {
	gather := time.NewTimer(wait)
	defer gather.Stop()
	for {
		r.mu.Lock()
		short := len(r.waiting) < recordBatch
		r.mu.Unlock()
		if short {
			gather.Reset(wait)
			select {
			case <-gather.C:
			case <-r.full:
			}
		}
		r.mu.Lock()
		var batch, rest []*recording
		seen := map[string]bool{}
		for _, w := range r.waiting {
			// Two attempts of one delivery (duplicate jobs) go in turn.
			if len(batch) == maxRecordBatch || seen[w.of.DeliveryID] {
				rest = append(rest, w)
				continue
			}
			seen[w.of.DeliveryID] = true
			batch = append(batch, w)
		}
		r.waiting = rest
		select {
		case <-r.full: // a signal for the attempts just taken
		default:
		}
		if len(batch) == 0 {
			r.writing = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		of := make([]store.DeliveryAttemptOf, len(batch))
		for i, w := range batch {
			of[i] = w.of
		}
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		_, err := write(ctx, of)
		cancel()
		for _, w := range batch {
			w.err = err
			close(w.done)
		}
	}
}

// RefusedError is a delivery the SSRF guard refused when it connected: the
// target resolved to a private, loopback or otherwise non-public address.
// Such a delivery fails at once, not retried.
type RefusedError struct {
	Blocked *netguard.BlockedError
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused: %s is not a public address; kiln delivers to private addresses only with %s", e.Blocked.Addr, netguard.AllowSetting)
}

func (e *RefusedError) Unwrap() error { return e.Blocked }

// Send posts the event to target once, signed with the endpoint's
// secrets, and fills in a's response fields; a 2xx answer is success.
func (h *Webhooks) Send(ctx context.Context, e store.WebhookEndpoint, target string, ev Event, a *store.DeliveryAttempt) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	var sigs []string
	for _, secret := range e.Secrets() {
		sig, err := Sign(secret, ev.ID, ts, body)
		if err != nil {
			return err
		}
		sigs = append(sigs, sig)
	}
	sig := strings.Join(sigs, " ")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kiln-webhooks")
	// The message ID is the event's: retries and redeliveries reuse it, so
	// that receivers can drop duplicates.
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := h.Client.Do(req)
	if err != nil {
		var blocked *netguard.BlockedError
		if errors.As(err, &blocked) {
			return &RefusedError{Blocked: blocked}
		}
		return err
	}
	defer resp.Body.Close()
	keep := h.KeepResponseBytes
	if keep <= 0 {
		keep = 1 << 10
	}
	// A huge answer is cut: the rest is never read.
	got, truncated, _ := netguard.ReadLimited(resp.Body, int64(keep))
	a.ResponseStatus = int64(resp.StatusCode)
	a.ResponseBody = strings.ToValidUTF8(string(got), "\uFFFD")
	if truncated {
		a.ResponseBody += "…"
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("receiver answered %d; redirects are not followed (to %q)", resp.StatusCode, resp.Header.Get("Location"))
	default:
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
}
