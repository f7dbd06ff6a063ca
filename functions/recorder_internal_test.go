package functions

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

// TestRecorderGathersAttempts: attempts that arrive together are written
// together, a full batch (recordBatch) in one write, rather than each write
// taking the few that arrived while the one before ran; each attempt gets
// its write's outcome.
func TestRecorderGathersAttempts(t *testing.T) {
	failed := errors.New("the database is gone")
	writes := make(chan []store.DeliveryAttemptOf, recordBatch)
	write := func(_ context.Context, as []store.DeliveryAttemptOf) ([]bool, error) {
		writes <- as
		return nil, failed
	}
	// A gathering long enough that only a full batch ends it.
	r := &recorder{gather: time.Hour}
	ws := make([]*recording, recordBatch)
	for i := range ws {
		ws[i] = &recording{of: store.DeliveryAttemptOf{DeliveryID: fmt.Sprint("dlv_", i)}, done: make(chan struct{})}
		r.add(write, ws[i])
	}
	for _, w := range ws {
		<-w.done
		require.ErrorIs(t, w.err, failed)
	}
	as := <-writes
	require.Len(t, as, recordBatch, "one write of them all")
	for i, a := range as {
		require.Equal(t, ws[i].of, a)
	}
}

// TestRecorderWritesOneAlone: an attempt with no other to wait for is
// written once the gathering ends.
func TestRecorderWritesOneAlone(t *testing.T) {
	written := make(chan int, 1)
	r := &recorder{}
	w := &recording{of: store.DeliveryAttemptOf{DeliveryID: "dlv_alone"}, done: make(chan struct{})}
	r.add(func(_ context.Context, as []store.DeliveryAttemptOf) ([]bool, error) {
		written <- len(as)
		return []bool{true}, nil
	}, w)
	<-w.done
	require.NoError(t, w.err)
	require.Equal(t, 1, <-written)
}
