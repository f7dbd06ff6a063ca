package curation_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestJudgeUIBrowser drives a model judge from the workbench in headless
// Chromium: an admin runs a rating judge from the Team view, kiln runs its
// batch through the agent and kiln sim, and the ratings show as pre-labels
// on the task, hidden in blind review until the curator rates. Every view
// passes axe-core's WCAG 2.1 A and AA rules with no serious or critical
// violation.
func TestJudgeUIBrowser(t *testing.T) {
	browsertest.ChromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	origin := env.Base()
	_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	admin := uiAPI{t: t, base: origin, key: adminKey}
	tasks := seedPairs(t, admin, 2)

	p := signInByKeyboard(t, origin, adminKey)
	p.Axe("tasks view")

	// Run a rating judge from the Team view.
	p.Navigate("the Team view", origin+"/curation/#/team")
	p.Wait("the judge form with the models", `!document.querySelector('#judge-form').hidden &&
		[...document.querySelectorAll('#j-model option')].some((o) => o.value === 'sim-model') &&
		document.querySelectorAll('#j-types option').length > 0`)
	p.Axe("team view")
	p.Do("fill the judge form",
		chromedp.SendKeys(chromedp.CSS("#j-type"), "qa"),
		chromedp.SetValue(chromedp.CSS("#j-model"), "sim-model"),
		chromedp.SetValue(chromedp.CSS("#j-kind"), "rating"),
		chromedp.Click(chromedp.CSS("#j-run")))
	p.Wait("the judge's batch run and imported", `!!document.querySelector('#judge-list tr[data-status="imported"]')`)
	require.Equal(t, "6", p.Str(`document.querySelector('#judge-list tr[data-status="imported"] .j-labels').textContent`),
		"2 tasks × 3 outputs rated")
	p.Shot("judge-imported")

	// Its ratings beside each output of the task.
	p.Navigate("the first task", origin+"/curation/#/tasks/"+tasks[0])
	p.Wait("the judge's ratings on the outputs", `document.querySelectorAll('#task-body .output .prelabel').length === 3`)
	for _, text := range strings.Split(p.Str(`[...document.querySelectorAll('#task-body .output .prelabel')].map((e) => e.textContent).join('\n')`), "\n") {
		require.Regexp(t, `^Judge sim-model: [1-5]/5`, text)
	}
	p.Shot("prelabels")
	p.Axe("task with pre-labels")

	// Blind review hides them until the curator rates an output.
	p.Do("blind review", chromedp.Click(chromedp.CSS(`#task-body button[data-key="blind"]`)))
	p.Wait("pre-labels hidden", `document.querySelectorAll('#task-body .output .prelabel').length === 0 &&
		/3 pre-labels hidden/.test((document.querySelector('#prelabels-hidden') || {}).textContent || '')`)
	p.Do("rate the first column 4", chromedp.Click(chromedp.CSS(`#task-body .output[data-index="0"] button.rate:nth-child(4)`)))
	p.Wait("its pre-label shown once rated", `document.querySelectorAll('#task-body .output[data-index="0"] .prelabel').length === 1 &&
		document.querySelectorAll('#task-body .output .prelabel').length === 1 &&
		/2 pre-labels hidden/.test(document.querySelector('#prelabels-hidden').textContent)`)
	p.Shot("blind-after-rating")

	// The other views pass the accessibility check too.
	for _, view := range []string{"pairs", "leaderboard", "export"} {
		p.Navigate("the "+view+" view", origin+"/curation/#/"+view)
		p.Wait("the "+view+" view shown", `!document.querySelector('#view-`+view+`').hidden`)
		p.Axe(view + " view")
	}
	require.Empty(t, p.Blocked(), "the workbench works offline")
}
