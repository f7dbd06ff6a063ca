package curation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/store"
)

// items makes n outputs of distinct tasks of one type, as an import of a
// 100,000-request batch would.
func items(n int, batch, model string) []store.ImportItem {
	out := make([]store.ImportItem, n)
	for i := range out {
		msgs := fmt.Sprintf(`[{"role":"system","content":"Evaluate the email."},{"role":"user","content":"Email %d: Dear candidate, we would love to talk about a role at Northwind Analytics."}]`, i)
		out[i] = store.ImportItem{ConquestType: "email_evaluation", ConquestVersion: 1, Key: fmt.Sprintf("email-%07d", i),
			Input: json.RawMessage(`{"messages":` + msgs + `}`), SearchText: strings.ToLower(msgs),
			Output: store.CurationOutput{BatchID: batch, Model: model, Valid: true, InputTokens: 120, OutputTokens: 80,
				Content: `{"overall_score":7,"clarity":{"score":8,"comment":"Clear and short."},"issues":[],"summary":"A good email."}`}}
	}
	return out
}

// BenchmarkImport imports 100,000 outputs (new tasks) and reports tasks/s.
//
//	go test -run '^$' -bench Import -benchtime 1x ./curation/
func BenchmarkImport(b *testing.B) {
	const n = 100_000
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			var rate float64
			for i := range b.N {
				env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true})
				its := items(n, fmt.Sprintf("batch_bench%d", i), "sim-model")
				start := time.Now()
				res, err := env.App.Store.CurationImport(context.Background(), fmt.Sprintf("batch_bench%d", i), its)
				if err != nil {
					b.Fatal(err)
				}
				if res.Tasks != n || res.Outputs != n {
					b.Fatalf("imported %d tasks, %d outputs", res.Tasks, res.Outputs)
				}
				rate = n / time.Since(start).Seconds()
			}
			b.ReportMetric(rate, "tasks/s")
		})
	}
}

// BenchmarkExport exports 100,000 gold examples as OpenAI chat
// fine-tuning JSONL through the export job, and reports the time from the
// request to the completed file.
//
//	go test -run '^$' -bench Export -benchtime 1x ./curation/
func BenchmarkExport(b *testing.B) {
	const n = 100_000
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true})
			ctx := context.Background()
			if _, err := env.App.Store.CurationImport(ctx, "batch_export", items(n, "batch_export", "sim-model")); err != nil {
				b.Fatal(err)
			}
			markGold(b, env, backend)
			_, secret, err := curation.CreateCurator(ctx, env.App.Store, "bench", curation.RoleAdmin)
			if err != nil {
				b.Fatal(err)
			}
			cur := client{t: b, base: strings.TrimSuffix(env.URL, "/v1"), token: secret}
			var took time.Duration
			for range b.N {
				start := time.Now()
				var ex struct {
					ID     string `json:"id"`
					Status string `json:"status"`
					Rows   int    `json:"rows"`
					Error  string `json:"error"`
				}
				cur.do(http.MethodPost, "/v1/curation/exports", map[string]any{"format": "openai_sft", "source": "gold"}, 200, &ex)
				deadline := time.Now().Add(10 * time.Minute)
				for ex.Status != "completed" && ex.Status != "failed" {
					if time.Now().After(deadline) {
						b.Fatal("export still running after 10 minutes")
					}
					<-time.After(20 * time.Millisecond)
					cur.do(http.MethodGet, "/v1/curation/exports/"+ex.ID, nil, 200, &ex)
				}
				if ex.Status != "completed" || ex.Rows != n {
					b.Fatalf("export %s with %d rows: %s", ex.Status, ex.Rows, ex.Error)
				}
				took = time.Since(start)
			}
			b.ReportMetric(took.Seconds(), "s/export")
			b.ReportMetric(n/took.Seconds(), "examples/s")
		})
	}
}

// markGold stars every task's output, in one statement.
func markGold(b *testing.B, env *kilntest.Env, backend string) {
	sql := `UPDATE curation_tasks SET gold_output_id = (SELECT o.id FROM curation_outputs o WHERE o.task_id = curation_tasks.id LIMIT 1)`
	if err := execSQL(env, backend, sql); err != nil {
		b.Fatal(err)
	}
}

