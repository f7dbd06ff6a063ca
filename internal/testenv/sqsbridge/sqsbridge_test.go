package sqsbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
	"github.com/kilnhq/kiln/internal/testenv/sqsbridge"
)

// waitFor bounds the waits on goaws, which expires visibility once a
// second.
const waitFor = 20 * time.Second

// eventually polls cond until it holds, failing t after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for "+what, append([]any{timeout}, args...)...)
		}
		<-time.After(20 * time.Millisecond)
	}
}

type testBundle struct {
	srv    *testenv.SQSServer
	client *sqs.Client
	queue  testenv.Queue
}

func setup(t *testing.T, o testenv.QueueOptions) *testBundle {
	t.Helper()
	srv := testenv.SQS(t)
	return &testBundle{srv: srv, client: srv.Client(), queue: srv.NewQueue(t, o)}
}

func (b *testBundle) send(t *testing.T, body string) string {
	t.Helper()
	out, err := b.client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(b.queue.URL), MessageBody: aws.String(body)})
	require.NoError(t, err)
	return *out.MessageId
}

// receive receives once, without waiting, with every attribute.
func (b *testBundle) receive(t *testing.T, queueURL string, max int32) []types.Message {
	t.Helper()
	out, err := b.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL), MaxNumberOfMessages: max, WaitTimeSeconds: 0,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	require.NoError(t, err)
	return out.Messages
}

// receiveOne waits until a message of queueURL can be received.
func (b *testBundle) receiveOne(t *testing.T, queueURL string) types.Message {
	t.Helper()
	var got []types.Message
	eventually(t, waitFor, func() bool {
		got = b.receive(t, queueURL, 1)
		return len(got) == 1
	}, "a message on %s", queueURL)
	return got[0]
}

func (b *testBundle) attr(t *testing.T, name types.QueueAttributeName) string {
	t.Helper()
	out, err := b.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(b.queue.URL), AttributeNames: []types.QueueAttributeName{name}})
	require.NoError(t, err)
	return out.Attributes[string(name)]
}

// requireCode checks an error's code as the SDK reports it: SQS's query
// code where it has one (AWS.SimpleQueueService.NonExistentQueue for
// QueueDoesNotExist).
func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want an API error %s, got %v", code, err)
	require.Equal(t, code, ae.ErrorCode(), "%v", err)
}

// TestQueues covers the queue calls: CreateQueue (with attributes and a
// redrive policy), GetQueueUrl, GetQueueAttributes, SetQueueAttributes,
// PurgeQueue and DeleteQueue, and their errors.
func TestQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testenv.QueueOptions{VisibilityTimeout: 7 * time.Second, MaxReceiveCount: 4})

	require.True(t, strings.HasPrefix(b.queue.URL, b.srv.Endpoint+"/"), "queue URLs point at the bridge: %s", b.queue.URL)
	name := b.queue.URL[strings.LastIndex(b.queue.URL, "/")+1:]
	got, err := b.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	require.NoError(t, err)
	require.Equal(t, b.queue.URL, *got.QueueUrl)

	attrs, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(b.queue.URL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	require.NoError(t, err)
	require.Equal(t, "7", attrs.Attributes["VisibilityTimeout"])
	require.Equal(t, b.queue.ARN, attrs.Attributes["QueueArn"])
	var policy struct {
		MaxReceiveCount     int    `json:"maxReceiveCount"`
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	require.NoError(t, json.Unmarshal([]byte(attrs.Attributes["RedrivePolicy"]), &policy), "a number, as SQS gives it")
	require.Equal(t, 4, policy.MaxReceiveCount)
	require.Equal(t, b.queue.ARN+"-dlq", policy.DeadLetterTargetArn, "the ARN, not goaws's queue name")

	dlqAttrs, err := b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(b.queue.DeadLetterURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy}})
	require.NoError(t, err)
	require.NotContains(t, dlqAttrs.Attributes, "RedrivePolicy", "a queue without a policy has none")

	_, err = b.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(b.queue.URL),
		Attributes: map[string]string{"VisibilityTimeout": "9"}})
	require.NoError(t, err)
	require.Equal(t, "9", b.attr(t, types.QueueAttributeNameVisibilityTimeout))

	b.send(t, "one")
	require.Equal(t, "1", b.attr(t, types.QueueAttributeNameApproximateNumberOfMessages))
	_, err = b.client.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(b.queue.URL)})
	require.NoError(t, err)
	require.Equal(t, "0", b.attr(t, types.QueueAttributeNameApproximateNumberOfMessages))

	t.Run("Errors", func(t *testing.T) {
		missing := b.srv.Endpoint + "/" + testenv.SQSAccount + "/no-such-queue"
		_, err := b.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("no-such-queue")})
		requireCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = b.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(missing), MessageBody: aws.String("x")})
		requireCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = b.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(missing)})
		requireCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(missing)})
		requireCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
		_, err = b.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(b.queue.URL),
			Attributes: map[string]string{"RedrivePolicy": `{"maxReceiveCount":2,"deadLetterTargetArn":"arn:aws:sqs:us-east-1:0:missing"}`}})
		requireCode(t, err, "InvalidParameterValue")
	})

	t.Run("Delete", func(t *testing.T) {
		q := b.srv.NewQueue(t, testenv.QueueOptions{})
		_, err := b.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(q.URL)})
		require.NoError(t, err)
		_, err = b.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.URL)})
		requireCode(t, err, "AWS.SimpleQueueService.NonExistentQueue")
		// Cleanup deletes it again, which goaws allows.
	})
}

