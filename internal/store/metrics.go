package store

import (
	"context"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// poolStats are a driver's connections at one moment.
type poolStats struct {
	acquired, idle, max int64
	// connectErrors counts failed attempts to open a connection.
	connectErrors int64
}

// Collector reports the store's database connections at scrape time:
// kiln_db_connections{state} (acquired, idle), kiln_db_max_connections and
// kiln_db_connection_errors_total, the failed attempts to open a connection
// to the database server (a Postgres that is down, refuses or is
// unreachable; SQLite opens its file once and reports 0).
func (s *Store) Collector() prometheus.Collector {
	return &storeCollector{s: s,
		conns:  prometheus.NewDesc("kiln_db_connections", "Database connections by state: acquired (in use) or idle.", []string{"state"}, nil),
		max:    prometheus.NewDesc("kiln_db_max_connections", "Most connections the store's pool opens.", nil, nil),
		errors: prometheus.NewDesc("kiln_db_connection_errors_total", "Failed attempts to open a connection to the database server.", nil, nil),
	}
}

type storeCollector struct {
	s                  *Store
	conns, max, errors *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.max
	ch <- c.errors
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.d.stats()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.acquired), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.idle), "idle")
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.max))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.connectErrors))
}

func (d *pgDriver) stats() poolStats {
	st := d.pool.Stat()
	return poolStats{acquired: int64(st.AcquiredConns()), idle: int64(st.IdleConns()), max: int64(st.MaxConns()),
		connectErrors: d.connectErrors.Load()}
}

func (d *sqliteDriver) stats() poolStats {
	st := d.sqldb.Stats()
	return poolStats{acquired: int64(st.InUse), idle: int64(st.Idle), max: int64(st.MaxOpenConnections)}
}

// dialFunc is pgconn's way to open a network connection.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// countingDial counts the failures of dial in n, but not those of a dial
// whose context ended first (a caller that gave up).
func countingDial(dial dialFunc, n *atomic.Int64) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil && ctx.Err() == nil {
			n.Add(1)
		}
		return conn, err
	}
}
