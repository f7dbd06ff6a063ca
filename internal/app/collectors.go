package app

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kilnhq/kiln/internal/store"
)

// backlogCollector reports the work waiting per model at scrape time.
type backlogCollector struct {
	st       *store.Store
	log      *slog.Logger
	shards   *prometheus.Desc
	requests *prometheus.Desc
	age      *prometheus.Desc
}

func newBacklogCollector(st *store.Store, log *slog.Logger) *backlogCollector {
	return &backlogCollector{st: st, log: log,
		shards:   prometheus.NewDesc("kiln_queue_shards", "Shards waiting for an agent, per model.", []string{"model"}, nil),
		requests: prometheus.NewDesc("kiln_queue_requests", "Requests in shards waiting for an agent, per model.", []string{"model"}, nil),
		age:      prometheus.NewDesc("kiln_queue_oldest_seconds", "Age of the longest-waiting shard, per model.", []string{"model"}, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.shards
	ch <- c.requests
	ch <- c.age
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	backlog, err := c.st.ShardBacklog(ctx)
	if err != nil {
		c.log.Warn("metrics: queue depth", "err", err)
		return
	}
	now := time.Now().UnixMilli()
	for _, b := range backlog {
		ch <- prometheus.MustNewConstMetric(c.shards, prometheus.GaugeValue, float64(b.Shards), b.Model)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.GaugeValue, float64(b.Requests), b.Model)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, float64(now-b.OldestReadyAt)/1000, b.Model)
	}
}

// uploadsCollector reports the uploads in progress at scrape time, as the
// caps on them count them (KILN_MAX_PENDING_UPLOADS,
// KILN_MAX_PENDING_UPLOAD_BYTES).
type uploadsCollector struct {
	st           *store.Store
	log          *slog.Logger
	count, bytes *prometheus.Desc
}

func newUploadsCollector(st *store.Store, log *slog.Logger) *uploadsCollector {
	return &uploadsCollector{st: st, log: log,
		count: prometheus.NewDesc("kiln_uploads_pending", "Uploads in progress: pending (not past their expiry) or completing.", nil, nil),
		bytes: prometheus.NewDesc("kiln_uploads_pending_bytes", "Bytes the uploads in progress declare.", nil, nil),
	}
}

func (c *uploadsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.bytes
}

func (c *uploadsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := c.st.UploadPendingTotals(ctx, time.Now().Unix())
	if err != nil {
		c.log.Warn("metrics: pending uploads", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(p.Count))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(p.Bytes))
}

// gpuCollector reports GPU utilisation and memory from nvidia-smi, when it
// is installed.
type gpuCollector struct {
	bin        string
	util, used *prometheus.Desc
	total      *prometheus.Desc
}

func newGPUCollector() *gpuCollector {
	bin, _ := exec.LookPath("nvidia-smi")
	labels := []string{"gpu", "name"}
	return &gpuCollector{bin: bin,
		util:  prometheus.NewDesc("kiln_gpu_utilization_ratio", "GPU utilisation, 0 to 1 (nvidia-smi).", labels, nil),
		used:  prometheus.NewDesc("kiln_gpu_memory_used_bytes", "GPU memory in use (nvidia-smi).", labels, nil),
		total: prometheus.NewDesc("kiln_gpu_memory_total_bytes", "GPU memory in all (nvidia-smi).", labels, nil),
	}
}

func (c *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.util
	ch <- c.used
	ch <- c.total
}

func (c *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	if c.bin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		return
	}
	for _, gpu := range parseNvidiaSMI(out) {
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, gpu.util, gpu.index, gpu.name)
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, gpu.used, gpu.index, gpu.name)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, gpu.total, gpu.index, gpu.name)
	}
}

type gpuReading struct {
	index, name       string
	util, used, total float64
}

// parseNvidiaSMI reads nvidia-smi's CSV: index, name, utilisation (%),
// memory used and total (MiB).
func parseNvidiaSMI(out []byte) []gpuReading {
	var gpus []gpuReading
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		f := strings.Split(string(line), ",")
		if len(f) != 5 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		util, err1 := strconv.ParseFloat(f[2], 64)
		used, err2 := strconv.ParseFloat(f[3], 64)
		total, err3 := strconv.ParseFloat(f[4], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		gpus = append(gpus, gpuReading{index: f[0], name: f[1], util: util / 100, used: used * (1 << 20), total: total * (1 << 20)})
	}
	return gpus
}

// agentLiveness is how recent an agent's heartbeat must be for it to count
// as live, as GET /v1/agents counts it.
const agentLiveness = 60 * time.Second

// agentsCollector reports the live agents per model they can serve, at
// scrape time, so that an alert sees a model with waiting work and no agent.
type agentsCollector struct {
	st   *store.Store
	log  *slog.Logger
	live *prometheus.Desc
}

func newAgentsCollector(st *store.Store, log *slog.Logger) *agentsCollector {
	return &agentsCollector{st: st, log: log,
		live: prometheus.NewDesc("kiln_agents_live", "Live GPU agents (a heartbeat in the last minute) that can serve the model.", []string{"model"}, nil)}
}

func (c *agentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.live }

func (c *agentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	agents, err := c.st.AgentList(ctx, time.Now().Add(-agentLiveness).Unix())
	if err != nil {
		c.log.Warn("metrics: live agents", "err", err)
		return
	}
	perModel := map[string]int{}
	for _, a := range agents {
		for _, m := range a.Models {
			perModel[m]++
		}
	}
	for m, n := range perModel {
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(n), m)
	}
}

// batchesCollector reports the batches not yet ended, per status and model,
// and how long until the first of them reaches the end of its window.
type batchesCollector struct {
	st     *store.Store
	log    *slog.Logger
	open   *prometheus.Desc
	expiry *prometheus.Desc
}

func newBatchesCollector(st *store.Store, log *slog.Logger) *batchesCollector {
	labels := []string{"status", "model"}
	return &batchesCollector{st: st, log: log,
		open: prometheus.NewDesc("kiln_batches", "Batches not yet ended, by status (validating, in_progress, finalizing, cancelling) and model.", labels, nil),
		expiry: prometheus.NewDesc("kiln_batches_next_expiry_seconds",
			"Seconds until the earliest end of the completion window among these batches (negative: past it, expiring now).", labels, nil),
	}
}

func (c *batchesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.expiry
}

func (c *batchesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := c.st.BatchOpenStats(ctx)
	if err != nil {
		c.log.Warn("metrics: open batches", "err", err)
		return
	}
	now := time.Now().Unix()
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.Count), string(s.Status), s.Model)
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(s.NextExpiresAt-now), string(s.Status), s.Model)
	}
}
