package gpuagent

import (
	"time"

	"github.com/kilnhq/kiln/internal/store"
)

// chooseModel decides which model the agent serves next, from the work
// waiting per model. A model switch costs tens of seconds of GPU time, so:
//
//   - while the loaded model has work, keep it, unless work for another
//     model has waited longer than the starvation bound;
//   - otherwise take the model whose work is most urgent: starving work
//     first, then the highest batch priority, then the oldest.
//
// Only models the engine can serve count. It returns "" when nothing waits.
func chooseModel(loaded string, backlog []store.Backlog, servable map[string]bool, now time.Time, bound time.Duration) string {
	starvedBefore := now.Add(-bound).UnixMilli()
	var best *store.Backlog
	loadedHasWork, starving := false, false
	for i := range backlog {
		b := &backlog[i]
		if !servable[b.Model] {
			continue
		}
		if b.Model == loaded {
			loadedHasWork = true
			continue
		}
		if b.OldestReadyAt < starvedBefore {
			starving = true
		}
		if best == nil || moreUrgent(b, best, starvedBefore) {
			best = b
		}
	}
	switch {
	case loadedHasWork && !starving:
		return loaded
	case best != nil:
		return best.Model
	case loadedHasWork:
		return loaded
	}
	return ""
}

func moreUrgent(a, b *store.Backlog, starvedBefore int64) bool {
	as, bs := a.OldestReadyAt < starvedBefore, b.OldestReadyAt < starvedBefore
	switch {
	case as != bs:
		return as
	case as: // both starving: the longest wait first
		return a.OldestReadyAt < b.OldestReadyAt
	case a.Priority != b.Priority:
		return a.Priority > b.Priority
	default:
		return a.OldestReadyAt < b.OldestReadyAt
	}
}
