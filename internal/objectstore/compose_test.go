package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestComposePlan(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	lim := s3ComposeLimits
	cp := func(key string, offset, length int64) composePart {
		return composePart{copy: true, ranges: []srcRange{{key, offset, length}}, size: length}
	}
	st := func(ranges ...srcRange) composePart {
		p := composePart{ranges: ranges}
		for _, r := range ranges {
			p.size += r.length
		}
		return p
	}

	for _, tt := range []struct {
		name  string
		sizes []int64
		want  []composePart
	}{
		{"None", nil, nil},
		{"Empty", []int64{0, 0}, nil},
		{"OneSmall", []int64{10}, []composePart{st(srcRange{"0", 0, 10})}},
		{"OneBig", []int64{6 * mib}, []composePart{cp("0", 0, 6*mib)}},
		{"AllBig", []int64{5 * mib, 6 * mib, 10}, []composePart{
			cp("0", 0, 5*mib), cp("1", 0, 6*mib), st(srcRange{"2", 0, 10}),
		}},
		// 1 KiB cannot be a part before another: it takes the rest of
		// 5 MiB from the next source, unless that leaves too little to copy.
		{"SmallBeforeBig", []int64{6 * mib, 1 << 10, 6 * mib, 10}, []composePart{
			cp("0", 0, 6*mib), st(srcRange{"1", 0, 1 << 10}, srcRange{"2", 0, 6 * mib}, srcRange{"3", 0, 10}),
		}},
		{"SmallBeforeBigger", []int64{6 * mib, 1 << 10, 11 * mib, 10}, []composePart{
			cp("0", 0, 6*mib),
			st(srcRange{"1", 0, 1 << 10}, srcRange{"2", 0, 5*mib - 1<<10}),
			cp("2", 5*mib-1<<10, 6*mib+1<<10),
			st(srcRange{"3", 0, 10}),
		}},
		{"SmallRunsCloseAtStreamPart", []int64{4 * mib, 4 * mib, 4 * mib, 4 * mib, 4 * mib, 1}, []composePart{
			st(srcRange{"0", 0, 4 * mib}, srcRange{"1", 0, 4 * mib}, srcRange{"2", 0, 4 * mib}, srcRange{"3", 0, 4 * mib}),
			st(srcRange{"4", 0, 4 * mib}, srcRange{"5", 0, 1}),
		}},
		{"EnoughSmallBeforeBig", []int64{3 * mib, 3 * mib, 5 * mib}, []composePart{
			st(srcRange{"0", 0, 3 * mib}, srcRange{"1", 0, 3 * mib}), cp("2", 0, 5*mib),
		}},
		{"HugeInEvenRanges", []int64{11 << 30}, []composePart{
			cp("0", 0, 11<<30/3+1), cp("0", 11<<30/3+1, 11<<30/3+1), cp("0", 2*(11<<30/3+1), 11<<30/3),
		}},
	} {
		srcs := make([]string, len(tt.sizes))
		for i := range srcs {
			srcs[i] = fmt.Sprint(i)
		}
		got, err := composePlan(srcs, tt.sizes, lim)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got, tt.name)
		checkPlan(t, srcs, tt.sizes, lim, got)
	}
}

// TestComposePlanRandom checks the plan's invariants over random sizes, with
// small limits so that every case comes up.
func TestComposePlanRandom(t *testing.T) {
	t.Parallel()
	lim := composeLimits{minPart: 5, streamPart: 16, maxPart: 50, maxParts: 10000}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		sizes := make([]int64, rng.IntN(12))
		srcs := make([]string, len(sizes))
		for i := range sizes {
			srcs[i] = fmt.Sprint(i)
			switch rng.IntN(4) {
			case 0:
				sizes[i] = rng.Int64N(lim.minPart) // small or empty
			case 1:
				sizes[i] = lim.minPart + rng.Int64N(lim.minPart) // just big enough to copy
			case 2:
				sizes[i] = rng.Int64N(3 * lim.maxPart) // may need several ranges
			default:
				sizes[i] = rng.Int64N(2 * lim.streamPart)
			}
		}
		parts, err := composePlan(srcs, sizes, lim)
		require.NoError(t, err, "%v", sizes)
		checkPlan(t, srcs, sizes, lim, parts)
	}
}

