package main

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// waitFor bounds the waits: a Lambda's first invocation starts the
// handler (about a second on a loaded machine), the rest take
// milliseconds.
const waitFor = 60 * time.Second

const sidecar = `{"endpoint":"/v1/chat/completions"}`

// TestMain points the AWS SDK at test credentials: kiln and the handler
// call emulators on loopback, and must never ask the instance metadata
// service.
func TestMain(m *testing.M) {
	testenv.SetAWSTestEnv()
	os.Exit(m.Run())
}

var (
	zipOnce sync.Once
	zipDir  string
	zipErr  error
	zipOut  []byte
)

// bootstrap builds the Lambda zip as `make lambda` does (go run
// ./internal/lambdazip), for this machine's architecture, once per test
// binary, checks it, and returns the bootstrap it holds.
func bootstrap(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		testenv.NotRun(t, "the Lambda emulator runs Linux amd64 and arm64 binaries only")
	}
	zipOnce.Do(func() {
		zipDir, zipErr = os.MkdirTemp("", "kiln-lambda-zip-")
		if zipErr != nil {
			return
		}
		cmd := exec.Command("go", "run", "github.com/kilnhq/kiln/internal/lambdazip", "-o", zipDir, runtime.GOARCH)
		zipOut, zipErr = cmd.CombinedOutput()
	})
	require.NoError(t, zipErr, "make lambda's build:\n%s", zipOut)
	zipPath := filepath.Join(zipDir, "kiln-lambda-"+runtime.GOARCH+".zip")
	require.Contains(t, string(zipOut), zipPath)

	zr, err := zip.OpenReader(zipPath)
	require.NoError(t, err)
	defer zr.Close()
	require.Len(t, zr.File, 1, "the zip holds bootstrap alone")
	f := zr.File[0]
	require.Equal(t, "bootstrap", f.Name)
	require.Equal(t, os.FileMode(0o755), f.Mode().Perm())
	rc, err := f.Open()
	require.NoError(t, err)
	defer rc.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bootstrap")
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, rc)
	require.NoError(t, err)
	require.NoError(t, out.Close())

	e, err := elf.Open(bin)
	require.NoError(t, err)
	defer e.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	require.Equal(t, want, e.Machine)
	require.Nil(t, e.Section(".interp"), "static: provided.al2023 needs no libc of ours")
	return bin
}

// lambdaEnv is what the handler needs of kiln's: its database and bucket
// (s3URL: kiln's, or a proxy in front of it) and its inbox.
func lambdaEnv(env *kilntest.Env, s3URL string) []string {
	return append(testenv.AWSTestEnv(),
		"KILN_DATABASE_URL="+env.App.Cfg.DatabaseURL, "KILN_OBJECT_STORE="+s3URL,
		"KILN_INBOX_PREFIX=inbox/", "KILN_LOG_LEVEL=debug")
}

func invoke(t *testing.T, fn *testenv.Lambda, payload []byte) *awslambda.InvokeOutput {
	t.Helper()
	out, err := fn.Client().Invoke(context.Background(), &awslambda.InvokeInput{
		FunctionName: aws.String(testenv.LambdaFunctionName), Payload: payload})
	require.NoError(t, err)
	return out
}

// s3Put is AWS S3's notification of a created object.
func s3Put(t *testing.T, bucket, key, etag string, size int) []byte {
	t.Helper()
	var r events.S3EventRecord
	r.EventVersion, r.EventSource, r.AWSRegion, r.EventName = "2.1", "aws:s3", "us-east-1", "ObjectCreated:Put"
	r.EventTime = time.Now().UTC()
	r.S3.SchemaVersion, r.S3.ConfigurationID = "1.0", "kiln-inbox"
	r.S3.Bucket.Name, r.S3.Bucket.Arn = bucket, "arn:aws:s3:::"+bucket
	r.S3.Object.Key = strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
	r.S3.Object.ETag, r.S3.Object.Size = etag, int64(size)
	b, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{r}})
	require.NoError(t, err)
	return b
}

