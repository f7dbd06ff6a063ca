package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// SQSClient is the part of aws-sdk-go-v2's SQS client that InboxSQS uses.
type SQSClient interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

const (
	// sqsWaitSeconds is the long poll of each ReceiveMessage, SQS's longest.
	sqsWaitSeconds = 20
	// sqsVisibilityDefault is the visibility timeout assumed when the
	// queue reports none.
	sqsVisibilityDefault = 30 * time.Second
	// sqsPollDefault is how often a message's import is looked at while it
	// runs.
	sqsPollDefault = 100 * time.Millisecond
	// sqsCallTimeout bounds the calls other than the long poll.
	sqsCallTimeout = 30 * time.Second
)

// InboxSQS feeds the inbox from an SQS queue of S3 event notifications,
// sent by the bucket to the queue directly or through an SNS topic. Each
// created inbox object goes the inbox's one way: its object.created event,
// emitted once per object version however often it is notified (the dedupe
// key of ObjectDedupeKey), and the inbox_import function that the event
// invokes. So several kiln processes may consume one queue, and a
// notification that comes twice, or also by polling, imports the object
// once.
//
// A message is deleted only once every object it reports is imported
// (its inbox_import invocation succeeded): until then its visibility
// timeout is extended, every third of it, so that a large import keeps
// it. A message kiln cannot use is poison: one that is no S3 notification,
// or whose import became a dead letter. It is logged and counted with its
// reason and handed back at once, so that SQS moves it to the queue's
// dead-letter queue after the queue's maxReceiveCount receives. S3's
// s3:TestEvent is deleted and otherwise ignored. Any other failure (the
// database or the bucket unreachable) leaves the message to come back
// after its visibility timeout.
type InboxSQS struct {
	Client   SQSClient
	QueueURL string
	Inbox    *Inbox
	// Store holds the events and invocations.
	Store *store.Store
	// Registry runs inbox_import for an event that has no invocation (one
	// written by a process that routes no events, as the Lambda handler).
	Registry *Registry
	// Concurrency is how many messages are handled at once. Default:
	// config.InboxSQSConcurrencyDefault.
	Concurrency int
	// Poll is how often a running import is looked at. Default: 100ms.
	Poll    time.Duration
	Metrics *SQSMetrics
	Log     *slog.Logger

	visibility  time.Duration
	maxReceives int // the redrive policy's maxReceiveCount; 0 without one
	cancel      context.CancelFunc
	done        chan struct{}
}

// Start reads the queue's visibility timeout and redrive policy and starts
// consuming. It fails when the queue cannot be read, or the inbox's bucket
// receives no notifications (it is not S3).
func (q *InboxSQS) Start(ctx context.Context) error {
	if q.Inbox == nil || q.Inbox.Prefix == "" {
		return errors.New("inbox: an SQS queue needs an inbox prefix (KILN_INBOX_PREFIX)")
	}
	if _, ok := q.Inbox.Bucket.(objectstore.Locator); !ok {
		return fmt.Errorf("inbox: SQS queue %s: %w", q.QueueURL, ErrNotNotifiable)
	}
	if q.Concurrency <= 0 {
		q.Concurrency = config.InboxSQSConcurrencyDefault
	}
	if q.Poll <= 0 {
		q.Poll = sqsPollDefault
	}
	callCtx, cancel := context.WithTimeout(ctx, sqsCallTimeout)
	defer cancel()
	out, err := q.Client.GetQueueAttributes(callCtx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.QueueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout, types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		return fmt.Errorf("inbox: SQS queue %s: %w", q.QueueURL, err)
	}
	q.visibility = sqsVisibilityDefault
	if s, err := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]); err == nil && s > 0 {
		q.visibility = time.Duration(s) * time.Second
	}
	var deadLetter string
	q.maxReceives, deadLetter = parseRedrivePolicy(out.Attributes[string(types.QueueAttributeNameRedrivePolicy)])
	if q.maxReceives == 0 {
		q.Log.WarnContext(ctx, "inbox: the SQS queue has no redrive policy: a message kiln cannot use comes back for ever; give it a dead-letter queue",
			"queue", q.QueueURL)
	}
	q.Log.InfoContext(ctx, "inbox: consuming an SQS queue", "queue", q.QueueURL, "visibility_timeout", q.visibility,
		"max_receive_count", q.maxReceives, "dead_letter_queue", deadLetter, "concurrency", q.Concurrency)

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	q.cancel, q.done = stop, make(chan struct{})
	go func() {
		defer close(q.done)
		q.run(runCtx)
	}()
	return nil
}

// Stop stops receiving, and hands the messages in hand back to the queue
// at once, so that another consumer takes them (their imports go on in
// the job workers).
func (q *InboxSQS) Stop() {
	if q.cancel == nil {
		return
	}
	q.cancel()
	<-q.done
}

