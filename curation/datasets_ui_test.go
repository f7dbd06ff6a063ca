package curation_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestDatasetsUIBrowser drives dataset versions in headless Chromium: the
// near-duplicate badge in the queue, saving two versions from the Export
// view, the list, a download, and the diff of the two.
func TestDatasetsUIBrowser(t *testing.T) {
	browsertest.ChromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	_, key, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	a := uiAPI{t: t, base: origin, key: key}
	tasks := seedDatasets(t, a, 4)
	gold(t, a, tasks["k-00"], "m/one")
	gold(t, a, tasks["k-02"], "m/one")

	p := signInByKeyboard(t, origin, key)
	p.Wait("the near-duplicate badge", `document.querySelectorAll('#task-list .badge-dup').length === 1`)
	p.Shot("queue-near-duplicate")

	p.Do("to the export view", chromedp.Evaluate[chromedp.Void](`location.hash = '#/export'`))
	p.Wait("the datasets card", `!document.querySelector('#view-export').hidden && !!document.querySelector('#ds-form')`)
	save := func(n int) {
		t.Helper()
		p.Do("save a version", chromedp.SetValue(chromedp.CSS(`#ds-name`), "notes"), chromedp.Click(chromedp.CSS(`#ds-save`)))
		p.Wait("the version listed", `document.querySelectorAll('#ds-list tr[data-name="notes"]').length === `+strconv.Itoa(n))
	}
	save(1)
	p.Shot("dataset-v1")
	gold(t, a, a.task(tasks["k-02"].ID), "m/two")
	gold(t, a, tasks["k-03"], "m/one")
	save(2)

	// The download link gives the zip.
	p.Do("download v2", chromedp.Evaluate[chromedp.Void](`window.dsDownload = null;
		fetch(document.querySelector('#ds-list tr[data-version="2"] a.ds-download').href, { credentials: 'same-origin' })
			.then((r) => r.arrayBuffer().then((b) => { const u = new Uint8Array(b);
				window.dsDownload = r.ok && u.length > 100 && u[0] === 0x50 && u[1] === 0x4b ? 'zip' : 'not a zip: ' + r.status; }));`))
	p.Wait("the download", `window.dsDownload !== null`)
	require.Equal(t, "zip", p.Str(`window.dsDownload`))

	p.Do("diff v1 and v2", chromedp.SetValue(chromedp.CSS(`#ds-diff-from`), "1"), chromedp.SetValue(chromedp.CSS(`#ds-diff-to`), "2"),
		chromedp.Click(chromedp.CSS(`#ds-diff`)))
	p.Wait("the diff", `!!document.querySelector('.ds-diff-summary')`)
	require.Contains(t, p.Str(`document.querySelector('#ds-diff-result ul[data-kind="added"]').textContent`), tasks["k-03"].ID)
	require.Contains(t, p.Str(`document.querySelector('#ds-diff-result ul[data-kind="changed"]').textContent`), tasks["k-02"].ID)
	require.Contains(t, p.Str(`document.querySelector('.ds-diff-summary').textContent`), "1 unchanged")
	p.Shot("dataset-diff")
}
