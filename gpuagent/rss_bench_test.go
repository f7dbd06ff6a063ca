package gpuagent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// rssSizesDefault are the batch sizes BenchmarkServeRSS runs unless
// KILN_BENCH_RSS_SIZES names others.
const rssSizesDefault = "100000,1000000"

// BenchmarkServeRSS measures the memory of `kiln serve` and of `kiln agent`,
// each as its own process on one SQLite kiln, while one batch runs through
// them against a fast simulator (1ms to the first token, no time per
// token), for each size in KILN_BENCH_RSS_SIZES (default 100000,1000000;
// each on a fresh kiln). The input is written to a temporary file and sent
// through the Uploads API in parts, so that the benchmark's own memory
// stays small. For each size N it reports the peak RSS of serve and agent
// (serve-MB-N, agent-MB-N: the binary's pages included), their peak
// anonymous memory (serve-anon-MB-N, agent-anon-MB-N: heap and stacks,
// the part a batch could grow), the requests per second from creation to
// completed (req/s-N, to tell how long a larger batch would take), and the
// ratios of the largest size's figures to the smallest's
// (serve-anon-ratio, agent-anon-ratio, serve-rss-ratio, agent-rss-ratio):
// flat memory is a ratio near 1. It also reports each process's peak
// anonymous memory in four parts of the run, told apart by the batch's
// request counts, polled every 100ms (serve-anon-MB-PART-N,
// agent-anon-MB-PART-N): start (until a tenth of the requests are
// answered: the upload, the start, the first shards), early (until half
// are), late (until all are) and finalize (until the batch is completed).
// Memory that grows with the requests answered shows as late above early.
func BenchmarkServeRSS(b *testing.B) {
	requireProc(b)
	var sizes []int
	raw := rssSizesDefault
	if v := os.Getenv("KILN_BENCH_RSS_SIZES"); v != "" {
		raw = v
	}
	for s := range strings.SplitSeq(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("KILN_BENCH_RSS_SIZES: %q is no number of requests", s)
		}
		sizes = append(sizes, n)
	}
	fast := llmsim.Config{Models: []string{benchModel}, MaxNumSeqs: benchSeqs, TTFT: time.Millisecond, TPOT: -1, OutputTokens: benchTokens}
	type figures struct {
		serveRSS, serveAnon, agentRSS, agentAnon, rate float64
		servePhases, agentPhases                       [memPhases]float64
	}
	run := func(b *testing.B, n int) figures {
		srv, _ := startBenchSim(b, fast)
		defer srv.Close()
		serve := startServeProcess(b, n)
		defer serve.stop(b)
		agent := startRSSAgent(b, serve, srv.URL+"/v1")
		c := openai.NewClient(option.WithBaseURL(serve.url+"/"), option.WithAPIKey(kilntest.Key))
		fileID := uploadLarge(b, c, n)
		start := time.Now()
		waitLarge(b, c, benchCreate(b, c, fileID), n, func(phase int32) {
			serve.phase.Store(phase)
			agent.phase.Store(phase)
		})
		f := figures{rate: float64(n) / time.Since(start).Seconds(),
			serveRSS: float64(serve.peakRSS(b)), serveAnon: float64(serve.peakAnon.Load()),
			agentRSS: float64(agent.peakRSS(b)), agentAnon: float64(agent.peakAnon.Load())}
		for i := range memPhases {
			f.servePhases[i], f.agentPhases[i] = float64(serve.phasePeaks[i].Load()), float64(agent.phasePeaks[i].Load())
		}
		agent.p.Stop(b)
		return f
	}
	got := make([]figures, len(sizes))
	for range b.N {
		for i, n := range sizes {
			f := run(b, n)
			got[i].serveRSS += f.serveRSS / float64(b.N)
			got[i].serveAnon += f.serveAnon / float64(b.N)
			got[i].agentRSS += f.agentRSS / float64(b.N)
			got[i].agentAnon += f.agentAnon / float64(b.N)
			for p := range memPhases {
				got[i].servePhases[p] += f.servePhases[p] / float64(b.N)
				got[i].agentPhases[p] += f.agentPhases[p] / float64(b.N)
			}
			got[i].rate += f.rate / float64(b.N)
		}
	}
	const mb = 1 << 20
	for i, n := range sizes {
		b.ReportMetric(got[i].serveRSS/mb, fmt.Sprintf("serve-MB-%d", n))
		b.ReportMetric(got[i].serveAnon/mb, fmt.Sprintf("serve-anon-MB-%d", n))
		b.ReportMetric(got[i].agentRSS/mb, fmt.Sprintf("agent-MB-%d", n))
		b.ReportMetric(got[i].agentAnon/mb, fmt.Sprintf("agent-anon-MB-%d", n))
		b.ReportMetric(got[i].rate, fmt.Sprintf("req/s-%d", n))
		for p, name := range memPhaseNames {
			b.ReportMetric(got[i].servePhases[p]/mb, fmt.Sprintf("serve-anon-MB-%s-%d", name, n))
			b.ReportMetric(got[i].agentPhases[p]/mb, fmt.Sprintf("agent-anon-MB-%s-%d", name, n))
		}
	}
	if len(sizes) > 1 {
		small, large := got[0], got[len(got)-1]
		b.ReportMetric(large.serveRSS/small.serveRSS, "serve-rss-ratio")
		b.ReportMetric(large.serveAnon/small.serveAnon, "serve-anon-ratio")
		b.ReportMetric(large.agentRSS/small.agentRSS, "agent-rss-ratio")
		b.ReportMetric(large.agentAnon/small.agentAnon, "agent-anon-ratio")
	}
	b.ReportMetric(0, "ns/op")
}

