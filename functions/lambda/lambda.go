// Package lambda runs kiln's functions as an AWS Lambda handler: the same
// Registry that kiln serve runs as River jobs, called in-process for each
// invocation of the Lambda function. cmd/kiln-lambda is its main.
//
// Handler.Invoke takes what Lambda delivers:
//
//   - an S3 event notification, from AWS S3 (eventSource aws:s3) or from
//     MinIO's webhook or Lambda target (minio:s3): each created inbox object
//     emits its object.created event, deduplicated as Inbox.Notify does,
//     and is imported at once by the inbox_import function;
//   - an SQS event whose message bodies are S3 notifications or kiln events;
//   - a kiln event ({"object":"event","type":…,"id":…}) relayed from kiln,
//     e.g. through EventBridge or SQS: every function subscribed to its
//     type runs;
//   - a function invocation ({"object":"function.invocation","function":…,
//     "event":{…}}), which kiln serve sends for a function configured to run
//     remotely (KILN_REMOTE_FUNCTIONS, functions.Remote): that one function
//     runs on the event. An error marked permanent is answered with the
//     errorType functions.PermanentErrorType, so that kiln makes the
//     invocation a dead letter at once.
//
// Every function is idempotent on its event, so an error is simply
// returned: Lambda's own retries take the place of River's backoff, and its
// dead-letter queue or on-failure destination that of the dead letters.
//
// The process that runs a Handler must NOT route the store's events to the
// registry with store.SetDispatcher. With a dispatcher, every event this
// process writes (object.created, file.created) would also get invocations
// enqueued as River jobs, and kiln serve's workers would run those functions
// a second time. Without one, events are recorded and trigger nothing; the
// handler runs the functions itself. Two consequences follow. Jobs that are
// not invocations are still enqueued for kiln serve to run: a batch's
// validation and expiry, and webhook deliveries. And events written here,
// such as the file.created of an imported object, invoke no function unless
// they are relayed back to HandleEvent.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Handler runs kiln's functions for Lambda invocations.
type Handler struct {
	Registry *functions.Registry
	// Inbox is the inbox whose objects S3 notifications report. Its bucket
	// must be an objectstore.Locator (S3) for HandleS3.
	Inbox *functions.Inbox
	// Store holds the events; it must have no dispatcher (see the package
	// comment).
	Store *store.Store
	Log   *slog.Logger
}

// Result is what Invoke answers Lambda: the kind of payload it handled and
// how many records (notification records, SQS messages, events) it held.
type Result struct {
	Kind    string `json:"kind"`
	Records int    `json:"records"`
}

// Payload kinds.
const (
	KindS3     = "s3"
	KindSQS    = "sqs"
	KindEvent  = "event"
	KindS3Test = "s3:TestEvent"
	// KindInvocation is one function's invocation, from kiln serve.
	KindInvocation = "invocation"
)

// s3Sources are the eventSource values of S3 notification records.
var s3Sources = map[string]bool{"aws:s3": true, "minio:s3": true}

// expected names the payloads Invoke takes, for its errors.
const expected = `want an S3 event notification (Records with eventSource aws:s3 or minio:s3), ` +
	`an SQS event (Records with eventSource aws:sqs) whose bodies are either of the others, ` +
	`a kiln event ({"object":"event","type":...,"id":...}), ` +
	`or a function invocation ({"object":"function.invocation","function":...,"event":{...}})`

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// Invoke is the Lambda entry point: it finds what payload holds and hands
// it to HandleS3, HandleEvent, or both for the bodies of an SQS event.
// Anything else is an error.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	kind, n, err := classify(payload, true)
	if err != nil {
		return nil, err
	}
	res := Result{Kind: kind, Records: n}
	if kind != KindSQS {
		err := h.handle(ctx, kind, payload)
		if kind == KindInvocation && functions.IsPermanent(err) {
			// kiln reads the type: a dead letter at once.
			return nil, messages.InvokeResponse_Error{Message: err.Error(), Type: functions.PermanentErrorType}
		}
		return res, err
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("lambda: SQS event: %w", err)
	}
	var errs []error
	for _, m := range ev.Records {
		body := []byte(m.Body)
		kind, _, err := classify(body, false)
		if err == nil {
			err = h.handle(ctx, kind, body)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("SQS message %s: %w", m.MessageId, err))
		}
	}
	return res, errors.Join(errs...)
}

