package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/functions/lambda"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

const (
	inboxPrefix = "inbox/"
	chatSidecar = `{"endpoint":"/v1/chat/completions"}`
	batchInput  = `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"hi"}]}}` + "\n" +
		`{"custom_id":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"hello"}]}}` + "\n"
	// recorderName is a test function subscribed to file.created.
	recorderName = "test_recorder"
)

// env is a Handler over a fresh store and bucket, as cmd/kiln-lambda
// builds it: no dispatcher on the store.
type env struct {
	h      *lambda.Handler
	st     *store.Store
	bucket objectstore.Bucket
	// name is the S3 bucket's name ("" for a folder).
	name string

	mu  sync.Mutex
	got []functions.Event // what the recorder received
}

// newEnv opens a store of backend and an object store: "s3" (a fresh
// bucket on the real S3 server) or "folder".
func newEnv(t *testing.T, backend, objects string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{st: storetest.New(t, backend)}
	var rawURL string
	switch objects {
	case "s3":
		rawURL = testenv.S3URL(t)
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		e.name = u.Host
	case "folder":
		rawURL = "file://" + t.TempDir()
	default:
		t.Fatalf("unknown object store %q", objects)
	}
	var err error
	e.bucket, err = objectstore.OpenWith(ctx, rawURL, objectstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.bucket.Close() })

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	wh := &functions.Webhooks{Store: e.st, Log: log, Client: netguard.NewClient(netguard.Options{})}
	in := &functions.Inbox{Store: e.st, Batches: batch.New(e.st, e.bucket, batch.Limits{}, log), Bucket: e.bucket, Prefix: inboxPrefix, Log: log}
	recorder := functions.Function{Name: recorderName, Events: []string{store.EventFileCreated},
		Handle: func(_ context.Context, ev functions.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.got = append(e.got, ev)
			return nil
		}}
	reg, err := functions.NewRegistry(functions.Retry{}, wh.Function(), in.Function(), recorder)
	require.NoError(t, err)
	e.h = &lambda.Handler{Registry: reg, Inbox: in, Store: e.st, Log: log}
	return e
}

// invoke hands payload to the handler as the Lambda runtime does: through
// the reflection wrapper of aws-lambda-go, which decodes the JSON into
// Invoke's argument.
func (e *env) invoke(t *testing.T, payload []byte) (lambda.Result, error) {
	t.Helper()
	out, err := awslambda.NewHandler(e.h.Invoke).Invoke(context.Background(), payload)
	if err != nil {
		return lambda.Result{}, err
	}
	var res lambda.Result
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	return res, nil
}

// put writes an object and returns its ETag as notifications carry it.
func (e *env) put(t *testing.T, key, data string) string {
	t.Helper()
	info, err := e.bucket.Put(context.Background(), key, strings.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return strings.Trim(info.ETag, `"`)
}

func (e *env) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := e.bucket.Stat(context.Background(), key)
	if errors.Is(err, objectstore.ErrNotExist) {
		return false
	}
	require.NoError(t, err)
	return true
}

func (e *env) files(t *testing.T) []store.File {
	t.Helper()
	fs, _, err := e.st.FileList(context.Background(), store.FileListParams{Limit: 100})
	require.NoError(t, err)
	return fs
}

func (e *env) events(t *testing.T, typ string) []store.Event {
	t.Helper()
	evs, _, err := e.st.EventList(context.Background(), "", typ, "", 100)
	require.NoError(t, err)
	return evs
}

func (e *env) received() []functions.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]functions.Event(nil), e.got...)
}