// memPhaseNames name the parts of a batch's run in BenchmarkServeRSS's
// figures.
var memPhaseNames = [memPhases]string{"start", "early", "late", "finalize"}

// serveProcess is a `kiln serve` run as its own process, with no agent in
// it; it samples the process's anonymous memory as agentProcess does.
type serveProcess struct {
	*agentProcess
	url      string // the API's base URL, ending in /v1
	database string
	objects  string
}

// startServeProcess runs `kiln serve` on a fresh SQLite database and local
// object folder, accepting batches of up to requests requests, and waits
// until its API answers.
func startServeProcess(b *testing.B, requests int) *serveProcess {
	b.Helper()
	addr := testenv.FreeAddr(b)
	sp := &serveProcess{url: "http://" + addr + "/v1", database: storetest.URL(b, "sqlite"),
		objects: "file://" + filepath.Join(b.TempDir(), "objects")}
	logPath := filepath.Join(b.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(kilntest.KilnBinary(b), "serve")
	cmd.Env = append(os.Environ(),
		"KILN_ADDR="+addr,
		"KILN_DATABASE_URL="+sp.database,
		"KILN_OBJECT_STORE="+sp.objects,
		"KILN_API_KEY="+kilntest.Key,
		"KILN_AGENT=off",
		"KILN_MODELS="+benchModel,
		"KILN_MAX_REQUESTS="+strconv.Itoa(max(requests, config.MaxRequestsDefault)),
		"KILN_MAX_FILE_BYTES="+strconv.FormatInt(max(int64(requests)*512, config.MaxFileBytesDefault), 10),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	sp.agentProcess = &agentProcess{p: testenv.StartProcess(b, cmd), log: logPath}
	b.Cleanup(func() { sp.p.Stop(b) })
	go sp.sampleAnon()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return sp
			}
		}
		select {
		case <-sp.p.Done():
			b.Fatalf("kiln serve exited: %v\n%s", sp.p.Err(), sp.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("kiln serve did not answer within a minute\n%s", sp.logTail())
		}
	}
}

func (sp *serveProcess) stop(b *testing.B) { sp.p.Stop(b) }

// startRSSAgent runs `kiln agent` on serve's database and object store
// against the engine at llmURL, and waits until its metrics address
// answers /healthz. serve accepts batches of benchModel before the agent
// has declared it (KILN_MODELS), so the agent may register after.
func startRSSAgent(b *testing.B, serve *serveProcess, llmURL string) *agentProcess {
	b.Helper()
	metrics := testenv.FreeAddr(b)
	logPath := filepath.Join(b.TempDir(), "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(kilntest.KilnBinary(b), "agent")
	cmd.Env = append(os.Environ(),
		"KILN_DATABASE_URL="+serve.database,
		"KILN_OBJECT_STORE="+serve.objects,
		"KILN_LLM_URL="+llmURL,
		"KILN_AGENT_CONCURRENCY="+strconv.Itoa(benchSeqs),
		"KILN_METRICS_ADDR="+metrics,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	ap := &agentProcess{p: testenv.StartProcess(b, cmd), log: logPath}
	b.Cleanup(func() { ap.p.Stop(b) })
	go ap.sampleAnon()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + metrics + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ap
			}
		}
		select {
		case <-ap.p.Done():
			b.Fatalf("kiln agent exited: %v\n%s", ap.p.Err(), ap.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("kiln agent did not answer within a minute\n%s", ap.logTail())
		}
	}
}

// rssPartBytes is the size of the upload parts of uploadLarge.
const rssPartBytes = 32 << 20

// uploadLarge writes a batch input of n chat requests to a temporary file,
// a line at a time, sends it through the Uploads API in parts, and returns
// the file's id.
func uploadLarge(b *testing.B, c openai.Client, n int) string {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "in.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		fmt.Fprintf(w, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"Question %d"}]}}`+"\n",
			i, benchModel, benchTokens, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		b.Fatal(err)
	}
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: size, Filename: "in.jsonl", MimeType: "application/jsonl", Purpose: openai.FilePurposeBatch})
	if err != nil {
		b.Fatal(err)
	}
	var parts []string
	for off := int64(0); off < size; off += rssPartBytes {
		part, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{
			Data: io.NewSectionReader(f, off, min(rssPartBytes, size-off))})
		if err != nil {
			b.Fatal(err)
		}
		parts = append(parts, part.ID)
	}
	done, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: parts})
	if err != nil {
		b.Fatal(err)
	}
	return done.File.ID
}

// waitLarge polls the batch until it completes, allowing a millisecond per
// request and ten minutes besides, and checks that every request
// succeeded.
func waitLarge(b *testing.B, c openai.Client, id string, n int, phase func(int32)) {
	b.Helper()
	deadline := time.Now().Add(10*time.Minute + time.Duration(n)*time.Millisecond)
	for time.Now().Before(deadline) {
		batch, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		switch answered := int(batch.RequestCounts.Completed + batch.RequestCounts.Failed); {
		case answered >= n:
			phase(memFinalize)
		case answered >= n/2:
			phase(memLate)
		case answered >= n/10:
			phase(memEarly)
		}
		switch batch.Status {
		case openai.BatchStatusCompleted:
			if batch.RequestCounts.Completed != int64(n) {
				b.Fatalf("batch %s: completed %d of %d (failed %d)", id, batch.RequestCounts.Completed, n, batch.RequestCounts.Failed)
			}
			return
		case openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
			b.Fatal(errors.New("batch " + id + " ended " + string(batch.Status)))
		}
		<-time.After(100 * time.Millisecond)
	}
	b.Fatalf("batch %s did not complete in time", id)
}