// parseRedrivePolicy reads maxReceiveCount (a number, or a string as some
// servers give it) and the dead-letter queue from a RedrivePolicy.
func parseRedrivePolicy(policy string) (int, string) {
	var p struct {
		MaxReceiveCount     json.Number `json:"maxReceiveCount"`
		DeadLetterTargetArn string      `json:"deadLetterTargetArn"`
	}
	if policy == "" || json.Unmarshal([]byte(policy), &p) != nil {
		return 0, ""
	}
	n, err := strconv.Atoi(string(p.MaxReceiveCount))
	if err != nil || n < 1 {
		return 0, ""
	}
	return n, p.DeadLetterTargetArn
}

// run receives until ctx ends, handling up to Concurrency messages at once.
func (q *InboxSQS) run(ctx context.Context) {
	slots := make(chan struct{}, q.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := time.Duration(0)
	for {
		// Receive only as many messages as there are free slots: a
		// received message's visibility timeout runs from now.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
	fill:
		for free < min(q.Concurrency, 10) {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		out, err := q.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(q.QueueURL), MaxNumberOfMessages: int32(free), WaitTimeSeconds: sqsWaitSeconds,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		var msgs []types.Message
		if err == nil {
			msgs = out.Messages
		}
		for range free - len(msgs) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			q.Log.WarnContext(ctx, "inbox: SQS receive failed", "queue", q.QueueURL, "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				q.handle(ctx, m)
			}()
		}
	}
}

// errPoison is a message kiln cannot use, however often it tries.
type errPoison struct {
	reason string // for the metric: unrecognised, import_failed
	err    error
}

func (e *errPoison) Error() string { return e.err.Error() }
func (e *errPoison) Unwrap() error { return e.err }

// Outcomes of a message, as counted.
const (
	sqsImported   = "imported"
	sqsIgnored    = "ignored"
	sqsTestEvent  = "test_event"
	sqsPoison     = "poison"
	sqsDeadLetter = "dead_letter"
	sqsRetry      = "retry"
	sqsReleased   = "released"
)

// handle processes one message, keeping it invisible meanwhile, and
// deletes it, hands it back or leaves it as the outcome says.
func (q *InboxSQS) handle(ctx context.Context, m types.Message) {
	receives, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	log := q.Log.With("queue", q.QueueURL, "message", aws.ToString(m.MessageId), "receive_count", receives)

	keep, stopKeeping := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		q.keepInvisible(keep, m, log)
	}()
	outcome, err := q.process(ctx, aws.ToString(m.Body), log)
	stopKeeping()
	<-kept

	// The message's fate is settled even while shutting down.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sqsCallTimeout)
	defer cancel()
	var poison *errPoison
	switch {
	case err == nil:
		if _, err := q.Client.DeleteMessage(callCtx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			// Its visibility lapsed and another consumer has it: that one
			// finds the objects imported and deletes it.
			log.WarnContext(ctx, "inbox: could not delete a handled SQS message", "err", err)
		}
		q.Metrics.message(outcome)
	case ctx.Err() != nil:
		q.release(callCtx, m, log)
		q.Metrics.message(sqsReleased)
	case errors.As(err, &poison):
		q.Metrics.message(sqsPoison)
		q.Metrics.poisoned(poison.reason)
		if q.maxReceives > 0 && receives >= q.maxReceives {
			q.Metrics.message(sqsDeadLetter)
			log.ErrorContext(ctx, "inbox: SQS message goes to the dead-letter queue", "reason", poison.reason, "err", err,
				"max_receive_count", q.maxReceives)
		} else {
			log.WarnContext(ctx, "inbox: SQS message kiln cannot use; handed back for the dead-letter queue", "reason", poison.reason, "err", err,
				"max_receive_count", q.maxReceives)
		}
		if q.maxReceives > 0 {
			// Back at once: each receive brings it nearer the dead-letter
			// queue. Without one, it waits out its visibility timeout.
			q.release(callCtx, m, log)
		}
	default:
		q.Metrics.message(sqsRetry)
		log.WarnContext(ctx, "inbox: SQS message failed; it comes back after its visibility timeout", "err", err)
	}
}

// release makes a message visible again at once.
func (q *InboxSQS) release(ctx context.Context, m types.Message, log *slog.Logger) {
	if _, err := q.Client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(q.QueueURL),
		ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		log.WarnContext(ctx, "inbox: could not hand an SQS message back", "err", err)
	}
}

// keepInvisible extends m's visibility timeout every third of it until ctx
// ends.
func (q *InboxSQS) keepInvisible(ctx context.Context, m types.Message, log *slog.Logger) {
	t := time.NewTicker(q.visibility / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, sqsCallTimeout)
		_, err := q.Client.ChangeMessageVisibility(callCtx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(q.QueueURL),
			ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(q.visibility / time.Second)})
		cancel()
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "inbox: could not extend an SQS message's visibility; another consumer may take it", "err", err)
		}
	}
}