func execSQL(env *kilntest.Env, backend, sql string) error {
	ctx := context.Background()
	if backend != "postgres" {
		return env.App.Store.ExecForTest(ctx, sql)
	}
	conn, err := pgx.Connect(ctx, env.App.Cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// taskListSeed is the SQL that fills a database with tasks (two outputs
// each, of two models), per backend.
func taskListSeed(backend string, tasks int) []string {
	if backend == "postgres" {
		return []string{
			fmt.Sprintf(`INSERT INTO curation_tasks (id, conquest_type, conquest_version, task_key, input, search_text, status, gold_output_id, created_at, updated_at)
			SELECT 'task_' || lpad(g::text, 10, '0'), (ARRAY['cv_parsing','email_evaluation','quil_email','cartographer'])[1 + g %% 4], 1,
				'key-' || g, '{"messages":[{"role":"user","content":"Resume ' || g || ': engineer at Bluefjord Systems"}]}',
				'resume ' || g || ': engineer at bluefjord systems', (ARRAY['pending','reviewed','skipped'])[1 + g %% 3],
				CASE WHEN g %% 10 = 0 THEN 'out_a_' || g END, 1795000000, 1795000000
			FROM generate_series(1, %d) g`, tasks),
			fmt.Sprintf(`INSERT INTO curation_outputs (id, task_id, batch_id, model, content, valid, rating, created_at, updated_at)
			SELECT 'out_' || m || '_' || g, 'task_' || lpad(g::text, 10, '0'), 'batch_' || m, CASE m WHEN 'a' THEN 'google/gemma-3-4b-it' ELSE 'Qwen/Qwen2.5-3B-Instruct' END,
				'{"score": 7}', CASE WHEN g %% 50 = 0 THEN 0 ELSE 1 END, CASE WHEN g %% 7 = 0 THEN 1 + g %% 5 END, 1795000000, 1795000000
			FROM generate_series(1, %d) g, (VALUES ('a'), ('b')) AS v(m)`, tasks),
			`ANALYZE curation_tasks`, `ANALYZE curation_outputs`,
		}
	}
	series := fmt.Sprintf(`WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %d) `, tasks)
	return []string{
		series + `INSERT INTO curation_tasks (id, conquest_type, conquest_version, task_key, input, search_text, status, gold_output_id, created_at, updated_at)
			SELECT 'task_' || printf('%010d', g), CASE g % 4 WHEN 0 THEN 'cv_parsing' WHEN 1 THEN 'email_evaluation' WHEN 2 THEN 'quil_email' ELSE 'cartographer' END, 1,
				'key-' || g, '{"messages":[{"role":"user","content":"Resume ' || g || ': engineer at Bluefjord Systems"}]}',
				'resume ' || g || ': engineer at bluefjord systems', CASE g % 3 WHEN 0 THEN 'pending' WHEN 1 THEN 'reviewed' ELSE 'skipped' END,
				CASE WHEN g % 10 = 0 THEN 'out_a_' || g END, 1795000000, 1795000000
			FROM s`,
		series + `INSERT INTO curation_outputs (id, task_id, batch_id, model, content, valid, rating, created_at, updated_at)
			SELECT 'out_' || m || '_' || g, 'task_' || printf('%010d', g), 'batch_' || m, CASE m WHEN 'a' THEN 'google/gemma-3-4b-it' ELSE 'Qwen/Qwen2.5-3B-Instruct' END,
				'{"score": 7}', CASE WHEN g % 50 = 0 THEN 0 ELSE 1 END, CASE WHEN g % 7 = 0 THEN 1 + g % 5 END, 1795000000, 1795000000
			FROM s, (SELECT 'a' AS m UNION ALL SELECT 'b') AS v`,
		`ANALYZE`,
	}
}

// taskListRequests is how many requests of each query BenchmarkTaskList
// times, and taskListBudget the time after which it stops at
// taskListMinRequests or more: a query slow enough to spend it has its p95
// from fewer requests, rather than holding the run for an hour.
const (
	taskListRequests    = 200
	taskListMinRequests = 20
	taskListBudget      = 20 * time.Second
)

// BenchmarkTaskList measures the task list API's latency at KILN_BENCH_TASKS
// tasks (default 1,000,000; 2 outputs each, of two models) on each backend:
// up to 200 requests of each of a few usual queries, first pages and pages
// deep in the list, and text searches (a rare text, a text in every task,
// and one of three characters, the shortest searched), reporting the 95th
// percentile.
// The first request, which fingerprints every task for the near-duplicate
// marks (once after an import), is timed apart (s-first-list).
//
//	go test -run '^$' -bench TaskList -benchtime 1x -timeout 60m ./curation/
func BenchmarkTaskList(b *testing.B) {
	tasks := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("KILN_BENCH_TASKS")); err == nil && v > 0 {
		tasks = v
	}
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true})
			ctx := context.Background()
			start := time.Now()
			for _, sql := range taskListSeed(backend, tasks) {
				if err := execSQL(env, backend, sql); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: seeded %d tasks in %s", backend, tasks, time.Since(start).Round(time.Second))
			_, secret, err := curation.CreateCurator(ctx, env.App.Store, "bench", curation.RoleAdmin)
			if err != nil {
				b.Fatal(err)
			}
			cur := client{t: b, base: strings.TrimSuffix(env.URL, "/v1"), token: secret}
			list := func(query string) int {
				var page struct {
					Data []json.RawMessage `json:"data"`
				}
				cur.do(http.MethodGet, "/v1/curation/tasks?"+query, nil, 200, &page)
				return len(page.Data)
			}
			// A text under three characters is refused (400), not searched.
			cur.do(http.MethodGet, "/v1/curation/tasks?q=99&limit=50", nil, 400, nil)
			start = time.Now()
			list("limit=50")
			first := time.Since(start)
			b.Logf("%s: first list (fingerprints every task) in %s", backend, first.Round(time.Millisecond))
			queries := map[string]string{
				"all":               "limit=50",
				"type":              "type=cv_parsing&limit=50",
				"status":            "status=pending&limit=50",
				"gold":              "gold=true&limit=50",
				"model+rated":       "model=Qwen/Qwen2.5-3B-Instruct&rated=true&limit=50",
				"invalid":           "invalid=true&limit=50",
				"deep page":         fmt.Sprintf("after=task_%010d&limit=50", tasks/2),
				"type+deep":         fmt.Sprintf("type=quil_email&after=task_%010d&limit=50", tasks*3/10),
				"search (1 page)":   fmt.Sprintf("q=resume%%20%d&limit=50", tasks-1),
				"search (every)":    "q=Bluefjord&limit=50",
				"search (3 chars)":  "q=999&limit=50",
				"search+type (few)": fmt.Sprintf("type=cv_parsing&q=resume%%20%d&limit=50", tasks/81),
			}
			names := make([]string, 0, len(queries))
			for k := range queries {
				names = append(names, k)
			}
			slices.Sort(names)
			b.ResetTimer()
			for range b.N {
				for _, name := range names {
					var lat []time.Duration
					began := time.Now()
					for len(lat) < taskListRequests && (len(lat) < taskListMinRequests || time.Since(began) < taskListBudget) {
						start := time.Now()
						n := list(queries[name])
						lat = append(lat, time.Since(start))
						if n == 0 {
							b.Fatalf("%s: no tasks", name)
						}
					}
					slices.Sort(lat)
					p95 := lat[len(lat)*95/100]
					b.Logf("%s %s: p50 %s, p95 %s over %d requests", backend, name, lat[len(lat)/2].Round(10*time.Microsecond),
						p95.Round(10*time.Microsecond), len(lat))
					b.ReportMetric(float64(p95.Microseconds())/1000, "ms-p95-"+strings.NewReplacer(" ", "_", "+", "_", "(", "", ")", "").Replace(name))
				}
			}
			b.ReportMetric(first.Seconds(), "s-first-list")
		})
	}
}