// TestMessages covers SendMessage, SendMessageBatch, ReceiveMessage (MD5s
// the SDK checks, attributes, receive counts, long polling) and
// DeleteMessage.
func TestMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testenv.QueueOptions{})

	id := b.send(t, `{"a":"<b>&"}`)
	m := b.receiveOne(t, b.queue.URL)
	require.Equal(t, id, *m.MessageId)
	require.Equal(t, `{"a":"<b>&"}`, *m.Body, "XML escapes undone")
	require.Equal(t, "1", m.Attributes["ApproximateReceiveCount"])
	require.Contains(t, m.Attributes, "SentTimestamp")
	require.Empty(t, b.receive(t, b.queue.URL, 10), "in flight")
	_, err := b.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(b.queue.URL), ReceiptHandle: m.ReceiptHandle})
	require.NoError(t, err)
	_, err = b.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(b.queue.URL), ReceiptHandle: m.ReceiptHandle})
	requireCode(t, err, "ReceiptHandleIsInvalid")

	t.Run("Batch", func(t *testing.T) {
		entries := make([]types.SendMessageBatchRequestEntry, 10)
		for i := range entries {
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String("e" + strconv.Itoa(i)), MessageBody: aws.String("body " + strconv.Itoa(i))}
		}
		q := b.srv.NewQueue(t, testenv.QueueOptions{})
		out, err := b.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: entries})
		require.NoError(t, err)
		require.Len(t, out.Successful, 10)
		require.Empty(t, out.Failed)
		got, err := b.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.URL), MaxNumberOfMessages: 10})
		require.NoError(t, err)
		require.Len(t, got.Messages, 10)
		require.Empty(t, got.Messages[0].Attributes, "none asked for")

		_, err = b.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL),
			Entries: []types.SendMessageBatchRequestEntry{entries[0], entries[0]}})
		requireCode(t, err, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
	})

	t.Run("LongPoll", func(t *testing.T) {
		q := b.srv.NewQueue(t, testenv.QueueOptions{})
		got := make(chan *sqs.ReceiveMessageOutput, 1)
		go func() {
			out, err := b.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.URL), WaitTimeSeconds: 10})
			if err != nil {
				out = nil
			}
			got <- out
		}()
		require.NoError(t, b.srv.Bridge.WaitCalls(ctx, "ReceiveMessage", 1))
		_, err := b.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String("late")})
		require.NoError(t, err)
		out := <-got
		require.NotNil(t, out)
		require.Len(t, out.Messages, 1, "the long poll returns the message sent while it waited")
		require.Equal(t, "late", *out.Messages[0].Body)
	})
}

// TestVisibilityAndRedrive covers ChangeMessageVisibility (extending, and
// 0 to release), the receive counts the bridge keeps, and goaws's redrive
// to the dead-letter queue.
func TestVisibilityAndRedrive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, testenv.QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: 2})
	b.send(t, "poison")

	for n := 1; n <= 2; n++ {
		m := b.receiveOne(t, b.queue.URL)
		require.Equal(t, strconv.Itoa(n), m.Attributes["ApproximateReceiveCount"], "receive %d", n)
		// Hand it back at once, as a consumer that cannot handle it.
		_, err := b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(b.queue.URL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		require.NoError(t, err)
	}
	// goaws moves a message on once its receives pass maxReceiveCount: it
	// may hand it out once more first.
	eventually(t, waitFor, func() bool {
		for _, m := range b.receive(t, b.queue.URL, 1) {
			_, err := b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(b.queue.URL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			require.NoError(t, err)
		}
		return b.attr(t, types.QueueAttributeNameApproximateNumberOfMessages) == "0"
	}, "the message leaves the queue")
	dead := b.receiveOne(t, b.queue.DeadLetterURL)
	require.Equal(t, "poison", *dead.Body)

	t.Run("Extend", func(t *testing.T) {
		q := b.srv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: time.Second})
		_, err := b.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String("slow")})
		require.NoError(t, err)
		m := b.receiveOne(t, q.URL)
		_, err = b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.URL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 60})
		require.NoError(t, err)
		// A marker received after it, with the queue's timeout, comes back
		// once that timeout has passed and goaws has swept: by then the
		// first message's own timeout has passed too, and it stays hidden.
		_, err = b.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String("marker")})
		require.NoError(t, err)
		require.Equal(t, "marker", *b.receiveOne(t, q.URL).Body)
		again := b.receiveOne(t, q.URL)
		require.Equal(t, "marker", *again.Body, "the extended message stays hidden")
		require.Equal(t, "2", again.Attributes["ApproximateReceiveCount"])
		require.Empty(t, b.receive(t, q.URL, 10))

		_, err = b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.URL), ReceiptHandle: aws.String("no-such-handle"), VisibilityTimeout: 5})
		requireCode(t, err, "AWS.SimpleQueueService.MessageNotInflight")
	})
}

// TestUnbridged checks the answers to what the bridge does not forward.
func TestUnbridged(t *testing.T) {
	t.Parallel()
	// No goaws is needed: nothing reaches it.
	srv := httptest.NewServer(sqsbridge.New("http://127.0.0.1:1"))
	t.Cleanup(srv.Close)
	c := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	ctx := context.Background()

	_, err := c.ListQueues(ctx, &sqs.ListQueuesInput{})
	requireCode(t, err, "AWS.SimpleQueueService.UnsupportedOperation")
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(srv.URL + "/0/q"), MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v")}}})
	requireCode(t, err, "AWS.SimpleQueueService.UnsupportedOperation")

	resp, err := http.Post(srv.URL, "application/x-www-form-urlencoded", strings.NewReader("Action=ListQueues"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "the query protocol is goaws's own")

	// goaws unreachable: a server error, which the SDK retries and reports.
	_, err = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("q")})
	requireCode(t, err, "InternalError")
}
