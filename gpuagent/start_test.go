package gpuagent_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/gpuagent"
	"github.com/kilnhq/kiln/internal/store"
)

var errDown = errors.New("the database is down")

// downStore is a store out of reach.
type downStore struct{ gpuagent.Store }

func (downStore) AgentHeartbeat(context.Context, store.Agent) error { return errDown }
func (downStore) AgentRemove(context.Context, string) error         { return errDown }

// An agent whose start fails, its database out of reach at its first
// heartbeat, stops at once, so that kiln agent exits for its supervisor to
// start it again. It used to wait in Stop for a loop that never ran, and
// hung for good. (Found by TestChaos, seed 407.)
func TestStartFails(t *testing.T) {
	t.Parallel()
	a := gpuagent.New(gpuagent.Config{}, downStore{}, nil, nil, gpuagent.NewAttachEngine(nil, "", 1, 0), nil, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, a.Start(t.Context()), errDown)
	stopped := make(chan struct{})
	go func() {
		a.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hangs after a failed Start")
	}
}
