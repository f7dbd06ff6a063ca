package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// The large-file benchmarks. Run them all with
//
//	go test -run '^$' -bench 'Upload|Finalize' -benchtime 1x -timeout 30m ./internal/app/
//
// Each reports its figures as metrics; ns/op means nothing here.

const (
	benchPartSize = 16 << 20
	benchParallel = 4
)

// writeJSONL writes n chat requests of exactly lineBytes each (newline
// included) to a new file, one line in memory at a time, and returns its
// path and MD5.
func writeJSONL(b *testing.B, n, lineBytes int) (string, string) {
	path := filepath.Join(b.TempDir(), fmt.Sprintf("in-%d.jsonl", n))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	sum := md5.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	filler := strings.Repeat("lorem ipsum dolor sit amet ", lineBytes/27+1)
	const tail = "\"}]}}\n"
	for i := range n {
		head := fmt.Sprintf(`{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","max_tokens":1,"messages":[{"role":"user","content":"%d `, i, i)
		if _, err := w.WriteString(head + filler[:lineBytes-len(head)-len(tail)] + tail); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, hex.EncodeToString(sum.Sum(nil))
}

// kilnClient calls kiln's API with JSON in and out.
type kilnClient struct {
	base, key string
	hc        *http.Client
}

func (a kilnClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// putParts PUTs the file's bytes to urls, partSize bytes each, parallel at a
// time, as kiln batch submit does; with contentMD5, each with its
// Content-MD5, as kiln batch submit sends it.
func putParts(ctx context.Context, hc *http.Client, path string, urls []string, partSize int64, parallel int, contentMD5 bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, u := range urls {
		off := int64(i) * partSize
		n := min(partSize, st.Size()-off)
		g.Go(func() error {
			req, err := http.NewRequestWithContext(gctx, http.MethodPut, u, io.NewSectionReader(f, off, n))
			if err != nil {
				return err
			}
			req.ContentLength = n
			if contentMD5 {
				h := md5.New()
				if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
					return err
				}
				req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			msg, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("PUT part %d: %d %s", i, resp.StatusCode, msg)
			}
			return nil
		})
	}
	return g.Wait()
}

// uploadPresigned uploads the file through kiln's Uploads API with presigned
// parts of one multipart upload, each with its Content-MD5, as kiln batch
// submit does, and returns the file's ID. sum, when not empty, is checked by kiln.
func uploadPresigned(ctx context.Context, a kilnClient, path, sum string) (string, error) {
	id, _, err := uploadPresignedTimed(ctx, a, path, sum, true)
	return id, err
}

// uploadPresignedTimed is uploadPresigned, which also says how long the
// completion took; contentMD5 says whether parts carry their Content-MD5.
func uploadPresignedTimed(ctx context.Context, a kilnClient, path, sum string, contentMD5 bool) (string, time.Duration, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	var up struct{ ID string }
	if err := a.call(ctx, http.MethodPost, "/v1/uploads", map[string]any{"bytes": st.Size(), "filename": filepath.Base(path),
		"mime_type": "application/jsonl", "purpose": "batch"}, &up); err != nil {
		return "", 0, err
	}
	count := int((st.Size() + benchPartSize - 1) / benchPartSize)
	var parts struct{ Data []struct{ ID, URL string } }
	if err := a.call(ctx, http.MethodPost, "/v1/uploads/"+up.ID+"/parts/presigned", map[string]any{"count": count, "multipart": true}, &parts); err != nil {
		return "", 0, err
	}
	var ids, urls []string
	for _, p := range parts.Data {
		ids, urls = append(ids, p.ID), append(urls, p.URL)
	}
	if err := putParts(ctx, a.hc, path, urls, benchPartSize, benchParallel, contentMD5); err != nil {
		return "", 0, err
	}
	body := map[string]any{"part_ids": ids}
	if sum != "" {
		body["md5"] = sum
	}
	var done struct{ File struct{ ID string } }
	start := time.Now()
	if err := a.call(ctx, http.MethodPost, "/v1/uploads/"+up.ID+"/complete", body, &done); err != nil {
		return "", 0, err
	}
	return done.File.ID, time.Since(start), nil
}

type batchState struct {
	ID            string
	Status        string
	OutputFileID  *string `json:"output_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int64
	} `json:"request_counts"`
	Errors json.RawMessage
}

// waitStatus polls a batch every 20ms until its status is one of want, and
// returns it and when it was first seen so. A terminal status not wanted
// fails.
func waitStatus(b *testing.B, a kilnClient, id string, limit time.Duration, want ...string) (batchState, time.Time) {
	deadline := time.Now().Add(limit)
	for {
		var s batchState
		if err := a.call(context.Background(), http.MethodGet, "/v1/batches/"+id, nil, &s); err != nil {
			b.Fatal(err)
		}
		if slices.Contains(want, s.Status) {
			return s, time.Now()
		}
		switch s.Status {
		case "failed", "expired", "cancelled", "completed":
			b.Fatalf("batch %s ended %s, waiting for %v; its errors: %s", id, s.Status, want, s.Errors)
		}
		if time.Now().After(deadline) {
			b.Fatalf("batch %s still %s after %s", id, s.Status, limit)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// BenchmarkUploadThroughput compares an upload through kiln's Uploads API
// with presigned parts of one multipart upload (create, presign, parallel
// PUTs straight to MinIO with their Content-MD5, as kiln batch submit sends
// them, complete: CompleteMultipartUpload, no copy) with the
// raw baseline: the same bytes PUT to the same MinIO at presigned URLs of
// plain objects, in the same parts and parallelism, without kiln. Three
// rounds each, alternating; it reports the medians.
func BenchmarkUploadThroughput(b *testing.B) {
	const size = 256 << 20
	env := kilntest.Start(b, "postgres", kilntest.Options{NoAgent: true})
	a := kilnClient{base: strings.TrimSuffix(env.URL, "/v1"), key: env.Key, hc: &http.Client{}}
	path, sum := writeJSONL(b, size/1024, 1024)
	ctx := context.Background()
	count := size / benchPartSize

	var raw, rawSums, withMD5, noMD5, noSums, completeMD5, complete []float64
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	rawPut := func(round int, name string, sums bool) float64 {
		urls := make([]string, count)
		for i := range urls {
			u, err := env.App.Bucket.PresignPut(ctx, fmt.Sprintf("bench/%s-%d/part-%d", name, round, i), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			urls[i] = u
		}
		start := time.Now()
		if err := putParts(ctx, a.hc, path, urls, benchPartSize, benchParallel, sums); err != nil {
			b.Fatal(err)
		}
		return mbps(time.Since(start))
	}
	viaKiln := func(sum string, sums bool) (float64, float64) {
		start := time.Now()
		_, took, err := uploadPresignedTimed(ctx, a, path, sum, sums)
		if err != nil {
			b.Fatal(err)
		}
		return mbps(time.Since(start)), took.Seconds()
	}
	for round := range 3 {
		raw = append(raw, rawPut(round, "raw", false))
		rawSums = append(rawSums, rawPut(round, "raw-md5", true))
		v, took := viaKiln(sum, true)
		withMD5, completeMD5 = append(withMD5, v), append(completeMD5, took)
		v, took = viaKiln("", true)
		noMD5, complete = append(noMD5, v), append(complete, took)
		v, _ = viaKiln("", false)
		noSums = append(noSums, v)
	}
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(raw), "raw-MB/s")
	b.ReportMetric(median(rawSums), "raw-partmd5-MB/s")
	// Like for like: both sides send each part's Content-MD5, or neither.
	b.ReportMetric(median(noMD5)/median(rawSums), "kiln/raw-partmd5")
	b.ReportMetric(median(noSums)/median(raw), "kiln-nosum/raw")
	// kiln batch submit sends no whole-file md5 unless --md5 asks: each
	// part's Content-MD5 is checked as it arrives.
	b.ReportMetric(median(noMD5), "kiln-MB/s")
	b.ReportMetric(median(noMD5)/median(raw), "kiln/raw")
	b.ReportMetric(median(withMD5), "kiln-md5-MB/s")
	b.ReportMetric(median(withMD5)/median(raw), "kiln-md5/raw")
	b.ReportMetric(median(complete), "complete-s")
	b.ReportMetric(median(completeMD5), "complete-md5-s")
	b.ReportMetric(0, "ns/op")
}

// kilnProcess is `kiln serve` running as its own process.
type kilnProcess struct {
	cmd *exec.Cmd
	api kilnClient
	log string
}

// startServe runs `kiln serve` on SQLite and a folder under a temporary
// folder, with env (KEY=value) added.
func startServe(b *testing.B, env ...string) *kilnProcess {
	dir := b.TempDir()
	addr := testenv.FreeAddr(b)
	p := &kilnProcess{log: filepath.Join(dir, "kiln.log"),
		api: kilnClient{base: "http://" + addr, key: kilntest.Key, hc: &http.Client{}}}
	logf, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(kilntest.KilnBinary(b), "serve")
	p.cmd.Env = append(os.Environ(),
		"KILN_ADDR="+addr, "KILN_PUBLIC_URL=http://"+addr, "KILN_API_KEY="+kilntest.Key,
		"KILN_DATABASE_URL=sqlite://"+filepath.Join(dir, "kiln.db"), "KILN_OBJECT_STORE=file://"+filepath.Join(dir, "objects"),
		"KILN_LOG_LEVEL=warn")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
		_ = logf.Close()
		if b.Failed() {
			log, _ := os.ReadFile(p.log)
			b.Logf("kiln serve log:\n%s", log)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(p.api.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("kiln serve not healthy after a minute: %v", err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// peakRSS is the process's peak resident set, in bytes, from VmHWM.
func (p *kilnProcess) peakRSS(b *testing.B) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// BenchmarkUploadValidateRSS uploads a 1 GB file of 1,000,000 requests to
// `kiln serve` (SQLite and a folder, so the parts' bytes go through kiln's
// presigned-URL handler, and kiln composes and hashes the file itself) and
// creates its batch, with no agent so that nothing runs after validation.
// It reports kiln serve's peak RSS (VmHWM) over the upload and the
// validation, the upload's throughput, and the validation's: from creating
// the batch until it is seen in_progress (20ms polls).
func BenchmarkUploadValidateRSS(b *testing.B) {
	const n, lineBytes = 1_000_000, 1000
	path, sum := writeJSONL(b, n, lineBytes)
	// No agent declares the requests' model, so serve is told it.
	p := startServe(b, "KILN_AGENT=off", "KILN_MODELS=sim-model")
	ctx := context.Background()
	baseRSS := p.peakRSS(b)

	start := time.Now()
	fileID, err := uploadPresigned(ctx, p.api, path, sum)
	if err != nil {
		b.Fatal(err)
	}
	uploaded := time.Since(start)
	uploadRSS := p.peakRSS(b)

	var batch batchState
	if err := p.api.call(ctx, http.MethodPost, "/v1/batches", map[string]any{"input_file_id": fileID,
		"endpoint": "/v1/chat/completions", "completion_window": "24h"}, &batch); err != nil {
		b.Fatal(err)
	}
	created := time.Now()
	s, seen := waitStatus(b, p.api, batch.ID, 10*time.Minute, "in_progress")
	validated := seen.Sub(created)
	if s.RequestCounts.Total != n {
		b.Fatalf("batch has %d requests, want %d", s.RequestCounts.Total, n)
	}
	const mb = 1e6
	b.ReportMetric(float64(p.peakRSS(b))/mb, "peak-RSS-MB")
	b.ReportMetric(float64(uploadRSS)/mb, "upload-peak-RSS-MB")
	b.ReportMetric(float64(baseRSS)/mb, "idle-RSS-MB")
	b.ReportMetric(float64(n*lineBytes)/mb/uploaded.Seconds(), "upload-MB/s")
	b.ReportMetric(float64(n*lineBytes)/mb/validated.Seconds(), "validate-MB/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFinalize runs a batch of 1,000,000 tiny requests to the end with
// the fast simulator and reports the finalizer's time: from the batch first
// seen finalizing to first seen completed (20ms polls), with the output
// file's size. The rest of the run is not measured.
func BenchmarkFinalize(b *testing.B) {
	const n, lineBytes = 1_000_000, 200
	for _, backend := range kilntest.Backends {
		b.Run(backend, func(b *testing.B) {
			path, sum := writeJSONL(b, n, lineBytes)
			env := kilntest.Start(b, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.Addr = testenv.FreeAddr(b)
				c.PublicURL = "http://" + c.Addr
				c.ChunkInterval = config.ChunkIntervalDefault
			}})
			a := kilnClient{base: strings.TrimSuffix(env.URL, "/v1"), key: env.Key, hc: &http.Client{}}
			ctx := context.Background()
			fileID, err := uploadPresigned(ctx, a, path, sum)
			if err != nil {
				b.Fatal(err)
			}
			var batch batchState
			if err := a.call(ctx, http.MethodPost, "/v1/batches", map[string]any{"input_file_id": fileID,
				"endpoint": "/v1/chat/completions", "completion_window": "24h"}, &batch); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			_, finalizing := waitStatus(b, a, batch.ID, 20*time.Minute, "finalizing", "completed")
			ran := finalizing.Sub(start)
			s, completed := waitStatus(b, a, batch.ID, 10*time.Minute, "completed")
			if s.RequestCounts.Completed != n || s.OutputFileID == nil {
				b.Fatalf("batch ended with %+v", s.RequestCounts)
			}
			var out struct{ Bytes int64 }
			if err := a.call(ctx, http.MethodGet, "/v1/files/"+*s.OutputFileID, nil, &out); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(completed.Sub(finalizing).Seconds(), "finalize-s")
			b.ReportMetric(float64(out.Bytes)/1e6, "output-MB")
			b.ReportMetric(float64(n)/ran.Seconds(), "run-req/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
