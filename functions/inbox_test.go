package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/notification"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/pagination"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/testenv"
)

// waitFor bounds every wait of these tests: imports take milliseconds, a
// batch of a few requests on the simulator well under a second.
const waitFor = 30 * time.Second

const chatSidecar = `{"endpoint":"/v1/chat/completions","metadata":{"source":"inbox"}}`

// startInbox runs kiln with the inbox at "inbox/", listed every poll
// (negative: notifications only).
func startInbox(t *testing.T, backend string, poll time.Duration, configure func(*config.Config)) *kilntest.Env {
	t.Helper()
	return kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.InboxPrefix = "inbox/"
		c.InboxPollInterval = poll
		if configure != nil {
			configure(c)
		}
	}})
}

// put writes an object through kiln's own bucket, so that it works on the
// folder store and S3 alike, and returns its ETag as the inbox records it.
func put(t *testing.T, env *kilntest.Env, key string, data []byte) string {
	t.Helper()
	info, err := env.App.Bucket.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return strings.Trim(info.ETag, `"`)
}

// gone reports whether key is no longer in kiln's bucket.
func gone(t *testing.T, env *kilntest.Env, key string) bool {
	t.Helper()
	_, err := env.App.Bucket.Stat(context.Background(), key)
	if errors.Is(err, objectstore.ErrNotExist) {
		return true
	}
	require.NoError(t, err)
	return false
}

// all reads every page of an SDK list.
func all[T any](t *testing.T, it *pagination.CursorPageAutoPager[T]) []T {
	t.Helper()
	var out []T
	for it.Next() {
		out = append(out, it.Current())
	}
	require.NoError(t, it.Err())
	return out
}

func files(t *testing.T, c openai.Client) []openai.FileObject {
	return all(t, c.Files.ListAutoPaging(context.Background(), openai.FileListParams{}))
}

func filesNamed(t *testing.T, c openai.Client, name string) []openai.FileObject {
	return slices.DeleteFunc(files(t, c), func(f openai.FileObject) bool { return f.Filename != name })
}

func batches(t *testing.T, c openai.Client) []openai.Batch {
	return all(t, c.Batches.ListAutoPaging(context.Background(), openai.BatchListParams{}))
}

// batchesOf lists the batches whose input is fileID.
func batchesOf(t *testing.T, c openai.Client, fileID string) []openai.Batch {
	return slices.DeleteFunc(batches(t, c), func(b openai.Batch) bool { return b.InputFileID != fileID })
}

// waitFile waits until exactly one file named name exists and returns it.
func waitFile(t *testing.T, c openai.Client, name string) openai.FileObject {
	t.Helper()
	var got []openai.FileObject
	kilntest.Eventually(t, waitFor, func() bool {
		got = filesNamed(t, c, name)
		return len(got) > 0
	}, "file %s", name)
	require.Len(t, got, 1, "one file for %s", name)
	require.EqualValues(t, openai.FilePurposeBatch, got[0].Purpose)
	return got[0]
}

// waitBatchOf waits for the batch made from fileID, which the import made
// in the same transaction as the file, and for its end.
func waitBatchOf(t *testing.T, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	bs := batchesOf(t, c, fileID)
	require.Len(t, bs, 1, "one batch of file %s", fileID)
	return kilntest.WaitBatch(t, c, bs[0].ID)
}