// inSQS wraps bodies in an SQS event, as Lambda's SQS trigger delivers them.
func inSQS(t *testing.T, bodies ...[]byte) []byte {
	t.Helper()
	var ev events.SQSEvent
	for i, body := range bodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("msg-%d", i), Body: string(body),
			EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:kiln-inbox", AWSRegion: "us-east-1"})
	}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	return b
}

func put(t *testing.T, env *kilntest.Env, key string, data []byte) string {
	t.Helper()
	info, err := env.App.Bucket.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return strings.Trim(info.ETag, `"`)
}

func bucketName(t *testing.T, s3URL string) string {
	t.Helper()
	u, err := url.Parse(s3URL)
	require.NoError(t, err)
	return u.Host
}

func filesNamed(t *testing.T, c openai.Client, name string) []openai.FileObject {
	t.Helper()
	var out []openai.FileObject
	it := c.Files.ListAutoPaging(context.Background(), openai.FileListParams{})
	for it.Next() {
		if it.Current().Filename == name {
			out = append(out, it.Current())
		}
	}
	require.NoError(t, it.Err())
	return out
}

func waitFile(t *testing.T, c openai.Client, name string) openai.FileObject {
	t.Helper()
	var got []openai.FileObject
	kilntest.Eventually(t, waitFor, func() bool {
		got = filesNamed(t, c, name)
		return len(got) > 0
	}, "file %s", name)
	require.Len(t, got, 1, "one file for %s", name)
	return got[0]
}

// batchOf waits for the batch of fileID to end.
func batchOf(t *testing.T, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	var id string
	kilntest.Eventually(t, waitFor, func() bool {
		it := c.Batches.ListAutoPaging(context.Background(), openai.BatchListParams{})
		for it.Next() {
			if it.Current().InputFileID == fileID {
				id = it.Current().ID
			}
		}
		require.NoError(t, it.Err())
		return id != ""
	}, "a batch of %s", fileID)
	return kilntest.WaitBatch(t, c, id)
}

