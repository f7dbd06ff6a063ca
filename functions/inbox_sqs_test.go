package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// render fills a testdata template.
func render(t testing.TB, name string, data any) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(src))
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, tmpl.Execute(&b, data))
	require.True(t, json.Valid(b.Bytes()), "%s is not JSON once filled:\n%s", name, b.String())
	return b.Bytes()
}

// s3Put is AWS S3's notification of a created object, as AWS documents it
// (keys form-encoded, "/" kept).
func s3Put(t testing.TB, bucket, key, etag string, size int) []byte {
	t.Helper()
	enc := strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
	return render(t, "s3-put.json", map[string]any{"Bucket": bucket, "Key": enc, "ETag": etag, "Size": size})
}

// snsWrapped wraps a message in SNS's notification envelope, as AWS
// documents it.
func snsWrapped(t testing.TB, message []byte) []byte {
	t.Helper()
	m, err := json.Marshal(string(message))
	require.NoError(t, err)
	return render(t, "sns-envelope.json", map[string]any{"Message": string(m)})
}

// TestParseS3Notification reads the bodies an S3 notification queue
// carries: direct, wrapped in SNS, S3's test event, and what is not one.
func TestParseS3Notification(t *testing.T) {
	t.Parallel()
	put := s3Put(t, "kiln-bucket", "inbox/my file.jsonl", "abc123", 42)
	test := render(t, "s3-test-event.json", map[string]any{"Bucket": "kiln-bucket"})

	for name, body := range map[string][]byte{"Direct": put, "SNS": snsWrapped(t, put)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			note, isTest, err := functions.ParseS3Notification(body)
			require.NoError(t, err)
			require.False(t, isTest)
			require.Len(t, note.Records, 1)
			r := note.Records[0]
			require.Equal(t, "ObjectCreated:Put", r.EventName)
			require.Equal(t, "kiln-bucket", r.S3.Bucket.Name)
			require.Equal(t, "inbox/my file.jsonl", r.S3.Object.URLDecodedKey)
			require.Equal(t, "abc123", r.S3.Object.ETag)
			require.EqualValues(t, 42, r.S3.Object.Size)
		})
	}
	for name, body := range map[string][]byte{"TestEvent": test, "SNSTestEvent": snsWrapped(t, test)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			note, isTest, err := functions.ParseS3Notification(body)
			require.NoError(t, err)
			require.True(t, isTest)
			require.Empty(t, note.Records)
		})
	}
	for name, body := range map[string]string{
		"NotJSON":     "hello",
		"NoRecords":   `{"Records":[]}`,
		"OtherSource": `{"Records":[{"eventSource":"aws:dynamodb"}]}`,
		"KilnEvent":   `{"id":"evt_1","object":"event","type":"batch.completed"}`,
		"SNSOfOther":  string(snsWrapped(t, []byte("hello"))),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := functions.ParseS3Notification([]byte(body))
			require.Error(t, err)
		})
	}
}

// sqsBundle is a kiln whose inbox is fed by an SQS queue on goaws.
type sqsBundle struct {
	env    *kilntest.Env
	srv    *testenv.SQSServer
	sqs    *sqs.Client
	queue  testenv.Queue
	s3URL  string
	bucket string
}

// sqsOptions shape a bundle.
type sqsOptions struct {
	queue testenv.QueueOptions
	// s3URL is kiln's bucket. Default: a fresh one.
	s3URL string
	// configure edits kiln's configuration last.
	configure func(*config.Config)
}

// startSQS starts a kiln on backend whose inbox learns of objects from a
// fresh queue only (no polling), on a real S3 bucket.
func startSQS(t *testing.T, backend string, o sqsOptions) *sqsBundle {
	t.Helper()
	srv := testenv.SQS(t)
	b := &sqsBundle{srv: srv, sqs: srv.Client(), queue: srv.NewQueue(t, o.queue), s3URL: o.s3URL}
	if b.s3URL == "" {
		b.s3URL = testenv.S3URL(t)
	}
	u, err := url.Parse(b.s3URL)
	require.NoError(t, err)
	b.bucket = u.Host
	b.env = startInbox(t, backend, -1, func(c *config.Config) {
		c.ObjectStore = b.s3URL
		c.InboxSQSURL = b.queue.URL
		if o.configure != nil {
			o.configure(c)
		}
	})
	return b
}

// send queues a message body.
func (b *sqsBundle) send(t testing.TB, body []byte) {
	t.Helper()
	_, err := b.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(b.queue.URL), MessageBody: aws.String(string(body))})
	require.NoError(t, err)
}

