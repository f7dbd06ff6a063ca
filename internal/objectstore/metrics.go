package objectstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// DiskCollector reports the free and total space of the filesystem that
// holds a folder store, at scrape time: kiln_object_store_free_bytes (what
// kiln may still write there) and kiln_object_store_size_bytes. For any
// other bucket it is nil: an S3 server's space is its own to report.
func DiskCollector(b Bucket) prometheus.Collector {
	fb, ok := b.(*fileBucket)
	if !ok {
		return nil
	}
	return &diskCollector{root: fb.root,
		free: prometheus.NewDesc("kiln_object_store_free_bytes", "Free space of the filesystem that holds the folder object store, for kiln's (unprivileged) writes.", nil, nil),
		size: prometheus.NewDesc("kiln_object_store_size_bytes", "Size of the filesystem that holds the folder object store.", nil, nil),
	}
}

type diskCollector struct {
	root       string
	free, size *prometheus.Desc
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.free
	ch <- c.size
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	free, size, err := diskSpace(c.root)
	if err != nil {
		// The folder is gone or unreadable: every write fails and says so;
		// a scrape without the two series makes the alert's absent() fire.
		return
	}
	ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(free))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(size))
}
