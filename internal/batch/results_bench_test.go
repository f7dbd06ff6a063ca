package batch_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/store"
)

// BenchmarkResultsLatency measures how long a chunk takes, from the moment
// its commit returns (it is durable), to reach a reader tailing the batch
// through Results with wait: a commit a reader waits for, 200 times, on
// each backend, with the writer in the reader's process (its store wakes
// the reader at once) and in another (a second store on the database, as a
// `kiln agent` process has: Postgres notifies, SQLite is polled). It
// reports the median and the 90th percentile.
//
//	go test ./internal/batch -run '^$' -bench ResultsLatency -benchtime 1x
func BenchmarkResultsLatency(b *testing.B) {
	for _, backend := range batchtest.Backends {
		for _, where := range []string{"same-process", "other-process"} {
			b.Run(backend+"/"+where, func(b *testing.B) {
				for range b.N {
					p50, p90 := resultsLatency(b, backend, where == "other-process", 200)
					b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
				}
			})
		}
	}
}

func resultsLatency(b *testing.B, backend string, otherProcess bool, chunks int) (p50, p90 time.Duration) {
	ctx := context.Background()
	env := batchtest.New(b, backend, batch.Limits{ShardSize: 10})
	writer := env.Store
	if otherProcess {
		st, err := store.Open(ctx, env.DatabaseURL, slog.New(slog.DiscardHandler))
		require.NoError(b, err)
		b.Cleanup(st.Close)
		writer = st
	}
	bt := env.CreateBatch(b, batchtest.ChatLines("m", 10))
	require.NoError(b, env.Batches.Validate(ctx, bt.ID))
	sh, _, err := writer.ShardClaim(ctx, "m", batchtest.Agent, time.Hour, 0)
	require.NoError(b, err)

	seen := make(chan time.Time)
	readerDone := make(chan error, 1)
	go func() {
		after := batch.Cursor{}
		for got := 0; got < chunks; {
			r, err := env.Batches.Results(ctx, bt.ID, after, 0, 10*time.Second)
			if err != nil {
				readerDone <- err
				return
			}
			if r.Lines == 0 {
				readerDone <- fmt.Errorf("no line after %s within the wait", after)
				return
			}
			var buf bytes.Buffer
			if err := r.Write(ctx, &buf); err != nil {
				readerDone <- err
				return
			}
			at := time.Now()
			for range r.Lines {
				seen <- at
				got++
			}
			after = r.Next
		}
		readerDone <- nil
	}()

	var lat []time.Duration
	line := []byte(`{"id":"batch_req_1","custom_id":"r1","response":{"status_code":200,"request_id":"x","body":{}},"error":null}` + "\n")
	for seq := range chunks {
		c := store.Chunk{BatchID: bt.ID, Shard: sh.Idx, Seq: int64(seq), ObjectKey: batch.ChunkKey(bt.ID, sh.Idx, int64(seq)),
			OutputLines: 1, OutputBytes: int64(len(line))}
		_, err := env.Bucket.Put(ctx, batch.ChunkOutputKey(c.ObjectKey), bytes.NewReader(line), int64(len(line)))
		require.NoError(b, err)
		require.NoError(b, writer.ChunkCommit(ctx, batchtest.Agent, c))
		durable := time.Now()
		select {
		case at := <-seen:
			lat = append(lat, max(0, at.Sub(durable)))
		case err := <-readerDone:
			b.Fatalf("the reader stopped: %v", err)
		}
	}
	require.NoError(b, <-readerDone)
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*9/10]
}
