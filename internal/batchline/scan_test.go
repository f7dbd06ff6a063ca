package batchline

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

type scanned struct {
	Line    int
	Text    string
	TooLong bool
}

func scanAll(t testing.TB, r io.Reader, max int) []scanned {
	t.Helper()
	var out []scanned
	sc := NewScanner(r, max)
	for sc.Next() {
		out = append(out, scanned{sc.Line(), string(sc.Bytes()), sc.TooLong()})
	}
	require.NoError(t, sc.Err())
	return out
}

func TestScanner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		max  int
		want []scanned
	}{
		{"Empty", "", 10, nil},
		{"NoFinalNewline", "a\nb", 10, []scanned{{1, "a", false}, {2, "b", false}}},
		{"FinalNewline", "a\nb\n", 10, []scanned{{1, "a", false}, {2, "b", false}}},
		{"BlankLinesCount", "a\n\n\nb", 10, []scanned{{1, "a", false}, {2, "", false}, {3, "", false}, {4, "b", false}}},
		{"CRLF", "ab\r\ncd\r\n", 2, []scanned{{1, "ab", false}, {2, "cd", false}}},
		{"ExactlyMax", "abcd\n", 4, []scanned{{1, "abcd", false}}},
		{"OverMaxThenNormal", "abcde\nab\n", 4, []scanned{{1, "", true}, {2, "ab", false}}},
		{"OverMaxLast", "ab\nabcde", 4, []scanned{{1, "ab", false}, {2, "", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, scanAll(t, strings.NewReader(tc.in), tc.max))
			// Byte-at-a-time reads give the same lines.
			require.Equal(t, tc.want, scanAll(t, iotest.OneByteReader(strings.NewReader(tc.in)), tc.max))
		})
	}
}

// TestScannerLongLineMemory: a line far over the limit is skipped without
// being held: the scanner's buffer stays near the limit.
func TestScannerLongLineMemory(t *testing.T) {
	t.Parallel()
	huge := io.MultiReader(io.LimitReader(repeat('x'), 50<<20), strings.NewReader("\nok\n"))
	sc := NewScanner(huge, 1024)
	require.True(t, sc.Next())
	require.True(t, sc.TooLong())
	require.LessOrEqual(t, cap(sc.buf), 64<<10+2048)
	require.True(t, sc.Next())
	require.Equal(t, "ok", string(sc.Bytes()))
	require.False(t, sc.Next())
	require.NoError(t, sc.Err())
}

type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// FuzzScanner checks the scanner against bufio.Scanner's line splitting on
// any input: the same lines, in order, with over-long ones flagged.
func FuzzScanner(f *testing.F) {
	for _, seed := range []string{"", "a", "a\n", "a\r\n\r\nb", "\n\n", "abcdefgh\nx", "{\"custom_id\":\"1\"}\n"} {
		f.Add([]byte(seed), 4)
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 1 || max > 64 {
			return
		}
		ref := bufio.NewScanner(bytes.NewReader(data))
		ref.Buffer(make([]byte, 0, len(data)+1), len(data)+1)
		got := scanAll(t, bytes.NewReader(data), max)
		i := 0
		for ref.Scan() {
			want := ref.Bytes() // bufio drops one \r before the line end, as Scanner does
			require.Less(t, i, len(got), "missing line %d", i+1)
			require.Equal(t, i+1, got[i].Line)
			if len(want) > max {
				require.True(t, got[i].TooLong, "line %d", i+1)
			} else {
				require.False(t, got[i].TooLong, "line %d", i+1)
				require.Equal(t, string(want), got[i].Text)
			}
			i++
		}
		require.Len(t, got, i)
	})
}