// content downloads a file.
func content(t *testing.T, c openai.Client, id string) []byte {
	t.Helper()
	resp, err := c.Files.Content(context.Background(), id)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// requireCompleted checks that a batch of n requests completed with one
// output line per custom_id.
func requireCompleted(t *testing.T, c openai.Client, b *openai.Batch, n int) {
	t.Helper()
	require.Equal(t, openai.BatchStatusCompleted, b.Status, "batch %s: %+v", b.ID, b.Errors)
	require.EqualValues(t, n, b.RequestCounts.Total)
	require.EqualValues(t, n, b.RequestCounts.Completed)
	require.Empty(t, b.ErrorFileID)
	seen := map[string]int{}
	for _, l := range kilntest.ResultLines(t, c, b.OutputFileID) {
		seen[l["custom_id"].(string)]++
	}
	require.Len(t, seen, n)
	for i := range n {
		require.Equal(t, 1, seen[fmt.Sprintf("req-%d", i)], "req-%d", i)
	}
}

// call makes a raw API request; key "" sends no Authorization.
func call(t *testing.T, env *kilntest.Env, method, path, key, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, env.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

type invocation struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	Function  string `json:"function"`
	Status    string `json:"status"`
	Attempts  int64  `json:"attempts"`
	LastError string `json:"last_error"`
}

// deadImport waits for a dead inbox_import invocation of an event about
// key, and returns it.
func deadImport(t *testing.T, env *kilntest.Env, key string) invocation {
	t.Helper()
	var found invocation
	kilntest.Eventually(t, waitFor, func() bool {
		code, body := call(t, env, http.MethodGet, "/function_invocations?status=dead&limit=100", env.Key, "", nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var list struct {
			Data []invocation `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &list))
		for _, inv := range list.Data {
			require.Equal(t, "dead", inv.Status)
			if inv.Function != functions.InboxImportName {
				continue
			}
			code, body := call(t, env, http.MethodGet, "/events/"+inv.EventID, env.Key, "", nil)
			require.Equal(t, http.StatusOK, code, "%s", body)
			var ev struct {
				Type string               `json:"type"`
				Data functions.ObjectData `json:"data"`
			}
			require.NoError(t, json.Unmarshal(body, &ev))
			require.Equal(t, store.EventObjectCreated, ev.Type)
			if ev.Data.Key == key {
				found = inv
				return true
			}
		}
		return false
	}, "a dead import of %s", key)
	require.Contains(t, found.LastError, key)
	return found
}

// retry retries a dead invocation, which makes it pending again.
func retry(t *testing.T, env *kilntest.Env, id string) {
	t.Helper()
	code, body := call(t, env, http.MethodPost, "/function_invocations/"+id+"/retry", env.Key, "", nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	var inv invocation
	require.NoError(t, json.Unmarshal(body, &inv))
	require.Equal(t, id, inv.ID)
	require.Equal(t, "pending", inv.Status)
}

// s3Client opens a minio-go client on the bucket of an s3:// URL of the
// form kiln takes.
func s3Client(t testing.TB, rawURL string) (*minio.Client, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	require.Equal(t, "s3", u.Scheme)
	q := u.Query()
	secret, _ := u.User.Password()
	secure, _ := strconv.ParseBool(q.Get("secure"))
	client, err := minio.New(q.Get("endpoint"), &minio.Options{
		Creds: credentials.NewStaticV4(u.User.Username(), secret, ""), Secure: secure, Region: q.Get("region"),
	})
	require.NoError(t, err)
	require.Empty(t, q.Get("prefix"), "these tests use a bucket without a key prefix")
	return client, u.Host
}

// TestInboxPolling drops objects into the inbox of a polling kiln: one
// with a sidecar becomes a file and a batch that completes, one without
// becomes a file only, and both leave the inbox.
func TestInboxPolling(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startInbox(t, backend, 50*time.Millisecond, nil)
			c := env.Client()
			ctx := context.Background()

			const n = 4
			input := kilntest.ChatLines(n, 0)
			// The sidecar first: an object seen without one is a file only.
			put(t, env, "inbox/job1.jsonl"+functions.SidecarSuffix, []byte(chatSidecar))
			etag := put(t, env, "inbox/job1.jsonl", input)

			f := waitFile(t, c, "job1.jsonl")
			require.EqualValues(t, len(input), f.Bytes)
			require.Equal(t, input, content(t, c, f.ID))
			bs := batchesOf(t, c, f.ID)
			require.Len(t, bs, 1)
			require.Equal(t, "/v1/chat/completions", bs[0].Endpoint)
			require.Equal(t, "24h", bs[0].CompletionWindow)
			require.Equal(t, "inbox", bs[0].Metadata["source"])

			rec, err := env.App.Store.InboxGet(ctx, "inbox/job1.jsonl", etag)
			require.NoError(t, err)
			require.Equal(t, f.ID, rec.FileID)
			require.Equal(t, bs[0].ID, rec.BatchID)

			requireCompleted(t, c, kilntest.WaitBatch(t, c, bs[0].ID), n)
			kilntest.Eventually(t, waitFor, func() bool {
				return gone(t, env, "inbox/job1.jsonl") && gone(t, env, "inbox/job1.jsonl"+functions.SidecarSuffix)
			}, "the inbox object and its sidecar to be removed")

			// No sidecar: a file, no batch. Deeper keys are inbox objects
			// too; the file is named by the last segment.
			plain := []byte(`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[]}}` + "\n")
			etag = put(t, env, "inbox/team-a/plain.jsonl", plain)
			pf := waitFile(t, c, "plain.jsonl")
			require.Equal(t, plain, content(t, c, pf.ID))
			require.Empty(t, batchesOf(t, c, pf.ID))
			rec, err = env.App.Store.InboxGet(ctx, "inbox/team-a/plain.jsonl", etag)
			require.NoError(t, err)
			require.Equal(t, pf.ID, rec.FileID)
			require.Empty(t, rec.BatchID)
			kilntest.Eventually(t, waitFor, func() bool { return gone(t, env, "inbox/team-a/plain.jsonl") },
				"the inbox object to be removed")

			// Objects outside the inbox, and sidecars without their
			// object, are left alone.
			put(t, env, "elsewhere/job.jsonl", input)
			put(t, env, "inbox/orphan.jsonl"+functions.SidecarSuffix, []byte(chatSidecar))
			n0, err := env.App.Inbox.Poll(ctx)
			require.NoError(t, err)
			require.Zero(t, n0)
			require.False(t, gone(t, env, "elsewhere/job.jsonl"))
			require.False(t, gone(t, env, "inbox/orphan.jsonl"+functions.SidecarSuffix))
			require.Len(t, files(t, c), 3, "job1.jsonl, plain.jsonl and the batch's output") // no more
		})
	}
}

// TestInboxMetadata asks for a batch with S3 user metadata instead of a
// sidecar (the folder store keeps no metadata, so S3 only).
func TestInboxMetadata(t *testing.T) {
	t.Parallel()
	env := startInbox(t, "postgres", 50*time.Millisecond, nil)
	c := env.Client()
	client, bucket := s3Client(t, env.App.Cfg.ObjectStore)
	const n = 3
	input := kilntest.ChatLines(n, 0)
	_, err := client.PutObject(context.Background(), bucket, "inbox/meta.jsonl", bytes.NewReader(input), int64(len(input)),
		minio.PutObjectOptions{UserMetadata: map[string]string{
			functions.MetaEndpoint:         "/v1/chat/completions",
			functions.MetaModel:            "sim-model",
			functions.MetaCompletionWindow: "2h",
			functions.MetaPriority:         "7",
		}})
	require.NoError(t, err)

	f := waitFile(t, c, "meta.jsonl")
	b := waitBatchOf(t, c, f.ID)
	requireCompleted(t, c, b, n)
	require.Equal(t, "sim-model", b.Model)
	require.EqualValues(t, 2*3600, b.ExpiresAt-b.CreatedAt)
	kilntest.Eventually(t, waitFor, func() bool { return gone(t, env, "inbox/meta.jsonl") }, "the inbox object to be removed")
}

// TestInboxDeadLetters: a sidecar kiln cannot take makes the import a dead
// letter and creates nothing; fixing it and retrying, or writing a new
// version of the object, imports it.
func TestInboxDeadLetters(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startInbox(t, backend, 50*time.Millisecond, nil)
			c := env.Client()
			const n = 2
			input := kilntest.ChatLines(n, 0)

			// Unknown fields: dead at once, fixed, retried.
			put(t, env, "inbox/typo.jsonl"+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/chat/completions","completion_windw":"24h"}`))
			put(t, env, "inbox/typo.jsonl", input)
			// An unsupported endpoint: dead, then a new version of the
			// object after the sidecar is fixed.
			put(t, env, "inbox/images.jsonl"+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/images/generations"}`))
			put(t, env, "inbox/images.jsonl", input)

			typo := deadImport(t, env, "inbox/typo.jsonl")
			require.Contains(t, typo.LastError, "unknown field")
			require.EqualValues(t, 1, typo.Attempts, "a permanent error is not retried")
			images := deadImport(t, env, "inbox/images.jsonl")
			require.Contains(t, images.LastError, "unsupported endpoint")

			// Nothing was created, and the objects wait in the inbox.
			require.Empty(t, files(t, c))
			require.Empty(t, batches(t, c))
			require.False(t, gone(t, env, "inbox/typo.jsonl"))
			require.False(t, gone(t, env, "inbox/images.jsonl"))

			// Retrying unchanged fails the same way: the retry makes the
			// invocation pending, so dead again means it ran again.
			retry(t, env, typo.ID)
			again := deadImport(t, env, "inbox/typo.jsonl")
			require.Equal(t, typo.ID, again.ID)
			require.Contains(t, again.LastError, "unknown field")
			require.Empty(t, files(t, c))

			// Fixed and retried: imported.
			put(t, env, "inbox/typo.jsonl"+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/chat/completions","completion_window":"24h"}`))
			retry(t, env, typo.ID)
			f := waitFile(t, c, "typo.jsonl")
			requireCompleted(t, c, waitBatchOf(t, c, f.ID), n)
			// Only a dead invocation can be retried.
			code, body := call(t, env, http.MethodPost, "/function_invocations/"+typo.ID+"/retry", env.Key, "", nil)
			require.Equal(t, http.StatusConflict, code, "%s", body)

			// Fixed, then a new version of the object: imported (the dead
			// letter of the old version stays dead).
			put(t, env, "inbox/images.jsonl"+functions.SidecarSuffix, []byte(chatSidecar))
			input2 := kilntest.ChatLines(n+1, 0)
			put(t, env, "inbox/images.jsonl", input2)
			f = waitFile(t, c, "images.jsonl")
			require.Equal(t, input2, content(t, c, f.ID))
			requireCompleted(t, c, waitBatchOf(t, c, f.ID), n+1)
			kilntest.Eventually(t, waitFor, func() bool {
				return gone(t, env, "inbox/typo.jsonl") && gone(t, env, "inbox/typo.jsonl"+functions.SidecarSuffix) &&
					gone(t, env, "inbox/images.jsonl") && gone(t, env, "inbox/images.jsonl"+functions.SidecarSuffix)
			}, "the imported objects and their sidecars to be removed")
		})
	}
}

