package store_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// TestConformance runs every store behaviour on every backend: the tests
// of each area, in the file named after it, run as
// TestConformance/<backend>/<Area>/<Case>, each case on a fresh store.
func TestConformance(t *testing.T) {
	t.Parallel()
	areas := []struct {
		name string
		test func(t *testing.T, setup setupFunc)
	}{
		{"AdminKeys", testAdminKeys},
		{"Agents", testAgents},
		{"AuditLogs", testAuditLogs},
		{"Batches", testBatches},
		{"Chunks", testChunks},
		{"Conquests", testConquests},
		{"Curation", testCuration},
		{"CurationExports", testCurationExports},
		{"CurationProjects", testCurationProjects},
		{"CurationPrefs", testCurationPrefs},
		{"CurationDatasets", testCurationDatasets},
		{"CurationJudges", testCurationJudges},
		{"Curators", testCurators},
		{"Errors", testErrors},
		{"EnqueuedTokens", testEnqueuedTokens},
		{"Events", testEvents},
		{"EventLookups", testEventLookups},
		{"Files", testFiles},
		{"Inbox", testInbox},
		{"Keys", testKeys},
		{"Projects", testProjects},
		{"RateLimits", testRateLimits},
		{"ServiceAccounts", testServiceAccounts},
		{"Observability", testObservability},
		{"Pieces", testPieces},
		{"Shards", testShards},
		{"Store", testStore},
		{"Uploads", testUploads},
		{"Usage", testUsage},
		{"Webhooks", testWebhooks},
	}
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			setup := func(t *testing.T) *testBundle {
				t.Helper()
				return &testBundle{backend: backend, ctx: context.Background(), st: storetest.New(t, backend)}
			}
			for _, a := range areas {
				t.Run(a.name, func(t *testing.T) {
					t.Parallel()
					a.test(t, setup)
				})
			}
		})
	}
}

// testBundle is what a test case works with: a fresh store on one backend.
type testBundle struct {
	backend string
	ctx     context.Context
	st      *store.Store
}

// setupFunc opens a fresh store, closed when t ends.
type setupFunc func(t *testing.T) *testBundle

func testStore(t *testing.T, setup setupFunc) {
	t.Run("MigrateTwice", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		url := storetest.URL(t, tb.backend)
		for range 2 {
			st, err := store.Open(context.Background(), url, testLog())
			require.NoError(t, err)
			require.Equal(t, tb.backend, st.Dialect())
			st.Close()
		}
	})

	t.Run("OpenBadURL", func(t *testing.T) {
		t.Parallel()
		for _, url := range []string{"mysql://localhost/kiln", "sqlite://", "sqlite:///tmp/:memory:"} {
			_, err := store.Open(context.Background(), url, testLog())
			require.Error(t, err, url)
		}
	})

	t.Run("Dialect", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		require.Equal(t, tb.backend, tb.st.Dialect())
	})

	t.Run("CloseKeepsData", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		url := storetest.URL(t, tb.backend)
		st, err := store.Open(tb.ctx, url, testLog())
		require.NoError(t, err)
		require.NoError(t, st.KeyCreate(tb.ctx, store.APIKey{ID: ids.New(ids.Key), Name: "k", Prefix: "p", Hash: "h"}))
		st.Close()
		_, err = st.KeyCount(tb.ctx)
		require.Error(t, err, "a closed store answers no queries")

		st, err = store.Open(tb.ctx, url, testLog())
		require.NoError(t, err)
		defer st.Close()
		n, err := st.KeyCount(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("ExecForTest", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		require.NoError(t, tb.st.ExecForTest(tb.ctx, `UPDATE batches SET priority = 7 WHERE id = '`+b.ID+`'`))
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 7, got.Priority)
		require.Error(t, tb.st.ExecForTest(tb.ctx, `UPDATE no_such_table SET x = 1`))
	})

	t.Run("Enqueue", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		w := startWorkers(t, tb)
		require.NoError(t, tb.st.Enqueue(tb.ctx, store.Job{Args: noopArgs{ID: "a"}}, store.Job{Args: noopArgs{ID: "b"}}))
		require.ElementsMatch(t, []string{"a", "b"}, w.wait(t, 2))
	})

	t.Run("StopAndStartWorkers", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		require.NoError(t, tb.st.StopWorkers(tb.ctx), "stopping workers that never started does nothing")
		w := startWorkers(t, tb)
		require.NoError(t, tb.st.Enqueue(tb.ctx, store.Job{Args: noopArgs{ID: "before"}}))
		require.Equal(t, []string{"before"}, w.wait(t, 1))
		require.NoError(t, tb.st.StopWorkers(tb.ctx))
		require.NoError(t, tb.st.StopWorkers(tb.ctx), "stopping twice does nothing")

		// A job enqueued while no worker runs waits for the next.
		require.NoError(t, tb.st.Enqueue(tb.ctx, store.Job{Args: noopArgs{ID: "while stopped"}}))
		w = startWorkersWith(t, tb, store.WorkerOpts{RescueAfter: time.Minute})
		require.Equal(t, []string{"while stopped"}, w.wait(t, 1))
	})
}

