package store_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// testShardClaimOrder checks ShardClaim's index-served order against its
// plain statement (ShardNextBySort, which sorts every claimable shard) at
// every claim of a run that mixes projects, priorities, starvation bounds,
// leases that run out, releases, stops and batches that start midway; and
// that concurrent claimers take each shard once.
func testShardClaimOrder(t *testing.T, setup setupFunc) {
	t.Run("ClaimMatchesSort", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		rng := rand.New(rand.NewPCG(1, 2))
		projects := []string{store.DefaultProject}
		for i := range 2 {
			p := store.Project{ID: ids.New(ids.Project), Name: fmt.Sprint("p", i)}
			require.NoError(t, tb.st.ProjectCreate(tb.ctx, p))
			projects = append(projects, p.ID)
		}
		var readyAts []int64
		var batches []string
		start := func(model string) string {
			// Each batch becomes ready at a millisecond of its own, so
			// that starvation bounds fall between batches.
			for len(readyAts) > 0 && time.Now().UnixMilli() <= readyAts[len(readyAts)-1] {
			}
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "f", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix(),
				Priority: int64(rng.IntN(3)) * 5, ProjectID: projects[rng.IntN(len(projects))]}
			require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
			shards := make([]store.Shard, 1+rng.IntN(5))
			for i := range shards {
				shards[i] = store.Shard{FirstLine: int64(i + 1), LastLine: int64(i + 1), Requests: 1}
			}
			_, err := tb.st.BatchStart(tb.ctx, b.ID, int64(len(shards)), model, shards)
			require.NoError(t, err)
			got, err := tb.st.ShardList(tb.ctx, b.ID)
			require.NoError(t, err)
			readyAts = append(readyAts, got[0].ReadyAt)
			batches = append(batches, b.ID)
			return b.ID
		}
		for range 8 {
			start("m")
		}
		start("other")
		_, err := tb.st.BatchRequestStop(tb.ctx, start("m"), store.StopCancelled)
		require.NoError(t, err)

		claims := 0
		for step := 0; ; step++ {
			starvedBefore := int64(0)
			if rng.IntN(2) == 0 {
				starvedBefore = readyAts[rng.IntN(len(readyAts))] + 1
			}
			wantBatch, wantIdx, wantErr := tb.st.ShardNextBySort(tb.ctx, "m", starvedBefore)
			// A lease that has run out already leaves the shard to the
			// next claim, through the running shards' index.
			ttl := time.Minute
			if rng.IntN(4) == 0 {
				ttl = -time.Minute
			}
			owner := fmt.Sprint("agent-", step)
			sh, b, err := tb.st.ShardClaim(tb.ctx, "m", owner, ttl, starvedBefore)
			if wantErr != nil {
				require.ErrorIs(t, wantErr, store.ErrNotFound)
				require.ErrorIs(t, err, store.ErrNotFound, "step %d: sorting finds no shard", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			require.Equal(t, fmt.Sprint(wantBatch, "/", wantIdx), fmt.Sprint(sh.BatchID, "/", sh.Idx),
				"step %d (starved before %d): the claim differs from the sorted order", step, starvedBefore)
			require.Equal(t, sh.BatchID, b.ID)
			require.Equal(t, owner, sh.LeaseOwner)
			claims++
			switch {
			case rng.IntN(5) == 0:
				require.NoError(t, tb.st.ShardRelease(tb.ctx, sh.BatchID, sh.Idx, owner))
			case step == 10:
				start("m")
			case step == 20:
				_, err := tb.st.BatchRequestStop(tb.ctx, batches[rng.IntN(len(batches))], store.StopCancelled)
				require.NoError(t, err)
			}
			require.Less(t, step, 500, "the claims do not end")
		}
		require.Greater(t, claims, 20)
	})

	t.Run("ClaimConcurrently", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		const shards, claimers = 40, 8
		b := startBatch(t, tb, "m", make([]int64, shards)...)
		var mu sync.Mutex
		got := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, claimers)
		for i := range claimers {
			wg.Go(func() {
				for {
					sh, _, err := tb.st.ShardClaim(tb.ctx, "m", fmt.Sprint("agent-", i), time.Minute, 0)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					got[sh.Idx]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.ErrorIs(t, err, store.ErrNotFound, "a claimer stops only when no shard waits")
		}
		require.Len(t, got, shards, "every shard claimed")
		for idx, n := range got {
			require.Equal(t, 1, n, "shard %d of %s claimed %d times", idx, b.ID, n)
		}
	})
}
