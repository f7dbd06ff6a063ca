package llmsim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSlotQueue(t *testing.T) {
	t.Parallel()

	t.Run("GrantsInArrivalOrder", func(t *testing.T) {
		t.Parallel()

		q := newSlotQueue(1)
		require.NoError(t, q.acquire(t.Context()))

		const waiters = 5
		order := make(chan int, waiters)
		for i := range waiters {
			go func() {
				if err := q.acquire(context.Background()); err != nil {
					return
				}
				order <- i
				q.release()
			}()
			// Enqueue the next waiter only once this one is queued.
			require.Eventually(t, func() bool { return q.waiting.Load() == int64(i+1) }, 5*time.Second, time.Millisecond)
		}
		q.release()
		for want := range waiters {
			select {
			case got := <-order:
				require.Equal(t, want, got)
			case <-time.After(5 * time.Second):
				t.Fatal("waiter not granted")
			}
		}
		require.Equal(t, int64(1), q.peak.Load())
		require.Equal(t, int64(0), q.running.Load())
	})

	t.Run("CanceledWaiterLeavesQueue", func(t *testing.T) {
		t.Parallel()

		q := newSlotQueue(1)
		require.NoError(t, q.acquire(t.Context()))

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- q.acquire(ctx) }()
		require.Eventually(t, func() bool { return q.waiting.Load() == 1 }, 5*time.Second, time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("canceled waiter still waiting")
		}
		require.Equal(t, int64(0), q.waiting.Load())

		// The slot goes to the next live waiter, not the canceled one.
		q.release()
		require.NoError(t, q.acquire(t.Context()))
		require.Equal(t, int64(1), q.running.Load())
	})

	t.Run("Peak", func(t *testing.T) {
		t.Parallel()

		q := newSlotQueue(3)
		for range 3 {
			require.NoError(t, q.acquire(t.Context()))
		}
		for range 3 {
			q.release()
		}
		require.NoError(t, q.acquire(t.Context()))
		require.Equal(t, int64(3), q.peak.Load())
		require.Equal(t, int64(1), q.running.Load())
	})
}
