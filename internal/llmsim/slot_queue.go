package llmsim

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
)

// slotQueue is a counting semaphore that grants slots in arrival order, as
// vLLM's scheduler admits waiting requests first come, first served. A waiter
// whose context ends leaves the queue at once.
type slotQueue struct {
	mu      sync.Mutex
	free    int
	waiters list.List // of chan struct{}

	running atomic.Int64 // slots held
	waiting atomic.Int64 // waiters queued
	peak    atomic.Int64 // most slots ever held at once
}

func newSlotQueue(n int) *slotQueue {
	return &slotQueue{free: n}
}

// acquire waits for a slot, in FIFO order, until ctx is done.
func (q *slotQueue) acquire(ctx context.Context) error {
	q.mu.Lock()
	if q.free > 0 && q.waiters.Len() == 0 {
		q.free--
		q.mu.Unlock()
		q.started()
		return nil
	}
	ready := make(chan struct{})
	elem := q.waiters.PushBack(ready)
	q.waiting.Add(1)
	q.mu.Unlock()

	select {
	case <-ready:
		q.started()
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		select {
		case <-ready:
			// Granted while giving up: pass the slot on.
			q.mu.Unlock()
			q.running.Add(1)
			q.release()
		default:
			q.waiters.Remove(elem)
			q.waiting.Add(-1)
			q.mu.Unlock()
		}
		return ctx.Err()
	}
}

func (q *slotQueue) started() {
	n := q.running.Add(1)
	for {
		p := q.peak.Load()
		if n <= p || q.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// release frees a slot, handing it to the longest waiter if there is one.
func (q *slotQueue) release() {
	q.running.Add(-1)
	q.mu.Lock()
	defer q.mu.Unlock()
	if front := q.waiters.Front(); front != nil {
		q.waiters.Remove(front)
		q.waiting.Add(-1)
		close(front.Value.(chan struct{}))
		return
	}
	q.free++
}