// BenchmarkImportBatch measures the import function's whole path for a
// batch of 100,000 requests: streaming its input and output files,
// checking each answer against the conquest schema, and writing tasks and
// outputs; it reports tasks/s. On Linux it also reports the CPU time an
// import takes per task: kiln-cpu-µs/task is the benchmark's process
// (kiln), other-cpu-µs/task the rest of the machine (Postgres and MinIO,
// and whatever else runs), so that tasks/s can be read against the
// machine's CPUs.
//
//	go test -run '^$' -bench ImportBatch -benchtime 1x ./curation/
func BenchmarkImportBatch(b *testing.B) {
	const n = 100_000
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			var rate, self, other float64
			for i := range b.N {
				env := kilntest.Start(b, backend, kilntest.Options{NoAgent: true})
				// The import is what is measured: the function must not run it
				// first when the batch completes.
				if err := env.App.Store.StopWorkers(context.Background()); err != nil {
					b.Fatal(err)
				}
				id := fmt.Sprintf("batch_bench%d", i)
				seedBatch(b, env, id, n)
				var machine0 kilntest.CPUTimes
				var self0 time.Duration
				if runtime.GOOS == "linux" {
					machine0, self0 = kilntest.MachineCPU(b), kilntest.ProcCPU(b, os.Getpid())
				}
				start := time.Now()
				res, err := env.App.Importer.ImportBatch(context.Background(), id)
				if err != nil {
					b.Fatal(err)
				}
				if res.Tasks != n || res.Outputs != n {
					b.Fatalf("imported %d tasks, %d outputs", res.Tasks, res.Outputs)
				}
				rate = n / time.Since(start).Seconds()
				if runtime.GOOS == "linux" {
					ownCPU := kilntest.ProcCPU(b, os.Getpid()) - self0
					self = ownCPU.Seconds() * 1e6 / n
					other = (kilntest.MachineCPU(b).BusyTimeSince(machine0) - ownCPU).Seconds() * 1e6 / n
				}
			}
			b.ReportMetric(rate, "tasks/s")
			if runtime.GOOS == "linux" {
				b.ReportMetric(self, "kiln-cpu-µs/task")
				b.ReportMetric(other, "other-cpu-µs/task")
			}
		})
	}
}

