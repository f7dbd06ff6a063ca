package llmsim

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountTokens(t *testing.T) {
	t.Parallel()

	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"   \n\t", 0},
		{"hello", 1},
		{"hello world", 2},
		{"Hello, world.", 4},
		{"abcdefgh", 1},
		{"abcdefghi", 2},
		{"abcdefghijklmnopq", 3},
		{`{"a": 1}`, 7},
		{"x1y2 z3", 2},
		{"héllo wörld", 2},
		{"日本語", 1},
		{"a-b", 3},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, CountTokens(tt.text), "CountTokens(%q)", tt.text)
	}
}

func TestSplitTokens(t *testing.T) {
	t.Parallel()

	texts := []string{
		"", "  ", "hello", " hello world ", "Hello, world.", "abcdefghijklmnopq rs",
		`{"name": "x", "n": [1, 2.5]}`, "héllo  wörld\n", "a\tb", "..",
	}
	for _, text := range texts {
		pieces := splitTokens(text)
		require.Len(t, pieces, CountTokens(text), "pieces of %q: %q", text, pieces)
		if len(pieces) > 0 {
			require.Equal(t, text, strings.Join(pieces, ""), "pieces of %q", text)
		}
		for i, p := range pieces {
			require.Equal(t, 1, CountTokens(p), "piece %d %q of %q", i, p, text)
		}
		for n := range len(pieces) + 2 {
			cut := truncateTokens(text, n)
			require.True(t, strings.HasPrefix(text, cut))
			require.Equal(t, min(n, len(pieces)), CountTokens(cut), "truncateTokens(%q, %d) = %q", text, n, cut)
		}
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()

	for seed := range uint64(400) {
		h := requestHash(seed)
		natural := 1 + int(seed%97)
		text := string(writeText(nil, h.rng(0), natural, natural))
		require.Equal(t, natural, CountTokens(text), "text %q", text)
		require.NotEmpty(t, text)
		require.NotEqual(t, ' ', text[0])
		require.False(t, strings.HasPrefix(text, ","), "text %q", text)
		if natural > 1 {
			require.True(t, strings.HasSuffix(text, "."), "text %q", text)
			require.NotContains(t, text, "..")
			require.NotContains(t, text, ",.")
		}

		// A shorter limit gives a prefix of the same answer.
		limit := 1 + int(seed%uint64(natural))
		cut := string(writeText(nil, h.rng(0), natural, limit))
		require.Equal(t, limit, CountTokens(cut))
		require.True(t, strings.HasPrefix(text, cut), "%q is not a prefix of %q", cut, text)
	}
}

func TestRequestHash(t *testing.T) {
	t.Parallel()

	hash := func(seed int64, model string, parts ...string) requestHash {
		h := newRequestHash(seed, model)
		for _, p := range parts {
			h.addString(p)
		}
		return h
	}
	require.Equal(t, hash(0, "m", "a"), hash(0, "m", "a"))
	require.NotEqual(t, hash(0, "m", "a"), hash(1, "m", "a"))
	require.NotEqual(t, hash(0, "m", "a"), hash(0, "n", "a"))
	require.NotEqual(t, hash(0, "m", "ab", "c"), hash(0, "m", "a", "bc"))
}