// counts returns a queue's visible and in-flight messages.
func (b *sqsBundle) counts(t testing.TB, queueURL string) (visible, inFlight int) {
	t.Helper()
	out, err := b.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	require.NoError(t, err)
	visible, err = strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	require.NoError(t, err)
	all, err := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	require.NoError(t, err)
	// goaws counts the messages in flight among its messages.
	return visible - all, all
}

// waitDrained waits until the queue holds no message, visible or not:
// every message was deleted, or moved to the dead-letter queue.
func (b *sqsBundle) waitDrained(t testing.TB) {
	t.Helper()
	kilntest.Eventually(t, waitFor, func() bool {
		v, f := b.counts(t, b.queue.URL)
		return v == 0 && f == 0
	}, "queue %s drained", b.queue.URL)
}

// deadLetters receives what reached the dead-letter queue, up to want
// messages, waiting for them.
func (b *sqsBundle) deadLetters(t testing.TB, want int) []string {
	t.Helper()
	var bodies []string
	kilntest.Eventually(t, waitFor, func() bool {
		out, err := b.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.queue.DeadLetterURL), MaxNumberOfMessages: 10})
		require.NoError(t, err)
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
		}
		return len(bodies) >= want
	}, "%d messages in the dead-letter queue", want)
	return bodies
}

// putObject writes an inbox object, and returns its ETag.
func (b *sqsBundle) putObject(t testing.TB, key string, data []byte) string {
	t.Helper()
	info, err := b.env.App.Bucket.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return strings.Trim(info.ETag, `"`)
}

// handled counts the messages a kiln handled and deleted: imported, or
// ignored (a duplicate whose object was imported and left the inbox).
func handled(t testing.TB, env *kilntest.Env) float64 {
	t.Helper()
	return env.Metric(t, `kiln_inbox_sqs_messages_total{outcome="imported"}`) +
		env.Metric(t, `kiln_inbox_sqs_messages_total{outcome="ignored"}`)
}