func TestComposePlanTooManyParts(t *testing.T) {
	t.Parallel()
	lim := composeLimits{minPart: 5, streamPart: 16, maxPart: 50, maxParts: 3}
	_, err := composePlan([]string{"a", "b", "c", "d"}, []int64{5, 5, 5, 5}, lim)
	require.Error(t, err)
	_, err = composePlan([]string{"a", "b", "c"}, []int64{5, 5, 5}, lim)
	require.NoError(t, err)
}

// checkPlan checks that parts are what S3 accepts and make, in order, exactly
// the bytes of srcs.
func checkPlan(t *testing.T, srcs []string, sizes []int64, lim composeLimits, parts []composePart) {
	t.Helper()
	var flat []srcRange
	for i, p := range parts {
		require.LessOrEqual(t, p.size, lim.maxPart, "part %d of %v", i, sizes)
		if i < len(parts)-1 {
			require.GreaterOrEqual(t, p.size, lim.minPart, "part %d of %v", i, sizes)
		}
		if p.copy {
			require.Len(t, p.ranges, 1, "copied part %d of %v", i, sizes)
		}
		var sum int64
		for _, r := range p.ranges {
			require.Positive(t, r.length, "part %d of %v", i, sizes)
			sum += r.length
		}
		require.Equal(t, sum, p.size, "part %d of %v", i, sizes)
		flat = append(flat, p.ranges...)
	}
	// Walking the ranges covers each source from 0 to its end, in order.
	j := 0
	for i, key := range srcs {
		var off int64
		for off < sizes[i] {
			require.Less(t, j, len(flat), "source %d of %v not covered", i, sizes)
			require.Equal(t, key, flat[j].key, "range %d of %v", j, sizes)
			require.Equal(t, off, flat[j].offset, "range %d of %v", j, sizes)
			off += flat[j].length
			j++
		}
		require.Equal(t, sizes[i], off, "source %d of %v", i, sizes)
	}
	require.Len(t, flat, j, "ranges past the sources in %v", sizes)
}

func TestConcatReader(t *testing.T) {
	t.Parallel()
	objects := map[string]string{"a": "0123456789", "b": "abc", "short": "xy"}
	var open, closed int
	opener := func(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
		s, ok := objects[key]
		if !ok {
			return nil, fmt.Errorf("open %q: %w", key, ErrNotExist)
		}
		open++
		if open-closed > 1 {
			return nil, errors.New("more than one source open")
		}
		s = s[min(int(offset), len(s)):]
		s = s[:min(int(length), len(s))]
		return closer{strings.NewReader(s), func() { closed++ }}, nil
	}
	read := func(ranges ...srcRange) (string, error) {
		open, closed = 0, 0
		r := &concatReader{ctx: t.Context(), open: opener, ranges: ranges}
		got, err := io.ReadAll(r)
		require.NoError(t, r.Close())
		require.Equal(t, open, closed, "sources left open")
		return string(got), err
	}

	got, err := read(srcRange{"a", 0, 10}, srcRange{"b", 0, 0}, srcRange{"b", 1, 2}, srcRange{"a", 8, 2})
	require.NoError(t, err)
	require.Equal(t, "0123456789bc89", got)

	got, err = read()
	require.NoError(t, err)
	require.Empty(t, got)

	_, err = read(srcRange{"a", 0, 10}, srcRange{"missing", 0, 1})
	require.ErrorIs(t, err, ErrNotExist)

	_, err = read(srcRange{"short", 0, 5}, srcRange{"a", 0, 10})
	require.ErrorIs(t, err, errSourceChanged)
}

type closer struct {
	io.Reader
	close func()
}

func (c closer) Close() error {
	c.close()
	return nil
}

