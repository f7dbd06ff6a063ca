// Command gen writes kiln's Grafana dashboards (monitoring.Dashboards) to
// monitoring/grafana/dashboards. Run it with `go generate ./monitoring`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kilnhq/kiln/monitoring"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// run writes the dashboards; go generate runs it in monitoring/.
func run() error {
	boards, err := monitoring.Dashboards()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(monitoring.DashboardsDir, 0o755); err != nil {
		return err
	}
	for name, data := range boards {
		if err := os.WriteFile(filepath.Join(monitoring.DashboardsDir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
