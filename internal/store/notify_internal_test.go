package store

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/stretchr/testify/require"
)

// blockingListener is a polling listener that finds nothing: each wait
// lasts until its context ends, and polls counts the waits begun.
type blockingListener struct {
	riverdriver.Listener
	polls chan struct{}
}

func (l *blockingListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	l.polls <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestWokenListener(t *testing.T) {
	t.Parallel()
	inner := &blockingListener{polls: make(chan struct{}, 10)}
	wake := &broadcast{}
	l := &wokenListener{Listener: inner, wake: wake}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := l.WaitForNotification(ctx)
		done <- err
	}()
	<-inner.polls
	// A commit of jobs in this process polls again at once; the wait goes
	// on.
	wake.fire()
	select {
	case <-inner.polls:
	case <-time.After(time.Minute):
		t.Fatal("the listener did not poll again when woken")
	}
	select {
	case err := <-done:
		t.Fatalf("the wait ended on a wake: %v", err)
	default:
	}
	// The caller's context still ends it.
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}
