package curation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// BenchmarkDatasetSave saves 100,000 openai_sft examples as a dataset
// version, as JSONL and as Parquet, on SQLite, and reports examples/s.
//
//	go test -run '^$' -bench DatasetSave -benchtime 1x ./curation/
func BenchmarkDatasetSave(b *testing.B) {
	const n = 100_000
	env := kilntest.Start(b, "sqlite", kilntest.Options{NoAgent: true})
	if _, err := env.App.Store.CurationImport(context.Background(), "batch_ds", items(n, "batch_ds", "sim-model")); err != nil {
		b.Fatal(err)
	}
	markGold(b, env, "sqlite")
	saver := curation.DatasetSaver{Store: env.App.Store, Bucket: env.App.Bucket}
	for _, format := range curation.FileFormats {
		b.Run(format, func(b *testing.B) {
			var took time.Duration
			for i := range b.N {
				start := time.Now()
				v, err := saver.Save(context.Background(), "", "bench", fmt.Sprintf("bench-%s-%d", format, i),
					curation.ExportOptions{Format: curation.FormatSFT, FileFormat: format})
				if err != nil {
					b.Fatal(err)
				}
				if v.Rows != n {
					b.Fatalf("saved %d rows", v.Rows)
				}
				took = time.Since(start)
			}
			b.ReportMetric(took.Seconds(), "s/save")
			b.ReportMetric(n/took.Seconds(), "examples/s")
		})
	}
}

// BenchmarkNearDup fingerprints and clusters 100,000 inputs of one type
// of 40 words (one in ten a near duplicate of the one before it: a word
// changed) and reports tasks/s.
//
//	go test -run '^$' -bench NearDup ./curation/
func BenchmarkNearDup(b *testing.B) {
	const n = 100_000
	texts := make([]string, n)
	ids := make([]string, n)
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]string, 5000)
	for i := range words {
		words[i] = fmt.Sprintf("w%x", rng.Uint64()%(1<<24))
	}
	for i := range texts {
		if i%10 == 9 { // a near duplicate of the one before: one word changed
			ws := strings.Fields(texts[i-1])
			ws[len(ws)/2] = "changed"
			texts[i] = strings.Join(ws, " ")
		} else {
			ws := make([]string, 40)
			for k := range ws {
				ws[k] = words[rng.IntN(len(words))]
			}
			texts[i] = "Email: " + strings.Join(ws, " ")
		}
		ids[i] = fmt.Sprintf("task_%07d", i)
	}
	b.ResetTimer()
	for range b.N {
		hashes := make([]uint64, n)
		for i, t := range texts {
			hashes[i] = curation.SimHash(t)
		}
		clusters := curation.ClusterNearDups(ids, hashes)
		dups := 0
		for i, c := range clusters {
			if c != ids[i] {
				dups++
			}
		}
		b.ReportMetric(float64(dups)/(n/10), "recall")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
}
