package functions

import "testing"

// TestClaimNow pins when the webhook sender claims deliveries. An idle
// sender claims only when woken, whatever its last claim got: a first
// version of two claims at once claimed again after every short claim,
// and kept the database busy while nothing waited.
func TestClaimNow(t *testing.T) {
	t.Parallel()
	const n = 8
	for _, c := range []struct {
		name string
		st   claimState
		want bool
	}{
		{"started or woken", claimState{n: n, woken: true}, true},
		{"idle, the last claim short", claimState{n: n}, false},
		{"idle, a slot freed since the last claim", claimState{n: n, held: 2, sentSince: true}, false},
		{"busy, a slot freed since the last claim", claimState{n: n, held: n, busy: true, sentSince: true}, true},
		{"busy, no slot freed since the last claim", claimState{n: n, held: n, busy: true}, false},
		{"a claim runs, and the last got all it asked for", claimState{n: n, held: n, claims: 1, busy: true, backlog: true}, true},
		{"a claim runs, the last short, woken", claimState{n: n, held: 4, claims: 1, woken: true}, false},
		{"two claims run", claimState{n: n, held: n, claims: claimsAtOnce, busy: true, backlog: true}, false},
		{"no room: 2n held", claimState{n: n, held: 2 * n, busy: true, backlog: true, sentSince: true}, false},
		{"every slot sends and less than half of n is free", claimState{n: n, held: 2*n - n/2 + 1, busy: true, backlog: true}, false},
		{"every slot sends and half of n is free", claimState{n: n, held: 2*n - n/2, busy: true, backlog: true}, true},
		{"slots free: any room is worth a claim", claimState{n: n, held: n - 1, woken: true}, true},
	} {
		if got := claimNow(c.st); got != c.want {
			t.Errorf("%s: claimNow(%+v) = %v, want %v", c.name, c.st, got, c.want)
		}
	}
}