// process handles a message's body and returns its outcome: imported,
// ignored or test_event.
func (q *InboxSQS) process(ctx context.Context, body string, log *slog.Logger) (string, error) {
	note, test, err := ParseS3Notification([]byte(body))
	if err != nil {
		return "", &errPoison{reason: "unrecognised", err: err}
	}
	if test {
		log.InfoContext(ctx, "inbox: S3 test event ignored")
		return sqsTestEvent, nil
	}
	loc := q.Inbox.Bucket.(objectstore.Locator)
	outcome := sqsIgnored
	for _, r := range note.Records {
		if !strings.Contains(r.EventName, "ObjectCreated:") {
			continue
		}
		key, mine := loc.Locate(r.S3.Bucket.Name, r.S3.Object.URLDecodedKey)
		if !mine {
			log.DebugContext(ctx, "inbox: notification of another bucket or prefix ignored", "bucket", r.S3.Bucket.Name, "key", r.S3.Object.URLDecodedKey)
			continue
		}
		ev, _, ok, err := q.Inbox.SeenEvent(ctx, key, strings.Trim(r.S3.Object.ETag, `"`), r.S3.Object.Size)
		if err != nil {
			return "", err
		}
		if !ok {
			continue // not an inbox object, or imported and gone
		}
		if err := q.imported(ctx, ev); err != nil {
			return "", fmt.Errorf("inbox object %s: %w", key, err)
		}
		outcome = sqsImported
	}
	return outcome, nil
}

// imported waits until ev's inbox_import invocation has succeeded. A dead
// one is poison.
func (q *InboxSQS) imported(ctx context.Context, ev store.Event) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		inv, err := q.Store.InvocationOf(ctx, ev.ID, InboxImportName)
		if errors.Is(err, store.ErrNotFound) {
			return q.importHere(ctx, ev)
		}
		if err != nil {
			return err
		}
		switch inv.Status {
		case store.InvocationSucceeded:
			return nil
		case store.InvocationDead:
			return &errPoison{reason: "import_failed", err: fmt.Errorf("its import is a dead letter (invocation %s): %s", inv.ID, inv.LastError)}
		}
		t.Reset(q.Poll)
	}
}

// importHere runs inbox_import on an event that no invocation follows, as
// the Lambda handler does.
func (q *InboxSQS) importHere(ctx context.Context, ev store.Event) error {
	fn, ok := q.Registry.Lookup(InboxImportName)
	if !ok {
		return fmt.Errorf("no %s function is registered", InboxImportName)
	}
	err := fn.Handle(ctx, EventOf(ev))
	if IsPermanent(err) {
		return &errPoison{reason: "import_failed", err: err}
	}
	return err
}

// ParseS3Notification reads an S3 event notification, as S3 sends it to an
// SQS queue: directly, or wrapped in an SNS notification's Message. test
// reports S3's s3:TestEvent (sent once when a notification is configured),
// which carries no records. Anything else is an error.
func ParseS3Notification(body []byte) (note events.S3Event, test bool, err error) {
	var p struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
		Event string `json:"Event"`
		// An SNS notification's envelope.
		Type     string `json:"Type"`
		TopicArn string `json:"TopicArn"`
		Message  string `json:"Message"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return note, false, fmt.Errorf("not an S3 event notification: %v", err)
	}
	switch {
	case p.Type == "Notification" && p.TopicArn != "":
		note, test, err = ParseS3Notification([]byte(p.Message))
		if err != nil {
			return note, false, fmt.Errorf("SNS notification from %s: %w", p.TopicArn, err)
		}
		return note, test, nil
	case p.Event == "s3:TestEvent":
		return note, true, nil
	case len(p.Records) == 0:
		return note, false, errors.New("not an S3 event notification: no Records")
	}
	for _, r := range p.Records {
		if !s3Sources[r.EventSource] {
			return note, false, fmt.Errorf("not an S3 event notification: a record with eventSource %q", r.EventSource)
		}
	}
	if err := json.Unmarshal(body, &note); err != nil {
		return note, false, fmt.Errorf("S3 event notification: %v", err)
	}
	return note, false, nil
}

// s3Sources are the eventSource values of S3 notification records: AWS's,
// and MinIO's.
var s3Sources = map[string]bool{"aws:s3": true, "minio:s3": true}

// SQSMetrics count what InboxSQS does. A nil *SQSMetrics counts nothing.
type SQSMetrics struct {
	messages *prometheus.CounterVec
	poison   *prometheus.CounterVec
}

// NewSQSMetrics registers the SQS inbox's metrics with reg.
func NewSQSMetrics(reg prometheus.Registerer) *SQSMetrics {
	m := &SQSMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_inbox_sqs_messages_total",
			Help: "SQS inbox messages by outcome: imported, ignored (no inbox object), test_event, poison (kiln cannot use it), " +
				"dead_letter (poison at its last receive before the dead-letter queue), retry (failed, comes back) or released (handed back at shutdown).",
		}, []string{"outcome"}),
		poison: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_inbox_sqs_poison_total",
			Help: "SQS inbox messages kiln cannot use, by reason: unrecognised (no S3 notification) or import_failed (its import is a dead letter).",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.messages, m.poison)
	return m
}

func (m *SQSMetrics) message(outcome string) {
	if m != nil {
		m.messages.WithLabelValues(outcome).Inc()
	}
}

func (m *SQSMetrics) poisoned(reason string) {
	if m != nil {
		m.poison.WithLabelValues(reason).Inc()
	}
}