// TestInboxSQS feeds kiln's inbox from an SQS queue of S3 notifications,
// on both backends: AWS's notification JSON directly and through a real
// SNS topic (goaws's), each once however often it comes (and with objects
// also listed by a poll); S3's test event; and poison messages, which
// reach the dead-letter queue after the queue's maxReceiveCount, logged
// and counted by reason, while the rest go on.
func TestInboxSQS(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			b := startSQS(t, backend, sqsOptions{queue: testenv.QueueOptions{VisibilityTimeout: 2 * time.Second, MaxReceiveCount: 2}})
			c := b.env.Client()
			const n = 3
			input := kilntest.ChatLines(n, 0)

			t.Run("Direct", func(t *testing.T) {
				key := "inbox/direct run.jsonl"
				b.putObject(t, key+functions.SidecarSuffix, []byte(chatSidecar))
				etag := b.putObject(t, key, input)
				b.send(t, s3Put(t, b.bucket, key, etag, len(input)))
				f := waitFile(t, c, "direct run.jsonl")
				require.Equal(t, input, content(t, c, f.ID))
				batch := waitBatchOf(t, c, f.ID)
				requireCompleted(t, c, batch, n)
				require.Equal(t, "inbox", batch.Metadata["source"])
				b.waitDrained(t)
				require.True(t, gone(t, b.env, key), "the object left the inbox")
				require.True(t, gone(t, b.env, key+functions.SidecarSuffix))
			})

			t.Run("SNS", func(t *testing.T) {
				topic := b.srv.NewTopic(t, b.queue)
				key := "inbox/through-sns.jsonl"
				etag := b.putObject(t, key, input)
				b.srv.Publish(t, topic, "Amazon S3 Notification", string(s3Put(t, b.bucket, key, etag, len(input))))
				f := waitFile(t, c, "through-sns.jsonl")
				require.Equal(t, input, content(t, c, f.ID))
				require.Empty(t, batchesOf(t, c, f.ID), "no sidecar, no metadata: a file only")
				b.waitDrained(t)
			})

			t.Run("Duplicates", func(t *testing.T) {
				key := "inbox/dup.jsonl"
				etag := b.putObject(t, key, input)
				note := s3Put(t, b.bucket, key, etag, len(input))
				for range 3 {
					b.send(t, note)
				}
				b.send(t, snsWrapped(t, note))
				// And a poll lists it too.
				_, err := b.env.App.Inbox.Poll(context.Background())
				require.NoError(t, err)
				waitFile(t, c, "dup.jsonl")
				b.waitDrained(t)
				require.Len(t, filesNamed(t, c, "dup.jsonl"), 1, "imported once")
				// A late duplicate, after the object left the inbox, is
				// deleted and imports nothing.
				b.send(t, note)
				b.waitDrained(t)
				require.Len(t, filesNamed(t, c, "dup.jsonl"), 1)
			})

			t.Run("TestEvent", func(t *testing.T) {
				b.send(t, render(t, "s3-test-event.json", map[string]any{"Bucket": b.bucket}))
				b.waitDrained(t)
				// The message is deleted before it is counted.
				kilntest.Eventually(t, waitFor, func() bool {
					return b.env.Metric(t, `kiln_inbox_sqs_messages_total{outcome="test_event"}`) >= 1
				}, "the test event counted")
			})

			t.Run("Poison", func(t *testing.T) {
				before := len(files(t, c))
				b.send(t, []byte("this is not an S3 notification"))
				// An object whose sidecar kiln cannot use: its import is a
				// dead letter, and its message poison.
				key := "inbox/bad-sidecar.jsonl"
				b.putObject(t, key+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/chat/completions","colour":"red"}`))
				etag := b.putObject(t, key, input)
				bad := s3Put(t, b.bucket, key, etag, len(input))
				b.send(t, bad)
				// A good one after them is not held up.
				good := "inbox/after-poison.jsonl"
				b.send(t, s3Put(t, b.bucket, good, b.putObject(t, good, input), len(input)))
				waitFile(t, c, "after-poison.jsonl")

				dead := b.deadLetters(t, 2)
				require.ElementsMatch(t, []string{"this is not an S3 notification", string(bad)}, dead)
				b.waitDrained(t)
				inv := deadImport(t, b.env, key)
				require.Contains(t, inv.LastError, "colour")
				require.Len(t, files(t, c), before+1, "only the good object became a file")
				require.False(t, gone(t, b.env, key), "the poisoned object stays in the inbox")
				// Counted as kiln finishes with each message, which may be
				// after the queue shows it drained.
				kilntest.Eventually(t, waitFor, func() bool {
					return b.env.Metric(t, `kiln_inbox_sqs_poison_total{reason="unrecognised"}`) >= 1 &&
						b.env.Metric(t, `kiln_inbox_sqs_poison_total{reason="import_failed"}`) >= 1 &&
						b.env.Metric(t, `kiln_inbox_sqs_messages_total{outcome="dead_letter"}`) >= 2
				}, "the poison messages counted")
			})
		})
	}
}

// TestInboxSQSKeepsLongImport holds an import past the queue's visibility
// timeout: kiln extends the message's timeout meanwhile, so that no other
// consumer gets it, and deletes it once the import has committed.
func TestInboxSQSKeepsLongImport(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			hold := testenv.HoldS3(t, testenv.S3URL(t))
			b := startSQS(t, backend, sqsOptions{s3URL: hold.URL, queue: testenv.QueueOptions{VisibilityTimeout: 2 * time.Second}})
			c := b.env.Client()
			key := "inbox/slow.jsonl"
			input := kilntest.ChatLines(2, 0)
			etag := b.putObject(t, key, input)
			hit := hold.Hold(key)
			extends := b.srv.Bridge.Calls("ChangeMessageVisibility")
			b.send(t, s3Put(t, b.bucket, key, etag, len(input)))
			<-hit

			// Extended every third of the timeout: four extensions span
			// more than the timeout itself.
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			require.NoError(t, b.srv.Bridge.WaitCalls(ctx, "ChangeMessageVisibility", extends+4))
			v, f := b.counts(t, b.queue.URL)
			require.Equal(t, 0, v, "not visible to another consumer")
			require.Equal(t, 1, f, "in flight")
			out, err := b.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.queue.URL), MaxNumberOfMessages: 10})
			require.NoError(t, err)
			require.Empty(t, out.Messages, "a second consumer gets nothing")
			require.Empty(t, filesNamed(t, c, "slow.jsonl"), "not imported yet")

			hold.Release()
			waitFile(t, c, "slow.jsonl")
			b.waitDrained(t)
		})
	}
}

