package batchline

import (
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDupFinderSorts(t *testing.T) {
	t.Parallel()

	// runLen 1 spills every pair: more runs than one merge reads, so they
	// are merged in two rounds.
	for _, runLen := range []int{1, 7, 1000, idRunLen} {
		t.Run(fmt.Sprint(runLen), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(runLen), 1))
			var want []idAt
			d := newDupFinder(runLen)
			for line := range 3 * idMergeFanIn * 7 {
				x := idAt{hash: rng.Uint64N(50), line: line}
				want = append(want, x)
				require.NoError(t, d.add(x.hash, x.line))
			}
			var got []idAt
			require.NoError(t, d.each(func(x idAt) error {
				got = append(got, x)
				return nil
			}))
			slices.SortFunc(want, cmpIDAt)
			require.Equal(t, want, got)
			if d.f != nil {
				name := d.f.Name()
				d.close()
				_, err := os.Stat(name)
				require.ErrorIs(t, err, os.ErrNotExist, "close removes the spilled runs")
			}
		})
	}
}

func TestValidateDuplicates(t *testing.T) {
	t.Parallel()

	// custom_ids drawn from few values, so that many repeat; the expected
	// problems come from a map of every custom_id.
	rng := rand.New(rand.NewPCG(3, 4))
	var file strings.Builder
	first := map[string]int{}
	var want []Problem
	for line := 1; line <= 500; line++ {
		id := fmt.Sprintf("r%d", rng.IntN(400))
		fmt.Fprintf(&file, `{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}`+"\n", id)
		if at, ok := first[id]; ok {
			want = append(want, Problem{Code: CodeDuplicateCustomID, Line: line, Param: "custom_id",
				Message: fmt.Sprintf("custom_id %q is already used on line %d", id, at)})
			continue
		}
		first[id] = line
	}
	const maxProblems = 20
	require.Greater(t, len(want), maxProblems)
	wantMore := Problem{Code: CodeMoreErrors, Message: fmt.Sprintf("%d more problems were not listed", len(want)-maxProblems)}
	want = append(want[:maxProblems], wantMore)

	// collideOnce makes every custom_id collide under the first seed it
	// sees, as a weak hash would, and hashes as maphash under any other.
	collideOnce := func() func(maphash.Seed, []byte) uint64 {
		var mu sync.Mutex
		var firstSeed *maphash.Seed
		return func(seed maphash.Seed, b []byte) uint64 {
			mu.Lock()
			defer mu.Unlock()
			if firstSeed == nil {
				firstSeed = &seed
			}
			if seed == *firstSeed {
				return 0
			}
			return maphash.Bytes(seed, b)
		}
	}
	tests := []struct {
		name   string
		runLen int
		hash   func() func(maphash.Seed, []byte) uint64
	}{
		{"InMemory", 0, nil},
		{"Spilled", 16, nil},
		{"SpilledInTwoRounds", 1, nil},
		{"HashCollisions", 0, collideOnce},
		{"HashCollisionsSpilled", 16, collideOnce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opens := 0
			open := func() (io.ReadCloser, error) {
				opens++
				return io.NopCloser(strings.NewReader(file.String())), nil
			}
			o := ValidateOpts{Endpoint: "/v1/chat/completions", MaxLineSize: 1 << 20, MaxRequests: 1000, MaxProblems: maxProblems, runLen: tt.runLen}
			if tt.hash != nil {
				o.hash = tt.hash()
			}
			sum, problems, err := Validate(open, o)
			require.NoError(t, err)
			require.Equal(t, 500, sum.Requests)
			require.Equal(t, want, problems)
			if tt.hash != nil {
				require.Equal(t, 4, opens, "validation, a confirmation that fails, hashing again, a confirmation")
			} else {
				require.Equal(t, 2, opens, "validation and one confirmation")
			}
		})
	}

	t.Run("None", func(t *testing.T) {
		t.Parallel()
		var file strings.Builder
		for i := range 300 {
			fmt.Fprintf(&file, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}`+"\n", i)
		}
		opens := 0
		open := func() (io.ReadCloser, error) {
			opens++
			return io.NopCloser(strings.NewReader(file.String())), nil
		}
		sum, problems, err := Validate(open, ValidateOpts{Endpoint: "/v1/chat/completions", MaxLineSize: 1 << 20, MaxRequests: 1000, runLen: 7})
		require.NoError(t, err)
		require.Empty(t, problems)
		require.Equal(t, 300, sum.Requests)
		require.Equal(t, 1, opens, "no duplicate: the file is read once")
	})
}
