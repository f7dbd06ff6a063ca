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

// InvocationOf returns the invocation of function for an event, so that a
// caller who emitted the event (or found it emitted) can follow what the
// function made of it. An event without one, as one written while no
// dispatcher routed events, is ErrNotFound.
func (s *Store) InvocationOf(ctx context.Context, eventID, function string) (Invocation, error) {
	inv, err := scanInvocation(s.d.db().queryRow(ctx, `SELECT `+invocationColumns+` FROM function_invocations
		WHERE event_id = $1 AND function = $2 ORDER BY id LIMIT 1`, eventID, function))
	if err != nil {
		return Invocation{}, fmt.Errorf("store: invocation of %s for %s: %w", function, eventID, err)
	}
	return inv, nil
}
