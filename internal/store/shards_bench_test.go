package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// The shard-claim benchmark's defaults: a batch of 20,000 shards waiting,
// and 500 shards claimed, committed and finished per claimer count.
const (
	claimBenchShards    = 20_000
	claimBenchClaims    = 500
	claimBenchClaimers  = "1,4,16,64"
	claimBenchShardSize = 100
)

// BenchmarkShardClaims measures the shards per second that the store's own
// queries let agents take through, on each backend: a batch of 20,000
// shards (KILN_BENCH_SHARDS) of 100 requests waits, and C claimers (C in KILN_BENCH_CLAIMERS,
// default 1,4,16,64; on Postgres each with a connection of its own, as
// separate agents have) each loop as an agent does per shard at the store
// level: ShardWaiting, ShardClaim, one ChunkCommit of its results, ShardFinish, until
// 500 shards (KILN_BENCH_CLAIMS) are done. It reports each C's claims/s
// (claims/s-C, the whole cycle of three transactions) and its speed-up over
// one claimer in the same run (xC), so the ceiling of claims per second and
// the C where it stops growing show. Each C runs on a fresh database.
//
//	go test -run '^$' -bench '^BenchmarkShardClaims$' -benchtime 1x ./internal/store/
func BenchmarkShardClaims(b *testing.B) {
	claimers := strings.Split(claimBenchClaimers, ",")
	if v := os.Getenv("KILN_BENCH_CLAIMERS"); v != "" {
		claimers = strings.Split(v, ",")
	}
	shards, claims := claimBenchShards, claimBenchClaims
	for _, v := range []struct {
		env string
		to  *int
	}{{"KILN_BENCH_SHARDS", &shards}, {"KILN_BENCH_CLAIMS", &claims}} {
		raw := os.Getenv(v.env)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive integer", v.env, raw)
		}
		*v.to = n
	}
	if claims > shards {
		b.Fatalf("%d claims of a batch of %d shards", claims, shards)
	}
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) {
			for range b.N {
				var one float64
				for _, s := range claimers {
					c, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || c < 1 {
						b.Fatalf("KILN_BENCH_CLAIMERS: %q is no number of claimers", s)
					}
					r := claimRate(b, backend, c, shards, claims)
					b.ReportMetric(r, fmt.Sprintf("claims/s-%d", c))
					if c == 1 {
						one = r
					} else if one > 0 {
						b.ReportMetric(r/one, fmt.Sprintf("x%d", c))
					}
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// claimRate opens a fresh store of backend, starts a batch of
// total shards, and returns the shards per second that claimers
// concurrent claimers claim, commit and finish until claims are done.
func claimRate(b *testing.B, backend string, claimers, total, claims int) float64 {
	b.Helper()
	ctx := context.Background()
	url := storetest.URL(b, backend)
	if backend == "postgres" {
		// One connection per claimer, and a few for the store itself.
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + "pool_max_conns=" + strconv.Itoa(claimers+4)
	}
	st, err := store.Open(ctx, url, testLog())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	batch := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x",
		CompletionWindow: "24h", Status: store.BatchValidating, CreatedAt: time.Now().Unix(),
		ExpiresAt: time.Now().Add(24 * time.Hour).Unix()}
	if err := st.BatchCreate(ctx, batch); err != nil {
		b.Fatal(err)
	}
	shards := make([]store.Shard, total)
	for i := range shards {
		first := int64(i*claimBenchShardSize + 1)
		shards[i] = store.Shard{FirstLine: first, LastLine: first + claimBenchShardSize - 1,
			Offset: (first - 1) * 200, Requests: claimBenchShardSize}
	}
	if _, err := st.BatchStart(ctx, batch.ID, int64(total*claimBenchShardSize), "m", shards); err != nil {
		b.Fatal(err)
	}

	var left atomic.Int64
	left.Store(int64(claims))
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	start := time.Now()
	for i := range claimers {
		owner := fmt.Sprintf("agent-%d", i)
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := claimOne(ctx, st, owner); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	done, err := st.BatchGet(ctx, batch.ID)
	if err != nil {
		b.Fatal(err)
	}
	if done.ShardsDone != int64(claims) || done.Completed != int64(claims*claimBenchShardSize) {
		b.Fatalf("%d claimers finished %d shards with %d results, want %d and %d",
			claimers, done.ShardsDone, done.Completed, claims, claims*claimBenchShardSize)
	}
	return float64(claims) / elapsed
}

// claimOne does what an agent does at the store per shard: read the
// backlog to choose its model, claim a shard, commit one chunk of its
// results, and finish it.
func claimOne(ctx context.Context, st *store.Store, owner string) error {
	if _, err := st.ShardWaiting(ctx); err != nil {
		return err
	}
	sh, _, err := st.ShardClaim(ctx, "m", owner, time.Minute, 0)
	if err != nil {
		return err
	}
	c := store.Chunk{BatchID: sh.BatchID, Shard: sh.Idx, Seq: sh.Idx, ObjectKey: fmt.Sprintf("chunks/%d", sh.Idx),
		OutputLines: sh.Requests, InputTokens: 10 * sh.Requests, OutputTokens: 30 * sh.Requests,
		OutputBytes: 500 * sh.Requests}
	if err := st.ChunkCommit(ctx, owner, c); err != nil {
		return err
	}
	_, err = st.ShardFinish(ctx, sh.BatchID, sh.Idx, owner, nil)
	return err
}
