package objectstore_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

// BenchmarkComposeSmall measures composing 400 sources of 160 KB, as a
// finalizer composes a batch's chunks, on a folder and on S3 (MinIO):
// ComposeSources with the sizes known (file to file on a folder; on S3
// small sources fetched ahead and parts sent at once) against the baseline
// of Compose one by one (each source stat'd, then read in turn through
// kiln, one part at a time), three rounds each, alternating. It reports the
// medians' MB/s and the speedup.
//
//	go test -run '^$' -bench '^BenchmarkComposeSmall$' -benchtime 1x ./internal/objectstore
func BenchmarkComposeSmall(b *testing.B) {
	const n, size, rounds = 400, 160_000, 3
	for _, kind := range []string{"folder", "s3"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			url := "file://" + b.TempDir()
			if kind == "s3" {
				url = testenv.S3URL(b)
			}
			open := func() objectstore.Bucket {
				bk, err := objectstore.Open(ctx, url)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = bk.Close() })
				return bk
			}
			fast, slow := open(), objectstore.ComposeOneByOne(open())
			keys := make([]string, n)
			srcs := make([]objectstore.Source, n)
			data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			for i := range keys {
				keys[i] = fmt.Sprintf("src/%04d", i)
				srcs[i] = objectstore.Source{Key: keys[i], Size: size}
				if _, err := fast.Put(ctx, keys[i], bytes.NewReader(data), size); err != nil {
					b.Fatal(err)
				}
			}
			var fastT, slowT []time.Duration
			for range b.N * rounds {
				start := time.Now()
				if _, err := slow.Compose(ctx, "out/slow", keys); err != nil {
					b.Fatal(err)
				}
				slowT = append(slowT, time.Since(start))
				start = time.Now()
				if _, err := fast.ComposeSources(ctx, "out/fast", srcs); err != nil {
					b.Fatal(err)
				}
				fastT = append(fastT, time.Since(start))
			}
			median := func(ds []time.Duration) time.Duration {
				slices.Sort(ds)
				return ds[len(ds)/2]
			}
			mb := float64(n*size) / 1e6
			b.ReportMetric(mb/median(fastT).Seconds(), "MB/s")
			b.ReportMetric(mb/median(slowT).Seconds(), "baseline-MB/s")
			b.ReportMetric(median(slowT).Seconds()/median(fastT).Seconds(), "speedup")
			b.ReportMetric(0, "ns/op")
		})
	}
}