// seedBatch stores a completed email_evaluation batch of n requests with
// schema-valid outputs, without running it.
func seedBatch(b *testing.B, env *kilntest.Env, id string, n int) {
	ctx := context.Background()
	st := env.App.Store
	def, err := env.App.Conquests.Get("email_evaluation", 0)
	if err != nil {
		b.Fatal(err)
	}
	answer, err := llmsim.GenerateJSON(def.OutputSchema, 1)
	if err != nil {
		b.Fatal(err)
	}
	var in, out strings.Builder
	for i := range n {
		cid := fmt.Sprintf("email-%07d", i)
		fmt.Fprintf(&in, `{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"system","content":"Evaluate the email."},{"role":"user","content":"Email %d: Dear candidate, we would love to talk about a role at Northwind Analytics."}],"response_format":{"type":"json_schema","json_schema":{"name":"conquest-email_evaluation-v1","schema":{},"strict":true}}}}`+"\n", cid, i)
		line, _ := json.Marshal(map[string]any{"id": "batch_req_" + cid, "custom_id": cid, "error": nil, "response": map[string]any{
			"status_code": 200, "request_id": "req_" + cid, "latency_ms": 120, "body": map[string]any{"model": "sim-model",
				"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": string(answer)}}},
				"usage":   map[string]any{"prompt_tokens": 120, "completion_tokens": 80}}}})
		out.Write(line)
		out.WriteByte('\n')
	}
	put := func(fid, body string) store.File {
		f := store.File{ID: fid, Purpose: "batch", Filename: fid, Bytes: int64(len(body)), ObjectKey: "files/" + fid, Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
		if _, err := env.App.Bucket.Put(ctx, f.ObjectKey, strings.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		return f
	}
	inFile, outFile := put("file-in-"+id, in.String()), put("file-out-"+id, out.String())
	if err := st.FileCreate(ctx, inFile); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	bt := store.Batch{ID: id, Endpoint: "/v1/chat/completions", Model: "sim-model", InputFileID: inFile.ID, CompletionWindow: "24h",
		Status: store.BatchValidating, CreatedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(),
		Conquest: store.Conquest{Type: "email_evaluation", Version: 1}}
	if err := st.BatchCreate(ctx, bt); err != nil {
		b.Fatal(err)
	}
	if _, err := st.BatchComplete(ctx, id, store.Outcome{Output: &outFile, Completed: int64(n)}); err != nil {
		b.Fatal(err)
	}
}