// handle decodes a classified payload of one kind (not SQS) and handles it.
func (h *Handler) handle(ctx context.Context, kind string, payload []byte) error {
	switch kind {
	case KindS3:
		var ev events.S3Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("lambda: S3 event notification: %w", err)
		}
		return h.HandleS3(ctx, ev)
	case KindEvent:
		var ev functions.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("lambda: kiln event: %w", err)
		}
		return h.HandleEvent(ctx, ev)
	case KindInvocation:
		var inv functions.Invocation
		if err := json.Unmarshal(payload, &inv); err != nil {
			return fmt.Errorf("lambda: function invocation: %w", err)
		}
		return h.HandleInvocation(ctx, inv)
	case KindS3Test:
		// S3 sends it once when a notification is configured.
		h.log().InfoContext(ctx, "S3 test event ignored")
		return nil
	}
	return fmt.Errorf("lambda: unexpected payload kind %q", kind)
}

// classify tells what a payload is and how many records it holds. SQS
// events are accepted only at the top (sqs), never inside a message body.
func classify(payload []byte, sqs bool) (string, int, error) {
	var p struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
		Object   string          `json:"object"`
		Type     string          `json:"type"`
		ID       string          `json:"id"`
		Function string          `json:"function"`
		InvEvent json.RawMessage `json:"event"` // a function invocation's
		// Event is set in S3's test event: {"Service":"Amazon S3","Event":"s3:TestEvent",...}.
		Event string `json:"Event"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", 0, fmt.Errorf("lambda: unrecognised payload (%v): %s", err, expected)
	}
	switch {
	case len(p.Records) > 0:
		s3, sqsRecords := 0, 0
		var other []string
		for _, r := range p.Records {
			switch {
			case s3Sources[r.EventSource]:
				s3++
			case r.EventSource == "aws:sqs":
				sqsRecords++
			default:
				other = append(other, fmt.Sprintf("%q", r.EventSource))
			}
		}
		switch {
		case s3 == len(p.Records):
			return KindS3, s3, nil
		case sqsRecords == len(p.Records) && sqs:
			return KindSQS, sqsRecords, nil
		case sqsRecords == len(p.Records):
			return "", 0, fmt.Errorf("lambda: an SQS event inside an SQS message: %s", expected)
		case len(other) > 0:
			return "", 0, fmt.Errorf("lambda: unrecognised records with eventSource %s: %s", strings.Join(other, ", "), expected)
		default:
			return "", 0, fmt.Errorf("lambda: records mix S3 notifications and SQS messages: %s", expected)
		}
	case p.Object == functions.InvocationObject:
		if p.Function == "" || len(p.InvEvent) == 0 {
			return "", 0, fmt.Errorf("lambda: a function invocation needs a function and an event: %s", expected)
		}
		return KindInvocation, 1, nil
	case p.Object == "event" && p.Type != "":
		if p.ID == "" {
			return "", 0, fmt.Errorf("lambda: kiln event %s has no id: %s", p.Type, expected)
		}
		return KindEvent, 1, nil
	case p.Event == "s3:TestEvent":
		return KindS3Test, 0, nil
	}
	return "", 0, fmt.Errorf("lambda: unrecognised payload: %s", expected)
}

// HandleS3 imports the inbox objects that an S3 event notification reports
// created: each emits its object.created event (once, however often it is
// notified or polled) and is imported by the inbox_import function at once.
// Objects of another bucket or prefix, sidecars and other events are
// skipped. An error for one object does not stop the others; all are
// returned, so that Lambda retries, which is safe since importing is
// idempotent.
func (h *Handler) HandleS3(ctx context.Context, ev events.S3Event) error {
	loc, ok := h.Inbox.Bucket.(objectstore.Locator)
	if !ok {
		return functions.ErrNotNotifiable
	}
	fn, ok := h.Registry.Lookup(functions.InboxImportName)
	if !ok {
		return fmt.Errorf("lambda: no %s function is registered", functions.InboxImportName)
	}
	var errs []error
	for _, r := range ev.Records {
		if !strings.Contains(r.EventName, "ObjectCreated:") {
			continue
		}
		key, mine := loc.Locate(r.S3.Bucket.Name, r.S3.Object.URLDecodedKey)
		if !mine {
			h.log().DebugContext(ctx, "S3 notification of another bucket or prefix ignored", "bucket", r.S3.Bucket.Name, "key", r.S3.Object.URLDecodedKey)
			continue
		}
		if err := h.importObject(ctx, fn, key, strings.Trim(r.S3.Object.ETag, `"`), r.S3.Object.Size); err != nil {
			errs = append(errs, fmt.Errorf("inbox object %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// importObject emits the object version's event, unless it was emitted
// before, and runs fn on it.
func (h *Handler) importObject(ctx context.Context, fn functions.Function, key, etag string, size int64) error {
	// An event emitted before still needs importing here: an earlier try
	// may have failed.
	ev, _, ok, err := h.Inbox.SeenEvent(ctx, key, etag, size)
	if err != nil {
		return err
	}
	if !ok {
		h.log().DebugContext(ctx, "not an inbox object, or already gone; ignored", "key", key)
		return nil
	}
	return h.run(ctx, fn, functions.EventOf(ev))
}

// HandleEvent runs every function subscribed to ev.Type on ev, and returns
// their errors joined. An event the store does not hold yet is recorded
// first, under its own id, so that what the functions write about it
// (webhook deliveries, which kiln serve sends) finds it.
func (h *Handler) HandleEvent(ctx context.Context, ev functions.Event) error {
	if ev.ID == "" || ev.Type == "" {
		return fmt.Errorf("lambda: an event needs an id and a type")
	}
	if err := h.record(ctx, ev); err != nil {
		return err
	}
	var errs []error
	for _, name := range h.Registry.Functions(ev.Type) {
		fn, ok := h.Registry.Lookup(name)
		if !ok {
			continue
		}
		if err := h.run(ctx, fn, ev); err != nil {
			errs = append(errs, fmt.Errorf("function %s on %s: %w", name, ev.ID, err))
		}
	}
	return errors.Join(errs...)
}

// HandleInvocation runs one function, the invocation's, on its event,
// recorded first as HandleEvent does. A function this handler does not
// have is a permanent error.
func (h *Handler) HandleInvocation(ctx context.Context, inv functions.Invocation) error {
	ev := inv.Event
	if ev.ID == "" || ev.Type == "" {
		return functions.Permanent(fmt.Errorf("lambda: the event of an invocation of %s needs an id and a type", inv.Function))
	}
	ev.ProjectID = inv.ProjectID
	fn, ok := h.Registry.Lookup(inv.Function)
	if !ok {
		return functions.Permanent(fmt.Errorf("lambda: no function %q in this handler", inv.Function))
	}
	if err := h.record(ctx, ev); err != nil {
		return err
	}
	return h.run(ctx, fn, ev)
}

// record writes ev to the store unless it is there already.
func (h *Handler) record(ctx context.Context, ev functions.Event) error {
	_, err := h.Store.EventGet(ctx, ev.ID)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	_, err = h.Store.EventEmit(ctx, &store.Event{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Data: data})
	if err != nil {
		// Recorded meanwhile by another invocation of the same event?
		if _, getErr := h.Store.EventGet(ctx, ev.ID); getErr == nil {
			return nil
		}
		return err
	}
	return nil
}

// run calls one function and logs the outcome.
func (h *Handler) run(ctx context.Context, fn functions.Function, ev functions.Event) error {
	start := time.Now()
	err := fn.Handle(ctx, ev)
	if err != nil {
		h.log().WarnContext(ctx, "function failed", "function", fn.Name, "event", ev.ID, "type", ev.Type, "took", time.Since(start), "err", err)
	} else {
		h.log().DebugContext(ctx, "function ran", "function", fn.Name, "event", ev.ID, "type", ev.Type, "took", time.Since(start))
	}
	return err
}