// TestMigrateConcurrently: kiln serve and kiln agent may start together on
// one new database; both migrate without stepping on each other.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			url := storetest.URL(t, backend)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := store.Open(context.Background(), url, testLog())
					if err == nil {
						st.Close()
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}

// noopArgs is a job that reports its ID to noopWorker.
type noopArgs struct {
	ID string `json:"id"`
}

func (noopArgs) Kind() string { return "storetest_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	got chan string
}

func (w *noopWorker) Work(_ context.Context, j *river.Job[noopArgs]) error {
	w.got <- j.Args.ID
	return nil
}

// wait returns the IDs of the next n jobs the worker runs, failing t if
// they do not run within 30 seconds.
func (w *noopWorker) wait(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case id := <-w.got:
			got = append(got, id)
		case <-deadline:
			t.Fatalf("jobs did not run; got %v of %d", got, n)
		}
	}
	return got
}

// noopJob is a job that reports id to the noopWorker that runs it.
func noopJob(id string) store.Job { return store.Job{Args: noopArgs{ID: id}} }

// startWorkers starts workers that run noop jobs, stopped when t ends.
func startWorkers(t *testing.T, tb *testBundle) *noopWorker {
	t.Helper()
	return startWorkersWith(t, tb, store.WorkerOpts{})
}

func startWorkersWith(t *testing.T, tb *testBundle, opts store.WorkerOpts) *noopWorker {
	t.Helper()
	w := &noopWorker{got: make(chan string, 64)}
	opts.Workers = river.NewWorkers()
	river.AddWorker(opts.Workers, w)
	opts.Queues = map[string]int{river.QueueDefault: 2}
	opts.PollInterval = 50 * time.Millisecond
	require.NoError(t, tb.st.StartWorkers(tb.ctx, opts))
	t.Cleanup(func() { _ = tb.st.StopWorkers(context.Background()) })
	return w
}

// newBatch creates a validating batch, with jobs.
func newBatch(t *testing.T, tb *testBundle, jobs ...store.Job) store.Batch {
	t.Helper()
	b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x",
		CompletionWindow: "24h", Status: store.BatchValidating, CreatedAt: time.Now().Unix(),
		ExpiresAt: time.Now().Add(24 * time.Hour).Unix(), Metadata: map[string]string{"k": "v"}}
	require.NoError(t, tb.st.BatchCreate(tb.ctx, b, jobs...))
	return b
}

// startBatch creates a batch of model and starts it with one shard per
// entry of requests.
func startBatch(t *testing.T, tb *testBundle, model string, requests ...int64) store.Batch {
	t.Helper()
	b := newBatch(t, tb)
	var shards []store.Shard
	var total, line int64
	for _, n := range requests {
		shards = append(shards, store.Shard{FirstLine: line + 1, LastLine: line + n, Offset: line * 100, Requests: n})
		total += n
		line += n
	}
	got, err := tb.st.BatchStart(tb.ctx, b.ID, total, model, shards)
	require.NoError(t, err)
	return got
}

// newFile creates a processed file.
func newFile(t *testing.T, tb *testBundle, purpose string) store.File {
	t.Helper()
	f := store.File{ID: ids.New(ids.File), Purpose: purpose, Filename: "f.jsonl", Bytes: 10, ObjectKey: "files/f",
		Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
	require.NoError(t, tb.st.FileCreate(tb.ctx, f))
	return f
}

// eventsOf lists the IDs in the data of every event of a type, oldest first.
func eventsOf(t *testing.T, tb *testBundle, typ string) []string {
	t.Helper()
	evs, _, err := tb.st.EventList(tb.ctx, "", typ, "", 1000)
	require.NoError(t, err)
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, dataID(t, evs[i]))
	}
	return out
}

func dataID(t *testing.T, ev store.Event) string {
	t.Helper()
	var d struct{ ID string }
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d.ID
}