// content reads an object whole.
func (e *env) content(t *testing.T, key string) string {
	t.Helper()
	rc, err := e.bucket.Get(context.Background(), key)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

// noInvocations checks that the handler enqueued no invocation: the store
// has no dispatcher, as in Lambda.
func (e *env) noInvocations(t *testing.T) {
	t.Helper()
	invs, _, err := e.st.InvocationList(context.Background(), "", "", "", 100)
	require.NoError(t, err)
	require.Empty(t, invs)
}

// render fills a testdata template.
func render(t *testing.T, name string, data any) []byte {
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

// awsKey encodes a key as AWS S3 notifications do: form-encoded, "/" kept
// ("inbox/my file.jsonl" is "inbox/my+file.jsonl").
func awsKey(key string) string { return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/") }

// minioKey encodes a key as MinIO's notifications do: url.QueryEscape.
func minioKey(key string) string { return url.QueryEscape(key) }

// notification is an S3 event notification of one created object, in AWS's
// format ("aws-s3-put.json") or MinIO's webhook target's
// ("minio-webhook-put.json").
func notification(t *testing.T, file, bucket, key, etag string, size int) []byte {
	t.Helper()
	enc := awsKey
	if strings.HasPrefix(file, "minio") {
		enc = minioKey
	}
	return render(t, file, map[string]any{"Bucket": bucket, "Key": enc(key), "RawKey": key, "ETag": etag, "Size": size})
}

func kilnEvent(t *testing.T, id, typ string, data any) []byte {
	t.Helper()
	d, err := json.Marshal(data)
	require.NoError(t, err)
	return render(t, "kiln-event.json", map[string]any{"ID": id, "Type": typ, "Data": string(d)})
}

// TestS3NotificationImports delivers AWS's and MinIO's notification of an
// inbox object with a sidecar: it becomes a file and a batch, once however
// often the notification comes.
func TestS3NotificationImports(t *testing.T) {
	for _, tc := range []struct{ name, file, key string }{
		{"aws", "aws-s3-put.json", "inbox/my file.jsonl"},
		{"minio", "minio-webhook-put.json", "inbox/x.jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "postgres", "s3")
			ctx := context.Background()
			e.put(t, tc.key+functions.SidecarSuffix, chatSidecar)
			etag := e.put(t, tc.key, batchInput)
			payload := notification(t, tc.file, e.name, tc.key, etag, len(batchInput))

			res, err := e.invoke(t, payload)
			require.NoError(t, err)
			require.Equal(t, lambda.Result{Kind: lambda.KindS3, Records: 1}, res)

			obj, err := e.st.InboxGet(ctx, tc.key, etag)
			require.NoError(t, err)
			require.NotEmpty(t, obj.FileID)
			require.NotEmpty(t, obj.BatchID)
			f, err := e.st.FileGet(ctx, obj.FileID)
			require.NoError(t, err)
			require.Equal(t, filepath.Base(tc.key), f.Filename)
			require.Equal(t, "batch", f.Purpose)
			require.Equal(t, int64(len(batchInput)), f.Bytes)
			require.Equal(t, batchInput, e.content(t, f.ObjectKey))
			b, err := e.st.BatchGet(ctx, obj.BatchID)
			require.NoError(t, err)
			require.Equal(t, store.BatchValidating, b.Status)
			require.Equal(t, "/v1/chat/completions", b.Endpoint)
			require.Equal(t, obj.FileID, b.InputFileID)
			// The inbox is cleared, sidecar included.
			require.False(t, e.exists(t, tc.key))
			require.False(t, e.exists(t, tc.key+functions.SidecarSuffix))

			// Delivered again (S3 delivers at least once; Lambda retries):
			// nothing new.
			res, err = e.invoke(t, payload)
			require.NoError(t, err)
			require.Equal(t, lambda.Result{Kind: lambda.KindS3, Records: 1}, res)
			require.Len(t, e.files(t), 1)
			require.Len(t, e.events(t, store.EventObjectCreated), 1)
			again, err := e.st.InboxGet(ctx, tc.key, etag)
			require.NoError(t, err)
			require.Equal(t, obj, again)
			e.noInvocations(t)
		})
	}
}

// TestS3NotificationRetriesAnImport: an object whose event was emitted
// before (by an earlier try, or by kiln serve's poll) but never imported is
// imported by the next notification.
func TestS3NotificationRetriesAnImport(t *testing.T) {
	e := newEnv(t, "postgres", "s3")
	ctx := context.Background()
	key := "inbox/late.jsonl"
	etag := e.put(t, key, batchInput)
	created, err := e.h.Inbox.Seen(ctx, key, etag, int64(len(batchInput)))
	require.NoError(t, err)
	require.True(t, created)
	require.Empty(t, e.files(t))

	_, err = e.invoke(t, notification(t, "aws-s3-put.json", e.name, key, etag, len(batchInput)))
	require.NoError(t, err)
	obj, err := e.st.InboxGet(ctx, key, etag)
	require.NoError(t, err)
	require.NotEmpty(t, obj.FileID)
	require.Empty(t, obj.BatchID, "no sidecar: a file only")
	require.Len(t, e.events(t, store.EventObjectCreated), 1)
}

// TestS3NotificationIgnores: objects of another bucket, outside the inbox,
// sidecars and removals are no inbox objects.
func TestS3NotificationIgnores(t *testing.T) {
	e := newEnv(t, "postgres", "s3")
	etag := e.put(t, "inbox/a.jsonl", batchInput)
	other := e.put(t, "elsewhere/b.jsonl", batchInput)
	sidecar := e.put(t, "inbox/c.jsonl"+functions.SidecarSuffix, chatSidecar)

	for _, payload := range [][]byte{
		notification(t, "aws-s3-put.json", e.name+"-other", "inbox/a.jsonl", etag, len(batchInput)),
		notification(t, "minio-webhook-put.json", e.name, "elsewhere/b.jsonl", other, len(batchInput)),
		notification(t, "aws-s3-put.json", e.name, "inbox/c.jsonl"+functions.SidecarSuffix, sidecar, len(chatSidecar)),
		bytes.Replace(notification(t, "aws-s3-put.json", e.name, "inbox/a.jsonl", etag, len(batchInput)),
			[]byte(`"ObjectCreated:Put"`), []byte(`"ObjectRemoved:Delete"`), 1),
	} {
		_, err := e.invoke(t, payload)
		require.NoError(t, err)
	}
	require.Empty(t, e.files(t))
	require.Empty(t, e.events(t, ""))
	require.True(t, e.exists(t, "inbox/a.jsonl"))
}

// TestS3NotificationFailure: an import that fails is returned, for Lambda
// to retry or send to its dead-letter queue.
func TestS3NotificationFailure(t *testing.T) {
	e := newEnv(t, "postgres", "s3")
	key := "inbox/bad.jsonl"
	e.put(t, key+functions.SidecarSuffix, `{"endpoint":"/v1/chat/completions","unknown":1}`)
	etag := e.put(t, key, batchInput)
	_, err := e.invoke(t, notification(t, "aws-s3-put.json", e.name, key, etag, len(batchInput)))
	require.ErrorContains(t, err, "inbox sidecar")
	require.ErrorContains(t, err, key)
	require.Empty(t, e.files(t))
	require.True(t, e.exists(t, key), "a failed import leaves the object")
}

// TestSQS: an SQS event whose messages are an S3 notification and a kiln
// event.
func TestSQS(t *testing.T) {
	e := newEnv(t, "postgres", "s3")
	ctx := context.Background()
	key := "inbox/queued file.jsonl"
	etag := e.put(t, key, batchInput)
	s3Body := notification(t, "aws-s3-put.json", e.name, key, etag, len(batchInput))
	evID := ids.New(ids.Event)
	eventBody := kilnEvent(t, evID, store.EventFileCreated, map[string]string{"id": "file-abc"})
	quote := func(b []byte) string {
		q, err := json.Marshal(string(b))
		require.NoError(t, err)
		return string(q)
	}
	payload := render(t, "sqs.json", map[string]any{"Body1": quote(s3Body), "Body2": quote(eventBody)})

	res, err := e.invoke(t, payload)
	require.NoError(t, err)
	require.Equal(t, lambda.Result{Kind: lambda.KindSQS, Records: 2}, res)
	obj, err := e.st.InboxGet(ctx, key, etag)
	require.NoError(t, err)
	require.NotEmpty(t, obj.FileID)
	got := e.received()
	require.Len(t, got, 1)
	require.Equal(t, evID, got[0].ID)

	// A message that is neither fails the event, naming the message.
	bad := render(t, "sqs.json", map[string]any{"Body1": quote(s3Body), "Body2": quote([]byte(`{"hello":"world"}`))})
	_, err = e.invoke(t, bad)
	require.ErrorContains(t, err, "2e1424d4-f796-459a-8184-9c92662be6da")
	require.ErrorContains(t, err, "want an S3 event notification")
	require.Len(t, e.files(t), 1)
	e.noInvocations(t)
}

// TestKilnEvent: a kiln event runs the functions subscribed to it, on
// either store; the webhook function, with no endpoints, does nothing.
func TestKilnEvent(t *testing.T) {
	for _, tc := range []struct{ backend, objects string }{{"sqlite", "folder"}, {"postgres", "s3"}} {
		t.Run(tc.backend+"+"+tc.objects, func(t *testing.T) {
			e := newEnv(t, tc.backend, tc.objects)
			ctx := context.Background()
			evID := ids.New(ids.Event)
			payload := kilnEvent(t, evID, store.EventFileCreated, map[string]string{"id": "file-abc"})

			res, err := e.invoke(t, payload)
			require.NoError(t, err)
			require.Equal(t, lambda.Result{Kind: lambda.KindEvent, Records: 1}, res)
			got := e.received()
			require.Len(t, got, 1)
			require.Equal(t, functions.Event{ID: evID, Object: "event", Type: store.EventFileCreated, CreatedAt: 1715678497,
				Data: json.RawMessage(`{"id":"file-abc"}`)}, got[0])
			// The event the store lacked is recorded under its id, for what
			// the functions write about it (webhook deliveries) to find.
			stored, err := e.st.EventGet(ctx, evID)
			require.NoError(t, err)
			require.Equal(t, store.EventFileCreated, stored.Type)
			require.JSONEq(t, `{"id":"file-abc"}`, string(stored.Data))

			// Relayed again: the functions run again (they are idempotent),
			// the event is not written twice.
			_, err = e.invoke(t, payload)
			require.NoError(t, err)
			require.Len(t, e.received(), 2)
			require.Len(t, e.events(t, store.EventFileCreated), 1)

			// A batch event runs the webhook function, which loads the
			// batch: one the store lacks is an error, returned for Lambda
			// to retry.
			_, err = e.invoke(t, kilnEvent(t, ids.New(ids.Event), store.EventBatchCancelled, map[string]string{"id": "batch_x"}))
			require.ErrorContains(t, err, "batch_x", "the webhook function loads the batch")
			e.noInvocations(t)
		})
	}
}

// TestObjectEventOnFolder: the folder store takes no S3 notifications, but
// a relayed object.created event imports its object.
func TestObjectEventOnFolder(t *testing.T) {
	e := newEnv(t, "sqlite", "folder")
	ctx := context.Background()
	key := "inbox/folder.jsonl"
	e.put(t, key+functions.SidecarSuffix, chatSidecar)
	etag := e.put(t, key, batchInput)

	_, err := e.invoke(t, notification(t, "aws-s3-put.json", "any", key, etag, len(batchInput)))
	require.ErrorIs(t, err, functions.ErrNotNotifiable)
	require.Empty(t, e.files(t))

	payload := kilnEvent(t, ids.New(ids.Event), store.EventObjectCreated, functions.ObjectData{Key: key, ETag: etag, Size: int64(len(batchInput))})
	for range 2 {
		res, err := e.invoke(t, payload)
		require.NoError(t, err)
		require.Equal(t, lambda.Result{Kind: lambda.KindEvent, Records: 1}, res)
	}
	obj, err := e.st.InboxGet(ctx, key, etag)
	require.NoError(t, err)
	require.Len(t, e.files(t), 1)
	b, err := e.st.BatchGet(ctx, obj.BatchID)
	require.NoError(t, err)
	require.Equal(t, store.BatchValidating, b.Status)
	require.Equal(t, obj.FileID, b.InputFileID)
	require.False(t, e.exists(t, key))
	e.noInvocations(t)
}

// TestPayloads: what Invoke takes and what it refuses, without services.
func TestPayloads(t *testing.T) {
	h := &lambda.Handler{Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	ctx := context.Background()

	res, err := h.Invoke(ctx, render(t, "s3-test-event.json", map[string]any{"Bucket": "b"}))
	require.NoError(t, err, "S3's test event is acknowledged")
	require.Equal(t, lambda.Result{Kind: lambda.KindS3Test}, res)

	for name, payload := range map[string]string{
		"empty object":   `{}`,
		"array":          `[1, 2]`,
		"string":         `"hello"`,
		"no records":     `{"Records": []}`,
		"SNS":            `{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}`,
		"DynamoDB":       `{"Records": [{"eventSource": "aws:dynamodb"}]}`,
		"mixed":          `{"Records": [{"eventSource": "aws:s3"}, {"eventSource": "aws:sqs"}]}`,
		"not an event":   `{"object": "batch", "id": "batch_1"}`,
		"event, no type": `{"object": "event", "id": "evt_1"}`,
		"event, no id":   `{"object": "event", "type": "file.created"}`,
		"SQS in SQS":     `{"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{\"Records\": [{\"eventSource\": \"aws:sqs\"}]}"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Invoke(ctx, json.RawMessage(payload))
			require.Error(t, err)
			require.ErrorContains(t, err, "want an S3 event notification")
		})
	}
}