// minioNotification is a bucket notification as MinIO's webhook target
// sends it: the key URL-encoded, the ETag bare.
func minioNotification(bucket, key, etag string, size int64) []byte {
	body, _ := json.Marshal(map[string]any{
		"EventName": "s3:ObjectCreated:Put",
		"Key":       bucket + "/" + key,
		"Records": []any{map[string]any{
			"eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
			"eventTime": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "eventName": "s3:ObjectCreated:Put",
			"userIdentity":      map[string]string{"principalId": "kiln"},
			"requestParameters": map[string]string{"principalId": "kiln", "region": "", "sourceIPAddress": "127.0.0.1"},
			"responseElements":  map[string]string{"x-amz-request-id": "1", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": "Config",
				"bucket": map[string]any{"name": bucket, "ownerIdentity": map[string]string{"principalId": "kiln"}, "arn": "arn:aws:s3:::" + bucket},
				"object": map[string]any{"key": url.QueryEscape(key), "size": size, "eTag": etag,
					"contentType": "application/octet-stream", "sequencer": "1"},
			},
		}},
	})
	return body
}

// TestInboxBucketNotifications runs kiln without polling, told of objects
// by a MinIO webhook target that posts to /v1/object_events.
func TestInboxBucketNotifications(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	m := testenv.StartMinIOWith(t, testenv.MinIOOptions{Env: []string{
		"MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY=http://127.0.0.1:" + strconv.Itoa(port) + "/v1/object_events",
		// MinIO sends it as "Authorization: Bearer <token>".
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_PRIMARY=" + kilntest.Key,
	}})
	env := startInbox(t, "postgres", -1, func(c *config.Config) {
		c.Addr = "127.0.0.1:" + strconv.Itoa(port)
		c.ObjectStore = m.URL()
	})
	require.Negative(t, env.App.Cfg.InboxPollInterval)
	c := env.Client()
	ctx := context.Background()
	client, bucket := s3Client(t, m.URL())

	// kiln takes an empty notification, so it would take MinIO's.
	code, body := call(t, env, http.MethodPost, "/object_events", env.Key, "application/json", []byte(`{"Records":[]}`))
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"object":"object_events","records":0,"created":0}`, string(body))

	// Written before the bucket notifies: only polling, which is off,
	// could find it.
	early := []byte(`{"custom_id":"e","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[]}}` + "\n")
	earlyETag := put(t, env, "inbox/early.jsonl", early)

	cfg := notification.Configuration{}
	q := notification.NewConfig(notification.NewArn("minio", "sqs", "", "PRIMARY", "webhook"))
	q.AddEvents(notification.ObjectCreatedAll)
	q.AddFilterPrefix("inbox/")
	cfg.AddQueue(q)
	require.NoError(t, client.SetBucketNotification(ctx, bucket, cfg))

	const n = 3
	input := kilntest.ChatLines(n, 0)
	put(t, env, "inbox/notified.jsonl"+functions.SidecarSuffix, []byte(chatSidecar))
	etag := put(t, env, "inbox/notified.jsonl", input)
	// Outside the prefix filter: MinIO does not notify it (and kiln would
	// ignore it).
	put(t, env, "outbox/other.jsonl", input)

	f := waitFile(t, c, "notified.jsonl")
	rec, err := env.App.Store.InboxGet(ctx, "inbox/notified.jsonl", etag)
	require.NoError(t, err)
	require.Equal(t, f.ID, rec.FileID)
	requireCompleted(t, c, waitBatchOf(t, c, f.ID), n)
	kilntest.Eventually(t, waitFor, func() bool {
		return gone(t, env, "inbox/notified.jsonl") && gone(t, env, "inbox/notified.jsonl"+functions.SidecarSuffix)
	}, "the inbox object and its sidecar to be removed")

	// The notified object went through; the early one, never notified,
	// did not: kiln is not listing the inbox.
	require.Empty(t, filesNamed(t, c, "early.jsonl"))
	require.False(t, gone(t, env, "inbox/early.jsonl"))
	require.False(t, gone(t, env, "outbox/other.jsonl"))

	// The same notification, by hand, twice: one event.
	note := minioNotification(bucket, "inbox/early.jsonl", earlyETag, int64(len(early)))
	for i, want := range []int{1, 0} {
		code, body := call(t, env, http.MethodPost, "/object_events", env.Key, "application/json", note)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var res struct {
			Object  string `json:"object"`
			Records int    `json:"records"`
			Created int    `json:"created"`
		}
		require.NoError(t, json.Unmarshal(body, &res))
		require.Equal(t, "object_events", res.Object)
		require.Equal(t, 1, res.Records)
		require.Equal(t, want, res.Created, "notification %d", i+1)
	}
	ef := waitFile(t, c, "early.jsonl")
	require.Equal(t, early, content(t, c, ef.ID))
	require.Empty(t, batchesOf(t, c, ef.ID))

	// Without the API key: 401; not JSON: 400, both in OpenAI's envelope.
	for _, tc := range []struct {
		name, key string
		body      []byte
		code      int
	}{
		{"no key", "", note, http.StatusUnauthorized},
		{"wrong key", "sk-wrong-key-0000", note, http.StatusUnauthorized},
		{"not JSON", env.Key, []byte("this is not json"), http.StatusBadRequest},
	} {
		code, body := call(t, env, http.MethodPost, "/object_events", tc.key, "application/json", tc.body)
		require.Equal(t, tc.code, code, "%s: %s", tc.name, body)
		var e struct {
			Error *struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", tc.name, body)
		require.NotNil(t, e.Error, "%s: %s", tc.name, body)
		require.NotEmpty(t, e.Error.Message, tc.name)
		require.Equal(t, "invalid_request_error", e.Error.Type, tc.name)
	}
	require.Len(t, filesNamed(t, c, "other.jsonl"), 0)
}

// TestInboxIdempotent: however often and by however many pollers an object
// version is seen, while it is being imported, it becomes one file.
func TestInboxIdempotent(t *testing.T) {
	t.Parallel()
	const objects = 6
	input := kilntest.ChatLines(2, 0)
	check := func(t *testing.T, env *kilntest.Env, etags map[string]string, pollers ...*functions.Inbox) {
		t.Helper()
		c := env.Client()
		ctx := context.Background()
		// Hammer Poll from every poller until every object is imported.
		done := make(chan struct{})
		var wg sync.WaitGroup
		var pollErr error
		var mu sync.Mutex
		stop := sync.OnceFunc(func() { close(done); wg.Wait() })
		defer stop() // also when the test fails while they poll
		for _, in := range pollers {
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-done:
							return
						default:
						}
						if _, err := in.Poll(ctx); err != nil {
							mu.Lock()
							pollErr = err
							mu.Unlock()
						}
					}
				})
			}
		}
		kilntest.Eventually(t, waitFor, func() bool {
			for key := range etags {
				if !gone(t, env, key) {
					return false
				}
			}
			return true
		}, "every object to be imported and removed")
		stop()
		require.NoError(t, pollErr)

		fs := files(t, c)
		byID := map[string]openai.FileObject{}
		for _, f := range fs {
			byID[f.ID] = f
		}
		imported := 0
		for key, etag := range etags {
			rec, err := env.App.Store.InboxGet(ctx, key, etag)
			require.NoError(t, err, key)
			f, ok := byID[rec.FileID]
			require.True(t, ok, "the file of %s is listed", key)
			require.Len(t, filesNamed(t, c, f.Filename), 1, key)
			imported++
			if rec.BatchID != "" {
				requireCompleted(t, c, kilntest.WaitBatch(t, c, rec.BatchID), 2)
			}
		}
		require.Equal(t, objects, imported)
		// One file per object, one batch (sidecar), and its output.
		require.Len(t, files(t, c), objects+1)
		require.Len(t, batches(t, c), 1)
		code, body := call(t, env, http.MethodGet, "/events?type="+store.EventObjectCreated+"&limit=100", env.Key, "", nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var evs struct {
			Data []json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &evs))
		require.Len(t, evs.Data, objects, "one object.created event per object version")
	}
	drop := func(t *testing.T, env *kilntest.Env) map[string]string {
		t.Helper()
		etags := map[string]string{}
		put(t, env, "inbox/obj-0.jsonl"+functions.SidecarSuffix, []byte(chatSidecar))
		for i := range objects {
			key := fmt.Sprintf("inbox/obj-%d.jsonl", i)
			etags[key] = put(t, env, key, input)
		}
		return etags
	}

	// One kiln, its watcher and concurrent Polls, on both backends.
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startInbox(t, backend, 5*time.Millisecond, nil)
			check(t, env, drop(t, env), env.App.Inbox)
		})
	}

	// Two kilns on one database and bucket, both polling.
	t.Run("two-kilns", func(t *testing.T) {
		t.Parallel()
		a := startInbox(t, "postgres", 5*time.Millisecond, nil)
		b := startInbox(t, "postgres", 5*time.Millisecond, func(c *config.Config) {
			c.DatabaseURL = a.App.Cfg.DatabaseURL
			c.ObjectStore = a.App.Cfg.ObjectStore
		})
		check(t, a, drop(t, a), a.App.Inbox, b.App.Inbox)
	})
}

