package faulttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/objectstore/faultbucket"
)

// TestObjectStoreFaults runs batches on a kiln whose object store fails
// operations, cuts reads short or makes them crawl, or fills its disk
// (ENOSPC on writes), from the middle of the batches until they end or a
// few seconds have passed. These are kiln's own failures, transient, not
// the requests': every batch completes, every request exactly once and
// none an error line, and the bucket and the rows agree.
//
// KILN_FAULT_SEED=N replays a seed the log names.
func TestObjectStoreFaults(t *testing.T) {
	t.Parallel()
	seed := faultSeed(t)
	for _, tt := range []struct {
		name string
		o    faultbucket.Options
		// fill fills the disk for this many writes when the faults start.
		fill int
	}{
		{name: "Errors", o: faultbucket.Options{ErrorRate: 0.08, SlowReadRate: 0.1}},
		{name: "DiskFull", o: faultbucket.Options{DiskFullRate: 0.02, DiskFullWrites: 10}, fill: 30},
	} {
		for _, backend := range kilntest.Backends {
			t.Run(tt.name+"/"+backend, func(t *testing.T) {
				t.Parallel()
				o := tt.o
				o.Seed = seed
				testObjectStoreFaults(t, backend, o, tt.fill)
			})
		}
	}
}

func testObjectStoreFaults(t *testing.T, backend string, o faultbucket.Options, fill int) {
	const n, batches = 300, 3
	var fb *faultbucket.Bucket
	env := kilntest.Start(t, backend, kilntest.Options{Sim: slowSim(), Configure: func(cfg *config.Config) {
		cfg.ShardSize = 100
		cfg.AgentConcurrency = agentConcurrency
		cfg.LeaseTTL = leaseTTL
	}, WrapBucket: func(b objectstore.Bucket) objectstore.Bucket {
		fb = faultbucket.New(b, o)
		return fb
	}})
	c := client(env)
	ids := make([]string, batches)
	for i := range ids {
		ids[i] = createBatch(t, c, n)
	}
	waitProgress(t, c, ids[0], 50)
	fb.Break()
	if fill > 0 {
		fb.FillDisk(fill)
	}
	// The faults last until the batches end or for a few seconds: a
	// property of the fault, not a wait for kiln.
	over := time.After(4 * time.Second)
	ctx := context.Background()
	for ended := false; !ended; {
		select {
		case <-over:
			ended = true
		case <-time.After(50 * time.Millisecond):
			ended = true
			for _, id := range ids {
				b, err := env.App.Store.BatchGet(ctx, id)
				require.NoError(t, err)
				ended = ended && b.Terminal()
			}
		}
	}
	fb.Heal()
	t.Logf("faults injected: %+v", fb.Stats())
	for _, id := range ids {
		b := waitBatch(t, c, id)
		require.Equal(t, openai.BatchStatusCompleted, b.Status, "errors: %v", b.Errors)
		f, problems := checkBatchFiles(ctx, c, *b, n, checkOpts{chat: true})
		require.Empty(t, problems)
		require.Zero(t, f.errors, "error lines: %v", f.codes)
	}
	if orphans := requireObjects(t, env, fb.Unwrap()); orphans > 0 {
		t.Logf("%d objects the faults left without their row, which the objects sweep removed", orphans)
	}
}
