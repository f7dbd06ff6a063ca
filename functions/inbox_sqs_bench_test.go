package functions_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// BenchmarkInbox imports objects into a kiln on Postgres and MinIO (no
// agent: the imports alone) and reports objects/s, from kiln's start until
// the last import's invocation has succeeded, for two ways of learning of
// them, in the same run:
//
//   - SQS: 1,000 S3 notifications queued on goaws beforehand, consumed
//     through the bridge (KILN_INBOX_SQS_URL, no polling);
//   - Poll: the same objects found by listing the inbox
//     (KILN_INBOX_POLL_INTERVAL, here 1s; the first listing is at start).
//
// KILN_BENCH_INBOX_OBJECTS changes the count.
//
//	scripts/test-services.sh run -- go test -run '^$' -bench BenchmarkInbox -benchtime 1x ./functions/
func BenchmarkInbox(b *testing.B) {
	n := 1000
	if s := os.Getenv("KILN_BENCH_INBOX_OBJECTS"); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		require.NoError(b, err)
	}
	input := kilntest.ChatLines(1, 0)
	rates := map[string]float64{}
	for _, mode := range []string{"SQS", "Poll"} {
		b.Run(mode, func(b *testing.B) {
			var took time.Duration
			for range b.N {
				s3URL := testenv.S3URL(b)
				keys := putInbox(b, s3URL, n, input)
				configure := func(c *config.Config) {
					c.ObjectStore = s3URL
					c.InboxPrefix = "inbox/"
					c.InboxPollInterval = time.Second
				}
				if mode == "SQS" {
					srv := testenv.SQS(b)
					q := srv.NewQueue(b, testenv.QueueOptions{})
					queueNotes(b, srv.Client(), q.URL, s3URL, keys, input)
					configure = func(c *config.Config) {
						c.ObjectStore = s3URL
						c.InboxPrefix = "inbox/"
						c.InboxPollInterval = -1
						c.InboxSQSURL = q.URL
					}
				}
				start := time.Now()
				env := kilntest.Start(b, "postgres", kilntest.Options{NoAgent: true, Configure: configure})
				kilntest.Eventually(b, 10*time.Minute, func() bool {
					return env.Metric(b, fmt.Sprintf(`kiln_function_invocations_total{function=%q,outcome="succeeded"}`, functions.InboxImportName)) >= float64(n)
				}, "%d imports", n)
				took += time.Since(start)
				require.NoError(b, env.Stop())
			}
			rate := float64(n*b.N) / took.Seconds()
			rates[mode] = rate
			b.ReportMetric(rate, "objects/s")
			b.ReportMetric(0, "ns/op")
		})
	}
	if rates["Poll"] > 0 {
		b.Logf("SQS/Poll: %.2f (%.0f vs %.0f objects/s, %d objects)", rates["SQS"]/rates["Poll"], rates["SQS"], rates["Poll"], n)
	}
}

// putInbox writes n objects under inbox/ directly, 16 at a time, and
// returns their keys and ETags.
func putInbox(b *testing.B, s3URL string, n int, data []byte) map[string]string {
	b.Helper()
	client, bucket := s3Client(b, s3URL)
	keys := make([]string, n)
	etags := make([]string, n)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		keys[i] = fmt.Sprintf("inbox/bench-%05d.jsonl", i)
		g.Go(func() error {
			info, err := client.PutObject(context.Background(), bucket, keys[i], bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			etags[i] = info.ETag
			return err
		})
	}
	require.NoError(b, g.Wait())
	out := make(map[string]string, n)
	for i, k := range keys {
		out[k] = etags[i]
	}
	return out
}

// queueNotes queues one S3 notification per object, ten per call.
func queueNotes(b *testing.B, c *sqs.Client, queueURL, s3URL string, etags map[string]string, data []byte) {
	b.Helper()
	_, bucket := s3Client(b, s3URL)
	var batch []types.SendMessageBatchRequestEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out, err := c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: batch})
		require.NoError(b, err)
		require.Empty(b, out.Failed)
		batch = batch[:0]
	}
	i := 0
	for key, etag := range etags {
		batch = append(batch, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(s3Put(b, bucket, key, etag, len(data))))})
		i++
		if len(batch) == 10 {
			flush()
		}
	}
	flush()
}
