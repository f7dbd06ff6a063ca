package faultbucket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/objectstore/faultbucket"
	"github.com/kilnhq/kiln/internal/objectstore/objectstoretest"
)

// folder opens a folder bucket whose presigned URLs a test server serves.
func folder(t *testing.T) objectstore.Bucket {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b, err := objectstore.OpenWith(t.Context(), "file://"+t.TempDir(), objectstore.Options{PublicURL: srv.URL})
	require.NoError(t, err)
	mux.Handle(objectstore.SignedPath, objectstore.Handler(b))
	return b
}

// A healthy fault bucket is the bucket it wraps.
func TestConformance(t *testing.T) {
	t.Parallel()
	objectstoretest.RunConformance(t, func(t *testing.T) objectstore.Bucket {
		return faultbucket.New(folder(t), faultbucket.Options{Seed: 1, ErrorRate: 1, SlowReadRate: 1, DiskFullRate: 1})
	})
}

// outcome runs n operations of each kind on a broken bucket and says what
// happened to each, in order.
func outcomes(t *testing.T, o faultbucket.Options, n int) []string {
	ctx := t.Context()
	b := faultbucket.New(folder(t), o)
	_, err := b.Put(ctx, "obj", strings.NewReader(strings.Repeat("x", 4096)), 4096)
	require.NoError(t, err)
	b.Break()
	var out []string
	for i := range n {
		_, err := b.Put(ctx, fmt.Sprintf("k/%d", i), strings.NewReader("v"), 1)
		out = append(out, "put:"+kind(err))
		rc, err := b.Get(ctx, "obj")
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		out = append(out, "get:"+kind(err))
		_, err = b.Stat(ctx, "obj")
		out = append(out, "stat:"+kind(err))
	}
	return out
}

func kind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ENOSPC):
		return "enospc"
	case errors.Is(err, faultbucket.ErrInjected):
		return "injected"
	}
	return err.Error()
}

// The faults follow the seed: the same seed, the same faults; another
// seed, others.
func TestSchedule(t *testing.T) {
	t.Parallel()
	o := faultbucket.Options{Seed: 7, ErrorRate: 0.2, DiskFullRate: 0.1, DiskFullWrites: 3}
	first := outcomes(t, o, 200)
	require.Equal(t, first, outcomes(t, o, 200))
	o.Seed = 8
	require.NotEqual(t, first, outcomes(t, o, 200))
	joined := strings.Join(first, " ")
	for _, want := range []string{"put:enospc", "put:injected", "get:injected", "stat:injected", "put:ok", "get:ok"} {
		require.Contains(t, joined, want)
	}
}

func TestDiskFull(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := faultbucket.New(folder(t), faultbucket.Options{})
	_, err := b.Put(ctx, "a", strings.NewReader("old"), 3)
	require.NoError(t, err)
	b.FillDisk(6)
	for range 2 {
		_, err = b.Put(ctx, "a", strings.NewReader("new"), 3)
		require.ErrorIs(t, err, syscall.ENOSPC)
		_, err = b.Compose(ctx, "b", []string{"a"})
		require.ErrorIs(t, err, syscall.ENOSPC)
		_, err = b.ComposeSources(ctx, "b", []objectstore.Source{{Key: "a", Size: 3}})
		require.ErrorIs(t, err, syscall.ENOSPC)
	}
	// The failed writes changed nothing; the disk has room again.
	_, err = b.Put(ctx, "b", strings.NewReader("new"), 3)
	require.NoError(t, err)
	got, err := b.Unwrap().Get(ctx, "a")
	require.NoError(t, err)
	defer got.Close()
	data, err := io.ReadAll(got)
	require.NoError(t, err)
	require.Equal(t, "old", string(data))
	require.Equal(t, faultbucket.Stats{DiskFull: 6, Fills: 1}, b.Stats())
}

// Reads cut short fail part-way, with the bytes before the cut; slow reads
// crawl, and end with their context; Heal ends the faults.
func TestReads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789"), 1000)

	b := faultbucket.New(folder(t), faultbucket.Options{Seed: 3, ErrorRate: 1})
	_, err := b.Put(ctx, "obj", bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	b.Break()
	cut := 0
	for range 50 {
		rc, err := b.GetRange(ctx, "obj", 0, -1)
		if err != nil {
			require.ErrorIs(t, err, faultbucket.ErrInjected)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		require.ErrorIs(t, err, faultbucket.ErrInjected)
		require.Equal(t, data[:len(got)], got)
		cut++
	}
	require.Positive(t, cut)
	require.EqualValues(t, cut, b.Stats().ReadErrors)
	b.Heal()
	rc, err := b.Get(ctx, "obj")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	require.Equal(t, data, got)

	slow := faultbucket.New(b.Unwrap(), faultbucket.Options{SlowReadRate: 1, SlowReadDelay: time.Hour})
	slow.Break()
	rctx, cancel := context.WithCancel(ctx)
	rc, err = slow.Get(rctx, "obj")
	require.NoError(t, err)
	defer rc.Close()
	cancel()
	_, err = rc.Read(make([]byte, 10))
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 1, slow.Stats().SlowReads)
}
