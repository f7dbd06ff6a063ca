package batchline_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batchline"
)

// recordLines collects what RecordLines streams.
func recordLines(in string) ([]int, error) {
	var got []int
	err := batchline.RecordLines(strings.NewReader(in), func(line int) error {
		got = append(got, line)
		return nil
	})
	return got, err
}

// TestRecordLines: the agent's records, other forms of a record (fields in
// another order, a result inline, CRLF endings) and blank lines give each
// record's line, in order; a record that is not JSON is an error.
func TestRecordLines(t *testing.T) {
	t.Parallel()
	in := `{"line":7,"ok":true}` + "\n" +
		"\n" +
		`{"ok":false,"line":8}` + "\r\n" +
		`{"line":9,"ok":true,"data":{"id":"x"}}` + "\n" +
		`{"line":10,"ok":false}`
	got, err := recordLines(in)
	require.NoError(t, err)
	require.Equal(t, []int{7, 8, 9, 10}, got)

	_, err = recordLines(`{"line":1,"ok":true}` + "\n" + `{"line":` + "\n")
	require.ErrorContains(t, err, "chunk record on line 2")
}

// FuzzRecordLines: RecordLines gives the lines ReadRecords does, and fails
// where it fails.
func FuzzRecordLines(f *testing.F) {
	for _, seed := range []string{
		`{"line":1,"ok":true}` + "\n" + `{"line":2,"ok":false}` + "\n",
		`{"line":01,"ok":true}`, `{"line":1,"ok":true} `, `{"line":-1,"ok":true}`,
		`{"line":12345678901,"ok":true}`, `{"line":3,"ok":true,"data":null}`, "\n\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := recordLines(in)
		var want []int
		wantErr := batchline.ReadRecords(strings.NewReader(in), func(r batchline.Record) error {
			want = append(want, r.Line)
			return nil
		})
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}

// TestAppendIndexRecord checks the chunk index's entries against
// json.Marshal's.
func TestAppendIndexRecord(t *testing.T) {
	t.Parallel()

	for _, rec := range []batchline.Record{{Line: 0, OK: true}, {Line: 17, OK: false}, {Line: 1 << 40, OK: true}} {
		want, err := json.Marshal(rec)
		require.NoError(t, err)
		require.Equal(t, string(want)+"\n", string(batchline.AppendIndexRecord(nil, rec.Line, rec.OK)))
	}
}

// TestBitmapForHoldsItsLines: a bitmap made for n lines marks lines 0 to n
// in the array it was made with (no copy while it grows), and still grows
// past them.
func TestBitmapForHoldsItsLines(t *testing.T) {
	const n = 10_000
	m := batchline.BitmapFor(n)
	first := &m[:1][0]
	for i := 0; i <= n; i += 3 {
		m.Set(i)
	}
	m.Set(n)
	require.Same(t, first, &m[0], "marking its lines did not copy the bitmap")
	for i := 0; i <= n; i++ {
		require.Equal(t, i%3 == 0 || i == n, m.Has(i), "line %d", i)
	}
	m.Set(5 * n)
	require.True(t, m.Has(5*n))
	require.False(t, m.Has(5*n-1))
	require.True(t, m.Has(n))
	require.Empty(t, batchline.BitmapFor(-1))
}
