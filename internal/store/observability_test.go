package store_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// testObservability covers what the store gives kiln's operators: its
// connection metrics, River UI's endpoints on its queue, job middleware
// (tracing) and the numbers of open batches behind the expiry alert.
func testObservability(t *testing.T, setup setupFunc) {
	t.Run("Collector", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		c := tb.st.Collector()
		require.Equal(t, 0.0, gather(t, c, "kiln_db_connection_errors_total"))
		reg := prometheus.NewPedanticRegistry()
		require.NoError(t, reg.Register(c))
		mfs, err := reg.Gather()
		require.NoError(t, err, "the collector is consistent with its descriptions")
		states := map[string]bool{}
		for _, mf := range mfs {
			if mf.GetName() == "kiln_db_connections" {
				for _, m := range mf.GetMetric() {
					states[m.GetLabel()[0].GetValue()] = true
				}
			}
		}
		require.Equal(t, map[string]bool{"acquired": true, "idle": true}, states)
		require.Positive(t, gather(t, c, "kiln_db_max_connections"))
	})

	t.Run("ConnectionErrors", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		if tb.backend != "postgres" {
			require.Equal(t, 0.0, gather(t, tb.st.Collector(), "kiln_db_connection_errors_total"), "SQLite has no server to miss")
			return
		}
		// A URL whose first host refuses connections: pgx tries it, fails,
		// and goes on to the real server. The failed attempt is counted.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		dead := ln.Addr().String()
		require.NoError(t, ln.Close())
		u, err := url.Parse(storetest.URL(t, tb.backend))
		require.NoError(t, err)
		u.Host = dead + "," + u.Host
		st, err := store.Open(tb.ctx, u.String(), testLog())
		require.NoError(t, err)
		t.Cleanup(st.Close)
		require.GreaterOrEqual(t, gather(t, st.Collector(), "kiln_db_connection_errors_total"), 1.0)
	})

	t.Run("RiverUIEndpoints", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		require.NoError(t, tb.st.Enqueue(tb.ctx, noopJob("for the UI")))
		ctx, cancel := context.WithCancel(tb.ctx)
		t.Cleanup(cancel)
		h, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: tb.st.RiverUIEndpoints(), Logger: testLog(), Prefix: "/river"})
		require.NoError(t, err)
		require.NoError(t, h.Start(ctx))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)

		resp, err := http.Get(srv.URL + "/river/api/jobs?state=available")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var list struct {
			Data []struct {
				Kind string `json:"kind"`
				Args string `json:"args"` // River UI sends the args as a JSON string

			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(body, &list), string(body))
		require.Len(t, list.Data, 1)
		require.Equal(t, "storetest_noop", list.Data[0].Kind)
		require.JSONEq(t, `{"id":"for the UI"}`, list.Data[0].Args)

		page, err := http.Get(srv.URL + "/river/")
		require.NoError(t, err)
		defer page.Body.Close()
		html, err := io.ReadAll(page.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, page.StatusCode)
		require.Contains(t, string(html), "<div id=\"root\"", "the embedded single-page app")
	})

	t.Run("OpenWithJobMiddleware", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		mw := &recordingMiddleware{}
		st, err := store.OpenWith(tb.ctx, storetest.URL(t, tb.backend), testLog(), &store.OpenOpts{JobMiddleware: []rivertype.Middleware{mw}})
		require.NoError(t, err)
		t.Cleanup(st.Close)
		w := startWorkers(t, &testBundle{backend: tb.backend, ctx: tb.ctx, st: st})
		require.NoError(t, st.Enqueue(tb.ctx, noopJob("wrapped")))
		require.Equal(t, []string{"wrapped"}, w.wait(t, 1))
		require.Eventually(t, func() bool { return mw.count() == [2]int{1, 1} }, 10*time.Second, 10*time.Millisecond,
			"the middleware saw the insert and the work: %v", mw.count())

		plain, err := store.OpenWith(tb.ctx, storetest.URL(t, tb.backend), testLog(), nil)
		require.NoError(t, err, "nil options are the defaults")
		plain.Close()
	})

	t.Run("TraceContext", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x", CompletionWindow: "24h",
			Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix(), TraceContext: tp}
		require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, tp, got.TraceContext)
		require.Empty(t, newBatch(t, tb).TraceContext, "a batch made without tracing has none")
	})

	t.Run("BatchOpenStats", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		stats, err := tb.st.BatchOpenStats(tb.ctx)
		require.NoError(t, err)
		require.Empty(t, stats)

		base := time.Now().Add(time.Hour).Unix()
		mk := func(expires int64) store.Batch {
			b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", InputFileID: "file-x", CompletionWindow: "24h",
				Status: store.BatchValidating, CreatedAt: time.Now().Unix(), ExpiresAt: expires}
			require.NoError(t, tb.st.BatchCreate(tb.ctx, b))
			return b
		}
		mk(base + 100)
		mk(base + 50)
		running := mk(base + 10)
		_, err = tb.st.BatchStart(tb.ctx, running.ID, 3, "m1", []store.Shard{{Idx: 0, FirstLine: 1, LastLine: 3, Requests: 3}})
		require.NoError(t, err)
		failed := mk(base)
		_, err = tb.st.BatchFail(tb.ctx, failed.ID, []store.BatchError{{Code: "x", Message: "y"}})
		require.NoError(t, err)

		stats, err = tb.st.BatchOpenStats(tb.ctx)
		require.NoError(t, err)
		require.Equal(t, []store.BatchOpen{
			{Status: store.BatchInProgress, Model: "m1", Count: 1, NextExpiresAt: base + 10},
			{Status: store.BatchValidating, Model: "", Count: 2, NextExpiresAt: base + 50},
		}, stats, "ended batches are left out")
	})
}

// gather is the value of the one sample of metric name that c collects.
func gather(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.GetMetric(), 1, name)
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// recordingMiddleware counts the inserts and works it wraps.
type recordingMiddleware struct {
	river.MiddlewareDefaults
	mu             sync.Mutex
	inserts, works int
}

func (m *recordingMiddleware) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams,
	doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	m.mu.Lock()
	m.inserts += len(params)
	m.mu.Unlock()
	return doInner(ctx)
}

func (m *recordingMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	m.mu.Lock()
	m.works++
	m.mu.Unlock()
	return doInner(ctx)
}

func (m *recordingMiddleware) count() [2]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return [2]int{m.inserts, m.works}
}
