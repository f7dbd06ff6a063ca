package curation_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// BenchmarkReview measures, on Postgres, a project of KILN_BENCH_TASKS
// tasks (default 100,000), each answered by two models, half of them
// judged by two curators: the latency of choosing the next pair (p50,
// p95 over 200 pairs, each judged before the next, as a curator does) and
// the time to compute the agreement over every doubly judged pair.
//
//	KILN_BENCH_TASKS=1000000 go test -run '^$' -bench Review -benchtime 1x -timeout 60m ./curation/
func BenchmarkReview(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("KILN_BENCH_TASKS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	env := kilntest.Start(b, "postgres", kilntest.Options{NoAgent: true})
	st := env.App.Store
	start := time.Now()
	for _, m := range []string{"model-a", "model-b"} {
		if _, err := st.CurationImport(ctx, "batch_"+m, items(n, "batch_"+m, m)); err != nil {
			b.Fatal(err)
		}
	}
	// Two curators judged every other task's pair: the winner from a hash.
	for _, cur := range []string{"cur_x", "cur_y"} {
		err := execSQL(env, "postgres", `INSERT INTO curation_preferences (id, project_id, task_id, conquest_type, output_a, output_b, model_a, model_b,
			winner, reason, curator_id, final, created_at)
			SELECT 'pref_'||'`+cur+`'||t.id, t.project_id, t.id, t.conquest_type, oa.id, ob.id, oa.model, ob.model,
				(ARRAY['a','b','tie','both_bad'])[1 + abs(hashtext(t.id || '`+cur+`')) % 4], '', '`+cur+`', 0, 0
			FROM curation_tasks t JOIN curation_outputs oa ON oa.task_id = t.id AND oa.model = 'model-a'
			JOIN curation_outputs ob ON ob.task_id = t.id AND ob.model = 'model-b'
			WHERE abs(hashtext(t.id)) % 2 = 0`)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := execSQL(env, "postgres", `INSERT INTO curation_pair_counts (project_id, conquest_type, model_lo, model_hi, wins_lo, wins_hi, ties, both_bad)
		SELECT project_id, conquest_type, 'model-a', 'model-b', SUM(CASE WHEN winner = 'a' THEN 1 ELSE 0 END), SUM(CASE WHEN winner = 'b' THEN 1 ELSE 0 END),
			SUM(CASE WHEN winner = 'tie' THEN 1 ELSE 0 END), SUM(CASE WHEN winner = 'both_bad' THEN 1 ELSE 0 END)
		FROM curation_preferences GROUP BY project_id, conquest_type`); err != nil {
		b.Fatal(err)
	}
	if err := execSQL(env, "postgres", `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d tasks, 2 outputs each, verdicts on half by two curators, in %s", n, time.Since(start).Round(time.Second))

	b.ResetTimer()
	var p50, p95, agree time.Duration
	for range b.N {
		// A third curator works through pairs.
		var lat []time.Duration
		for range 200 {
			t0 := time.Now()
			c, _, err := curation.NextPair(ctx, st, "", "cur_z", "")
			lat = append(lat, time.Since(t0))
			if err != nil || c == nil {
				b.Fatalf("next pair: %v %v", c, err)
			}
			if _, err := st.PreferenceSave(ctx, store.Preference{TaskID: c.TaskID, OutputA: c.OutputLo, OutputB: c.OutputHi, Winner: store.PreferA,
				CuratorID: "cur_z"}); err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(lat)
		p50, p95 = lat[len(lat)/2], lat[len(lat)*95/100]
		t0 := time.Now()
		ag, err := curation.ComputeAgreement(ctx, st, "", "")
		agree = time.Since(t0)
		if err != nil || len(ag) == 0 {
			b.Fatalf("agreement: %v %v", ag, err)
		}
		b.Logf("agreement over %d units: α=%.3f, in %s", ag[0].Units, *ag[0].Alpha["nominal"], agree)
	}
	b.ReportMetric(float64(p50.Microseconds())/1000, "next-pair-p50-ms")
	b.ReportMetric(float64(p95.Microseconds())/1000, "next-pair-p95-ms")
	b.ReportMetric(agree.Seconds(), "agreement-s")
}
