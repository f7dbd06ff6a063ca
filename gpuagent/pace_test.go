package gpuagent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPacer: a project at its requests-a-minute limit waits, for as long as
// its bucket takes to fill; another project, and a project without a
// limit, do not.
func TestPacer(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_000_000, 0)
	p := newPacer()
	p.now = func() time.Time { return clock }

	require.True(t, p.stale("a", "m"))
	p.set("a", "m", 60) // one a second
	p.set("b", "m", 0)  // no limit
	require.False(t, p.stale("a", "m"))

	require.Zero(t, p.delay("a", "m"))
	p.take("a", "m")
	require.Equal(t, time.Second, p.delay("a", "m"), "the bucket holds one second's worth")
	for range 100 {
		require.Zero(t, p.delay("b", "m"))
		p.take("b", "m")
	}
	require.Zero(t, p.delay("unknown", "m"), "a project whose limit is not read yet is not held")

	clock = clock.Add(400 * time.Millisecond)
	require.Equal(t, 600*time.Millisecond, p.delay("a", "m"))
	clock = clock.Add(600 * time.Millisecond)
	require.Zero(t, p.delay("a", "m"))

	clock = clock.Add(paceRefresh)
	require.True(t, p.stale("a", "m"), "limits are read again")
	p.set("a", "m", 600) // ten a second: the bucket holds ten
	for range 10 {
		require.Zero(t, p.delay("a", "m"))
		p.take("a", "m")
	}
	require.Equal(t, 100*time.Millisecond, p.delay("a", "m"))
}
