// Package batchtest gives tests the lifecycle on a real store and object
// store, per backend (SQLite with a folder, or Postgres with S3, as kiln's
// two deployments), and stands in for an agent that runs a batch's shards.
package batchtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// Backends are the deployments the lifecycle is tested on.
var Backends = storetest.Backends

// Env is the lifecycle on one backend.
type Env struct {
	Store   *store.Store
	Bucket  objectstore.Bucket
	Batches *batch.Service
	Log     *slog.Logger
	// DatabaseURL is the store's database, for a second store on it (as
	// another process has).
	DatabaseURL string
}

// New is the lifecycle on a fresh store of backend: SQLite with a folder
// object store, or Postgres with an S3 bucket. Its batches may name any
// model, since no agent declares models here, unless limits name models
// (an empty, non-nil list names none): then the catalogue is checked.
func New(t testing.TB, backend string, limits batch.Limits) *Env {
	t.Helper()
	if limits.Models == nil {
		limits.AcceptAnyModel = true
	}
	ctx := context.Background()
	dbURL := storetest.URL(t, backend)
	st, err := store.Open(ctx, dbURL, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(st.Close)
	url := "file://" + t.TempDir()
	if backend == "postgres" {
		url = testenv.S3URL(t)
	}
	bucket, err := objectstore.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bucket.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &Env{Store: st, Bucket: bucket, Batches: batch.New(st, bucket, limits, log), Log: log, DatabaseURL: dbURL}
}

// ChatLines is a batch input of n chat completion requests for model,
// custom IDs r1 to rn.
func ChatLines(model string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"hi"}]}}`+"\n", i, model)
	}
	return b.String()
}

// CreateBatch uploads input as a batch file and creates a batch of it.
func (e *Env) CreateBatch(t testing.TB, input string) store.Batch {
	t.Helper()
	ctx := context.Background()
	f, err := e.Batches.CreateFile(ctx, batch.PurposeBatch, "in.jsonl", strings.NewReader(input))
	require.NoError(t, err)
	b, err := e.Batches.Create(ctx, batch.CreateParams{InputFileID: f.ID, Endpoint: "/v1/chat/completions"})
	require.NoError(t, err)
	return b
}

// Agent is the ID under which RunShards holds leases.
const Agent = "agent-test"

// RunShards stands in for an agent: it claims every shard of model, writes
// one chunk per shard in which each line succeeds, unless ok says it
// failed, and finishes the shard. It returns how many shards it ran.
func (e *Env) RunShards(t testing.TB, model string, ok func(line int) bool) int {
	t.Helper()
	return e.RunShardsUpTo(t, model, -1, ok)
}

// RunShardsUpTo is RunShards that stops after max shards (negative: no
// limit).
func (e *Env) RunShardsUpTo(t testing.TB, model string, limit int, ok func(line int) bool) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for limit < 0 || n < limit {
		sh, b, err := e.Store.ShardClaim(ctx, model, Agent, time.Minute, 0)
		if err != nil {
			require.ErrorIs(t, err, store.ErrNotFound)
			return n
		}
		var idx, out, errs bytes.Buffer
		c := store.Chunk{BatchID: sh.BatchID, Shard: sh.Idx, Seq: 0, ObjectKey: batch.ChunkKey(sh.BatchID, sh.Idx, 0)}
		for line := int(sh.FirstLine); line <= int(sh.LastLine); line++ {
			good := ok == nil || ok(line)
			rec, err := json.Marshal(batchline.Record{Line: line, OK: good})
			require.NoError(t, err)
			idx.Write(append(rec, '\n'))
			res := batchline.Output{ID: fmt.Sprintf("batch_req_%d", line), CustomID: fmt.Sprintf("r%d", line)}
			if good {
				res.Response = &batchline.Response{StatusCode: 200, RequestID: "req_test", Body: json.RawMessage(`{"ok":true}`)}
				c.OutputLines++
			} else {
				res.Error = &batchline.LineError{Code: batchline.CodeRequestFailed, Message: "failed"}
				c.ErrorLines++
			}
			l, err := json.Marshal(res)
			require.NoError(t, err)
			dst := &errs
			if good {
				dst = &out
			}
			dst.Write(append(l, '\n'))
		}
		c.OutputBytes, c.ErrorBytes = int64(out.Len()), int64(errs.Len())
		for key, buf := range map[string]*bytes.Buffer{batch.ChunkOutputKey(c.ObjectKey): &out, batch.ChunkErrorKey(c.ObjectKey): &errs, c.ObjectKey: &idx} {
			if buf.Len() > 0 {
				_, err := e.Bucket.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
				require.NoError(t, err)
			}
		}
		require.NoError(t, e.Store.ChunkCommit(ctx, Agent, c))
		_, err = e.Batches.FinishShard(ctx, sh.BatchID, sh.Idx, Agent)
		require.NoError(t, err)
		_ = b
		n++
	}
	return n
}

// ReadFile is a file's bytes.
func (e *Env) ReadFile(t testing.TB, id string) string {
	t.Helper()
	ctx := context.Background()
	f, err := e.Store.FileGet(ctx, id)
	require.NoError(t, err)
	rc, err := e.Bucket.Get(ctx, f.ObjectKey)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}