// TestInboxSQSTwoConsumers runs two kilns on one database, bucket and
// queue, fed every notification twice: each object is imported once.
func TestInboxSQSTwoConsumers(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			b := startSQS(t, backend, sqsOptions{queue: testenv.QueueOptions{VisibilityTimeout: 5 * time.Second}})
			second := startInbox(t, backend, -1, func(c *config.Config) {
				c.DatabaseURL = b.env.App.Cfg.DatabaseURL
				c.ObjectStore = b.s3URL
				c.InboxSQSURL = b.queue.URL
			})
			const objects = 12
			input := kilntest.ChatLines(1, 0)
			var notes [][]byte
			for i := range objects {
				key := fmt.Sprintf("inbox/obj-%02d.jsonl", i)
				notes = append(notes, s3Put(t, b.bucket, key, b.putObject(t, key, input), len(input)))
			}
			for _, note := range append(notes, notes...) {
				b.send(t, note)
			}
			c := b.env.Client()
			kilntest.Eventually(t, waitFor, func() bool { return len(files(t, c)) >= objects }, "%d files", objects)
			b.waitDrained(t)
			got := map[string]int{}
			for _, f := range files(t, c) {
				got[f.Filename]++
			}
			require.Len(t, got, objects)
			for name, n := range got {
				require.Equal(t, 1, n, "%s imported once", name)
			}
			require.Len(t, files(t, second.Client()), objects, "the second kiln sees the same files")
			// A duplicate that comes after its object was imported and left
			// the inbox is "ignored": it reports nothing left to import.
			require.Equal(t, float64(2*objects), handled(t, b.env)+handled(t, second), "every message handled and deleted once")
		})
	}
}

// TestInboxSQSKilledMidImport SIGKILLs a kiln process in the middle of an
// import it took from the queue: the message comes back after its
// visibility timeout, and another kiln imports the object, once.
func TestInboxSQSKilledMidImport(t *testing.T) {
	t.Parallel()
	bin := kilntest.KilnBinary(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			srv := testenv.SQS(t)
			queue := srv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 2 * time.Second})
			s3URL := testenv.S3URL(t)
			hold := testenv.HoldS3(t, s3URL)
			dbURL := storetest.URL(t, backend)
			key := "inbox/killed.jsonl"
			input := kilntest.ChatLines(2, 0)

			// The first kiln, a process, reaches the object through the
			// proxy that holds it.
			logPath := filepath.Join(t.TempDir(), "kiln.log")
			logFile, err := os.Create(logPath)
			require.NoError(t, err)
			defer logFile.Close()
			cmd := exec.Command(bin, "serve")
			cmd.Env = append(append(testenv.EnvironWithout("KILN_"), testenv.AWSTestEnv()...),
				"KILN_ADDR=127.0.0.1:0", "KILN_DATABASE_URL="+dbURL, "KILN_OBJECT_STORE="+hold.URL,
				"KILN_API_KEY="+kilntest.Key, "KILN_AGENT=off", "KILN_LEASE_TTL=1s",
				"KILN_INBOX_PREFIX=inbox/", "KILN_INBOX_POLL_INTERVAL=-1s", "KILN_INBOX_SQS_URL="+queue.URL)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			first := testenv.StartProcess(t, cmd)
			t.Cleanup(func() {
				if t.Failed() {
					log, _ := os.ReadFile(logPath)
					t.Logf("first kiln's log:\n%s", log)
				}
			})

			client, bucket := s3Client(t, s3URL)
			info, err := client.PutObject(context.Background(), bucket, key, bytes.NewReader(input), int64(len(input)), minio.PutObjectOptions{})
			require.NoError(t, err)
			hit := hold.Hold(key)
			_, err = srv.Client().SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(queue.URL),
				MessageBody: aws.String(string(s3Put(t, bucket, key, info.ETag, len(input))))})
			require.NoError(t, err)
			select {
			case <-hit:
			case <-first.Done():
				t.Fatalf("the first kiln exited: %v", first.Err())
			}
			first.Kill(t)
			hold.Release()

			// The second kiln reaches the bucket directly.
			second := startInbox(t, backend, -1, func(c *config.Config) {
				c.DatabaseURL = dbURL
				c.ObjectStore = s3URL
				c.InboxSQSURL = queue.URL
				c.LeaseTTL = time.Second // hands back the dead kiln's import soon
			})
			c := second.Client()
			f := waitFile(t, c, "killed.jsonl")
			require.Equal(t, input, content(t, c, f.ID))
			b := &sqsBundle{sqs: srv.Client(), queue: queue}
			b.waitDrained(t)
			require.Len(t, filesNamed(t, c, "killed.jsonl"), 1, "imported once")
			require.True(t, gone(t, second, key))
			require.Equal(t, 1.0, handled(t, second), "the second kiln handled the message again")
		})
	}
}
