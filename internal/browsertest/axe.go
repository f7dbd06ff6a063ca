package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kilnhq/kiln/internal/testenv"
)

// AxeVersion is the axe-core release the accessibility checks run, as
// scripts/install-axe.sh installs it.
const AxeVersion = "4.10.3"

// axePath finds axe-core: $KILN_TEST_AXE, or where scripts/install-axe.sh
// puts it. Without it the test fails, saying how to install it (or skips
// under KILN_TEST_ALLOW_SKIP=1).
func axePath(p *Tab) string {
	if path := os.Getenv("KILN_TEST_AXE"); path != "" {
		return path
	}
	cache, err := os.UserCacheDir()
	if err == nil {
		path := filepath.Join(cache, "kiln", "axe-core", AxeVersion, "axe.min.js")
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	testenv.Unavailable(p.t, "the accessibility check needs axe-core: run scripts/install-axe.sh (or set KILN_TEST_AXE to axe.min.js).")
	return ""
}

// AxeViolation is one rule the page breaks, as axe-core reports it.
type AxeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

func (v AxeViolation) String() string {
	var where []string
	for _, n := range v.Nodes {
		where = append(where, fmt.Sprint(n.Target))
	}
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(where, ", "))
}

// Axe runs axe-core's WCAG 2.x A and AA rules on the page as it is now
// (AxeRun), and fails the test, with a screenshot, on any violation of
// serious or critical impact; it logs the others.
func (p *Tab) Axe(what string) {
	p.t.Helper()
	all := p.AxeRun(what)
	var bad []string
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v.String())
		}
	}
	if len(bad) > 0 {
		p.Shot("axe-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %d serious or critical accessibility violations:\n%s", what, len(bad), strings.Join(bad, "\n"))
	}
	for _, v := range all {
		p.t.Logf("%s: accessibility (minor): %s", what, v)
	}
}

// AxeRun runs axe-core's WCAG 2.0 and 2.1 A and AA rules on the page as it
// is now and returns every violation.
func (p *Tab) AxeRun(what string) []AxeViolation {
	p.t.Helper()
	src, err := os.ReadFile(axePath(p))
	if err != nil {
		p.t.Fatalf("axe-core: %v", err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](string(src)+";0")); err != nil {
		p.t.Fatalf("load axe-core: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']
	}).then((r) => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: axe-core: %v", what, err)
	}
	var all []AxeViolation
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		p.t.Fatalf("%s: axe-core's answer: %v", what, err)
	}
	return all
}
