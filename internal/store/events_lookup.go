package store

import (
	"context"
	"fmt"
)

// EventByDedupeKey returns the event emitted with a DedupeKey, so that a
// caller whose EventEmit found the event written before (false) can still
// act on it. No such event is ErrNotFound.
func (s *Store) EventByDedupeKey(ctx context.Context, key string) (Event, error) {
	ev, err := scanEvent(s.d.db().queryRow(ctx, `SELECT `+eventColumns+` FROM events WHERE dedupe_key = $1`, key))
	if err != nil {
		return Event{}, fmt.Errorf("store: event by dedupe key: %w", err)
	}
	return ev, nil
}