// TestBootstrapUnderRIE runs the zip's bootstrap, as make lambda builds it,
// under the AWS Lambda Runtime Interface Emulator, beside a running kiln on
// the same database and bucket: S3 notifications, direct and in an SQS
// event, import inbox objects into that kiln, which runs their batches; a
// kiln event runs the functions subscribed to it; S3's test event is
// ignored.
func TestBootstrapUnderRIE(t *testing.T) {
	t.Parallel()
	bin := bootstrap(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			s3URL := testenv.S3URL(t)
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.ObjectStore = s3URL
				c.InboxPrefix = "inbox/"
				c.InboxPollInterval = -1 // the Lambda is the inbox's only way in
			}})
			fn := testenv.StartLambda(t, bin, testenv.LambdaOptions{Env: lambdaEnv(env, s3URL)})
			c := env.Client()
			bucket := bucketName(t, s3URL)
			input := kilntest.ChatLines(3, 0)

			put(t, env, "inbox/direct.jsonl"+functions.SidecarSuffix, []byte(sidecar))
			etag := put(t, env, "inbox/direct.jsonl", input)
			out := invoke(t, fn, s3Put(t, bucket, "inbox/direct.jsonl", etag, len(input)))
			require.Nil(t, out.FunctionError, "%s\n%s", out.Payload, fn.LogTail())
			require.JSONEq(t, `{"kind":"s3","records":1}`, string(out.Payload))
			f := waitFile(t, c, "direct.jsonl")
			b := batchOf(t, c, f.ID)
			require.Equal(t, openai.BatchStatusCompleted, b.Status)
			require.EqualValues(t, 3, b.RequestCounts.Completed)

			etag = put(t, env, "inbox/via sqs.jsonl", input)
			out = invoke(t, fn, inSQS(t, s3Put(t, bucket, "inbox/via sqs.jsonl", etag, len(input))))
			require.Nil(t, out.FunctionError, "%s", out.Payload)
			require.JSONEq(t, `{"kind":"sqs","records":1}`, string(out.Payload))
			waitFile(t, c, "via sqs.jsonl")

			out = invoke(t, fn, []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"`+bucket+`"}`))
			require.Nil(t, out.FunctionError, "%s", out.Payload)
			require.JSONEq(t, `{"kind":"s3:TestEvent","records":0}`, string(out.Payload))

			out = invoke(t, fn, []byte(`{"id":"evt_lambda_test","object":"event","type":"file.created","created_at":1,"data":{"id":"file_x"}}`))
			require.Nil(t, out.FunctionError, "%s", out.Payload)
			require.JSONEq(t, `{"kind":"event","records":1}`, string(out.Payload))
			code, body := call(t, env, "/events/evt_lambda_test")
			require.Equal(t, http.StatusOK, code, "the event is recorded where kiln serve sees it: %s", body)

			out = invoke(t, fn, []byte(`{"hello":"world"}`))
			require.Equal(t, "Unhandled", aws.ToString(out.FunctionError))
			require.Contains(t, string(out.Payload), "unrecognised payload")
		})
	}
}

// call GETs a kiln API path.
func call(t *testing.T, env *kilntest.Env, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.Key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

type invocation struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	Function  string `json:"function"`
	Status    string `json:"status"`
	Attempts  int64  `json:"attempts"`
	LastError string `json:"last_error"`
}

// importOf waits for the inbox_import invocation of key's object.created
// event to reach status, and returns it.
func importOf(t *testing.T, env *kilntest.Env, key, status string) invocation {
	t.Helper()
	var found invocation
	kilntest.Eventually(t, waitFor, func() bool {
		code, body := call(t, env, "/function_invocations?status="+status+"&limit=100")
		require.Equal(t, http.StatusOK, code, "%s", body)
		var list struct{ Data []invocation }
		require.NoError(t, json.Unmarshal(body, &list))
		for _, inv := range list.Data {
			if inv.Function != functions.InboxImportName {
				continue
			}
			code, body := call(t, env, "/events/"+inv.EventID)
			require.Equal(t, http.StatusOK, code, "%s", body)
			var ev struct{ Data functions.ObjectData }
			require.NoError(t, json.Unmarshal(body, &ev))
			if ev.Data.Key == key {
				found = inv
				return true
			}
		}
		return false
	}, "a %s import of %s", status, key)
	return found
}

// TestRemoteFunction runs kiln's inbox_import as a Lambda function: kiln
// serve invokes the zip's bootstrap under the emulator through
// aws-sdk-go-v2's Lambda client for each object its poll finds. A
// function's error payload is recorded on the invocation (a permanent
// one, a sidecar kiln cannot use, makes a dead letter at once); a
// function that times out is retried as any failure, then a dead letter.
// Not parallel: kiln finds the emulator through AWS_ENDPOINT_URL_LAMBDA.
func TestRemoteFunction(t *testing.T) {
	bin := bootstrap(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			s3URL, dbURL := testenv.S3URL(t), storetest.URL(t, backend)
			hold := testenv.HoldS3(t, s3URL)
			// The handler reaches the bucket through a proxy that can hold
			// one object; kiln serve reaches it directly.
			fn := testenv.StartLambda(t, bin, testenv.LambdaOptions{Timeout: 3 * time.Second,
				Env: append(testenv.AWSTestEnv(), "KILN_DATABASE_URL="+dbURL, "KILN_OBJECT_STORE="+hold.URL, "KILN_INBOX_PREFIX=inbox/")})
			t.Setenv("AWS_ENDPOINT_URL_LAMBDA", fn.Endpoint)
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.DatabaseURL = dbURL
				c.ObjectStore = s3URL
				c.InboxPrefix = "inbox/"
				c.InboxPollInterval = 50 * time.Millisecond
				c.RemoteFunctions = []string{functions.InboxImportName + "=" + testenv.LambdaFunctionName}
				c.FunctionMaxAttempts = 2
				c.RetryBase, c.RetryMax = 100*time.Millisecond, 200*time.Millisecond
			}})
			c := env.Client()
			input := kilntest.ChatLines(2, 0)

			t.Run("Imports", func(t *testing.T) {
				put(t, env, "inbox/remote.jsonl"+functions.SidecarSuffix, []byte(sidecar))
				put(t, env, "inbox/remote.jsonl", input)
				f := waitFile(t, c, "remote.jsonl")
				require.Equal(t, openai.BatchStatusCompleted, batchOf(t, c, f.ID).Status)
				// inbox_import is kiln serve's only as a remote function: the
				// import ran in the handler.
				inv := importOf(t, env, "inbox/remote.jsonl", "succeeded")
				require.GreaterOrEqual(t, inv.Attempts, int64(1))
			})

			t.Run("ErrorPayload", func(t *testing.T) {
				put(t, env, "inbox/bad.jsonl"+functions.SidecarSuffix, []byte(`{"endpoint":"/v1/chat/completions","colour":"red"}`))
				put(t, env, "inbox/bad.jsonl", input)
				inv := importOf(t, env, "inbox/bad.jsonl", "dead")
				require.EqualValues(t, 1, inv.Attempts, "a permanent error: no retry")
				require.Contains(t, inv.LastError, "function error (Unhandled)")
				require.Contains(t, inv.LastError, functions.PermanentErrorType)
				require.Contains(t, inv.LastError, "colour", "the function's error payload")
			})

			t.Run("Timeout", func(t *testing.T) {
				hit := hold.Hold("inbox/slow.jsonl")
				put(t, env, "inbox/slow.jsonl", input)
				<-hit
				inv := importOf(t, env, "inbox/slow.jsonl", "dead")
				require.EqualValues(t, 2, inv.Attempts, "retried, then a dead letter")
				// The emulator's timeout, or the handler's own: its context
				// ends at the invocation's deadline, and on a busy machine
				// its error can come back first.
				require.Regexp(t, `Task timed out after 3\.00 seconds|context deadline exceeded`, inv.LastError)
				hold.Release()
				require.Empty(t, filesNamed(t, c, "slow.jsonl"))
			})
		})
	}
}

// BenchmarkInvokeRIE measures Lambda invoke latency through the emulator
// (the SDK's Invoke, the front, the emulator, the bootstrap and back):
// S3's test event, which the handler answers at once, and a kiln event,
// which it records in Postgres and hands to its functions. It reports the
// median and the 90th percentile.
//
//	scripts/test-services.sh run -- go test -run '^$' -bench BenchmarkInvokeRIE -benchtime 200x ./cmd/kiln-lambda/
func BenchmarkInvokeRIE(b *testing.B) {
	binPath := bootstrap(b)
	s3URL := testenv.S3URL(b)
	env := kilntest.Start(b, "postgres", kilntest.Options{NoAgent: true, Configure: func(c *config.Config) {
		c.ObjectStore = s3URL
		c.InboxPrefix = "inbox/"
		c.InboxPollInterval = -1
	}})
	fn := testenv.StartLambda(b, binPath, testenv.LambdaOptions{Env: lambdaEnv(env, s3URL)})
	client := fn.Client()
	ctx := context.Background()
	payloads := map[string]func(i int) []byte{
		"TestEvent": func(int) []byte { return []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent"}`) },
		"KilnEvent": func(i int) []byte {
			return fmt.Appendf(nil, `{"id":"evt_bench_%d_%d","object":"event","type":"file.created","created_at":1,"data":{"id":"file_x"}}`, time.Now().UnixNano(), i)
		},
	}
	// The first invocation starts the handler: not measured.
	_, err := client.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(testenv.LambdaFunctionName), Payload: payloads["TestEvent"](0)})
	require.NoError(b, err)
	for _, name := range []string{"TestEvent", "KilnEvent"} {
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				out, err := client.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(testenv.LambdaFunctionName), Payload: payloads[name](i)})
				lat = append(lat, time.Since(start))
				require.NoError(b, err)
				require.Nil(b, out.FunctionError, "%s", out.Payload)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
		})
	}
}
