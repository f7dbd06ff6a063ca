package curation

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kilnhq/kiln/internal/store"
)

// NewCollector reports the curation workbench's numbers, of every project,
// at scrape time: tasks per conquest type and status, and outputs per type
// and model with how many are valid, rated, corrected and gold.
func NewCollector(st *store.Store, log *slog.Logger) prometheus.Collector {
	out := []string{"type", "model"}
	return &collector{st: st, log: log,
		tasks:     prometheus.NewDesc("kiln_curation_tasks", "Curation tasks by conquest type and status.", []string{"type", "status"}, nil),
		outputs:   prometheus.NewDesc("kiln_curation_outputs", "Model outputs under curation, by conquest type and model.", out, nil),
		valid:     prometheus.NewDesc("kiln_curation_outputs_valid", "Outputs that pass their conquest type's schema.", out, nil),
		rated:     prometheus.NewDesc("kiln_curation_outputs_rated", "Outputs a curator rated.", out, nil),
		corrected: prometheus.NewDesc("kiln_curation_outputs_corrected", "Outputs a curator corrected.", out, nil),
		gold:      prometheus.NewDesc("kiln_curation_outputs_gold", "Outputs starred as their task's gold example.", out, nil),
	}
}

type collector struct {
	st                                            *store.Store
	log                                           *slog.Logger
	tasks, outputs, valid, rated, corrected, gold *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tasks, c.outputs, c.valid, c.rated, c.corrected, c.gold} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.CurationStatusCounts(ctx, store.AllProjects)
	if err != nil {
		c.log.Warn("metrics: curation tasks", "err", err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(n.Tasks), n.Type, n.Status)
	}
	stats, err := c.st.CurationStats(ctx, store.AllProjects)
	if err != nil {
		c.log.Warn("metrics: curation outputs", "err", err)
		return
	}
	for _, s := range stats {
		for d, v := range map[*prometheus.Desc]int64{c.outputs: s.Outputs, c.valid: s.Valid, c.rated: s.Rated, c.corrected: s.Corrected, c.gold: s.Gold} {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), s.Type, s.Model)
		}
	}
}