// TestInboxReupload: the same bytes uploaded again under the same key after
// an import (the same ETag on S3) are a new object, imported again; a
// sighting of the old, removed object is not.
func TestInboxReupload(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startInbox(t, backend, 50*time.Millisecond, nil)
			c := env.Client()
			ctx := context.Background()
			data := kilntest.ChatLines(2, 0)
			etag := put(t, env, "inbox/again.jsonl", data)
			first := waitFile(t, c, "again.jsonl")
			kilntest.Eventually(t, waitFor, func() bool { return gone(t, env, "inbox/again.jsonl") }, "the first import")

			// A stale sighting of the removed object does nothing.
			created, err := env.App.Inbox.Seen(ctx, "inbox/again.jsonl", etag, int64(len(data)))
			require.NoError(t, err)
			require.False(t, created)

			put(t, env, "inbox/again.jsonl", data)
			kilntest.Eventually(t, waitFor, func() bool { return len(filesNamed(t, c, "again.jsonl")) == 2 }, "the second import")
			kilntest.Eventually(t, waitFor, func() bool { return gone(t, env, "inbox/again.jsonl") }, "the second removal")
			for _, f := range filesNamed(t, c, "again.jsonl") {
				require.Equal(t, data, content(t, c, f.ID), f.ID)
			}
			require.NotEmpty(t, first.ID)
		})
	}
}