// With ahead, concatReader fetches small ranges several at a time, yet
// reads them in order; with ends, a source must end where its size says.
// Closing it early closes every source it opened.
func TestConcatReaderAhead(t *testing.T) {
	t.Parallel()
	objects := map[string]string{}
	var ranges []srcRange
	var want strings.Builder
	for i := range 40 {
		key := fmt.Sprintf("k%d", i)
		size := 1 + i*97
		if i%10 == 9 {
			size = prefetchMaxRange + 10 // streamed, not fetched ahead
		}
		objects[key] = strings.Repeat(string(rune('a'+i%26)), size)
		ranges = append(ranges, srcRange{key, 0, int64(size)})
		want.WriteString(objects[key])
	}
	objects["ten"] = "0123456789"
	objects["big"] = strings.Repeat("b", prefetchMaxRange+10)
	var mu sync.Mutex
	var open, closed, most int
	// second, when set, is closed once two sources are open at once.
	var second chan struct{}
	opener := func(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
		s, ok := objects[key]
		if !ok {
			return nil, fmt.Errorf("open %q: %w", key, ErrNotExist)
		}
		mu.Lock()
		open++
		most = max(most, open-closed)
		first := open == 1
		if most > 1 && second != nil {
			close(second)
			second = nil
		}
		wait := second
		mu.Unlock()
		if first && wait != nil {
			// The first source waits (a while) for a second to be opened
			// beside it: a reader that fetches ahead opens one; one that
			// reads one source at a time does not, and most stays 1. So the
			// check below does not depend on how goroutines are scheduled.
			select {
			case <-wait:
			case <-time.After(5 * time.Second):
			}
		}
		s = s[min(int(offset), len(s)):]
		s = s[:min(int(length), len(s))]
		return closer{strings.NewReader(s), func() {
			mu.Lock()
			closed++
			mu.Unlock()
		}}, nil
	}
	const ahead = 4
	read := func(ends map[string]int64, ranges ...srcRange) (string, error) {
		open, closed, most = 0, 0, 0
		r := &concatReader{ctx: t.Context(), open: opener, ranges: ranges, ends: ends, ahead: ahead}
		got, err := io.ReadAll(r)
		require.NoError(t, r.Close())
		require.Equal(t, open, closed, "sources left open")
		return string(got), err
	}

	ends := map[string]int64{}
	for k, s := range objects {
		ends[k] = int64(len(s))
	}
	second = make(chan struct{}) // this read's first source waits for a second
	got, err := read(ends, ranges...)
	require.NoError(t, err)
	require.Equal(t, want.String(), got)
	require.Greater(t, most, 1, "fetched ahead")
	require.LessOrEqual(t, most, ahead+1)

	for _, key := range []string{"ten", "big"} {
		size := int64(len(objects[key]))
		_, err = read(map[string]int64{key: size - 1}, srcRange{"k0", 0, 1}, srcRange{key, 0, size - 1})
		require.ErrorIs(t, err, ErrSizeMismatch, "%s longer than given", key)
		_, err = read(map[string]int64{key: size + 1}, srcRange{key, 0, size + 1}, srcRange{"k0", 0, 1})
		require.ErrorIs(t, err, ErrSizeMismatch, "%s shorter than given", key)
		// A range that stops before the end is not checked.
		got, err = read(map[string]int64{key: size + 1}, srcRange{key, 1, 2})
		require.NoError(t, err)
		require.Equal(t, objects[key][1:3], got)
	}
	_, err = read(nil, srcRange{"k1", 0, 10}, srcRange{"missing", 0, 1}, srcRange{"k2", 0, 5})
	require.ErrorIs(t, err, ErrNotExist)

	// Closed after a few bytes, with fetches under way.
	open, closed = 0, 0
	r := &concatReader{ctx: t.Context(), open: opener, ranges: ranges, ahead: ahead}
	_, err = io.ReadFull(r, make([]byte, 5))
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, open, closed, "sources left open")
}
