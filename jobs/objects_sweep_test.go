package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batch/batchtest"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

func TestObjectsSweepWorker(t *testing.T) {
	t.Parallel()
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			reg := prometheus.NewRegistry()
			tb.deps.SweepMetrics = NewSweepMetrics(reg)
			exists := func(key string) bool {
				_, err := tb.Bucket.Stat(tb.ctx, key)
				if err != nil {
					require.ErrorIs(t, err, objectstore.ErrNotExist)
				}
				return err == nil
			}
			put := func(key string) string {
				_, err := tb.Bucket.Put(tb.ctx, key, strings.NewReader("x"), 1)
				require.NoError(t, err)
				return key
			}

			// An orphan of each kind kiln writes, and objects rows need.
			orphanFile := put(batch.FileKey(ids.New(ids.File)))
			u, err := tb.Batches.CreateUpload(tb.ctx, batch.UploadParams{Filename: "a.txt", Purpose: "user_data", Bytes: 1, MimeType: "text/plain"})
			require.NoError(t, err)
			_, err = tb.Batches.CancelUpload(tb.ctx, u.ID)
			require.NoError(t, err)
			latePart := put(batch.UploadPartKey(u.ID, "part_late"))
			b := tb.CreateBatch(t, batchtest.ChatLines(model, 2))
			require.NoError(t, tb.Batches.Validate(tb.ctx, b.ID))
			require.Equal(t, 1, tb.RunShards(t, model, nil))
			require.NoError(t, tb.Batches.Finalize(tb.ctx, b.ID))
			b, err = tb.Store.BatchGet(tb.ctx, b.ID)
			require.NoError(t, err)
			require.Equal(t, store.BatchCompleted, b.Status)
			lateChunk := put(batch.ChunkKey(b.ID, 0, 1))
			running := tb.CreateBatch(t, batchtest.ChatLines(model, 2))
			runningChunk := put(batch.ChunkKey(running.ID, 0, 0))

			// Within the grace, the sweep leaves everything: a young
			// object may be waiting for its row.
			require.NoError(t, (&ObjectsSweepWorker{d: tb.deps}).Work(tb.ctx, job(ObjectsSweepArgs{})))
			for _, key := range []string{orphanFile, latePart, lateChunk, runningChunk} {
				require.True(t, exists(key), key)
			}
			require.Equal(t, map[string]float64{batch.SweptFile: 0, batch.SweptUploadPart: 0, batch.SweptBatchObject: 0, batch.SweptTemp: 0},
				sweptTotal(t, reg), "every kind is counted from the first sweep")

			w := &ObjectsSweepWorker{d: tb.deps, olderThan: -time.Minute} // the store may round times up
			require.NoError(t, w.Work(tb.ctx, job(ObjectsSweepArgs{})))
			for _, key := range []string{orphanFile, latePart, lateChunk} {
				require.False(t, exists(key), key)
			}
			require.True(t, exists(runningChunk), "a running batch's chunk")
			out, err := tb.Store.FileGet(tb.ctx, *b.OutputFileID)
			require.NoError(t, err)
			require.True(t, exists(out.ObjectKey), "an ended batch's output file")
			require.Equal(t, map[string]float64{batch.SweptFile: 1, batch.SweptUploadPart: 1, batch.SweptBatchObject: 1, batch.SweptTemp: 0},
				sweptTotal(t, reg))
		})
	}
}

// The sweep runs hourly and at start, on the workers of jobs.Register.
func TestObjectsSweepPeriodic(t *testing.T) {
	t.Parallel()
	require.Len(t, Periodic(), 3, "events_prune, objects_sweep and files_expire")
	for _, backend := range batchtest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend)
			reg := prometheus.NewRegistry()
			tb.deps.SweepMetrics = NewSweepMetrics(reg)
			tb.startWorkers(t)
			require.NoError(t, tb.Store.Enqueue(tb.ctx, store.Job{Args: ObjectsSweepArgs{}}))
			// A sweep counts every kind, removed or not, once it ran.
			require.Eventually(t, func() bool { return len(sweptTotal(t, reg)) == len(batch.SweptKinds) }, 30*time.Second, 10*time.Millisecond)
		})
	}
}

// sweptTotal is kiln_objects_swept_total by kind, as reg serves it.
func sweptTotal(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "kiln_objects_swept_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
