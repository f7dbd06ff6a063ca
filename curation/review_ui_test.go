package curation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// seedPairs imports tasks of type qa, each answered by three models, and
// returns the task IDs, in order.
func seedPairs(t *testing.T, a uiAPI, tasks int) []string {
	var lines bytes.Buffer
	for i := range tasks {
		for _, m := range []string{"m-alpha", "m-beta", "m-gamma"} {
			line, err := json.Marshal(map[string]any{"type": "qa", "key": fmt.Sprintf("q-%d", i),
				"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("Question %d: what is kiln?", i)}},
				"model":    m, "output": fmt.Sprintf("Answer of %s to question %d.", m, i)})
			require.NoError(t, err)
			lines.Write(line)
			lines.WriteByte('\n')
		}
	}
	var res struct{ Tasks, Outputs int }
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/imports", "application/jsonl", lines.Bytes(), &res))
	require.Equal(t, tasks, res.Tasks)
	var list struct{ Data []struct{ ID string } }
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks?type=qa&limit=200", "", nil, &list))
	var ids []string
	for _, x := range list.Data {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

// signInByKeyboard opens the workbench and signs in by typing the key and
// Enter in the field the page focuses.
func signInByKeyboard(t *testing.T, origin, key string) *browsertest.Tab {
	p := browsertest.New(t, browsertest.Options{Offline: true})
	p.Navigate("open the workbench", origin+"/curation/")
	p.Wait("the sign-in form", `!document.querySelector('#view-login').hidden && document.activeElement.id === 'login-key'`)
	p.Do("type the key", chromedp.KeyEvent(key), chromedp.KeyEvent(kb.Enter))
	p.Wait("signed in, the first task open", `!document.querySelector('#nav').hidden && !!document.querySelector('#task-title') &&
		!document.activeElement.closest('input, select, textarea')`)
	return p
}

type prefView struct {
	TaskID  string `json:"task_id"`
	OutputA string `json:"output_a"`
	OutputB string `json:"output_b"`
	ModelA  string `json:"model_a"`
	ModelB  string `json:"model_b"`
	Winner  string `json:"winner"`
	Reason  string `json:"reason"`
}

// TestReviewUIBrowser drives the second edition of the workbench in
// headless Chromium: pairwise verdicts by keyboard alone, an admin's
// assignment of two curators with an overlap, and the agreement the Team
// view shows, against a value computed by hand.
func TestReviewUIBrowser(t *testing.T) {
	browsertest.ChromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	ctx := context.Background()
	st := env.App.Store
	_, adminKey, err := curation.CreateCurator(ctx, st, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	ada, adaKey, err := curation.CreateCurator(ctx, st, "Ada", curation.RoleCurator)
	require.NoError(t, err)
	bob, bobKey, err := curation.CreateCurator(ctx, st, "Bob", curation.RoleCurator)
	require.NoError(t, err)
	cy, cyKey, err := curation.CreateCurator(ctx, st, "Cy", curation.RoleCurator)
	require.NoError(t, err)
	admin := uiAPI{t: t, base: origin, key: adminKey}
	tasks := seedPairs(t, admin, 3) // 3 tasks × 3 pairs of models = 9 pairs

	// ---- Pairwise, by keyboard only ----
	p := signInByKeyboard(t, origin, adaKey)
	p.Do("p: pairs", chromedp.KeyEvent("p"))
	p.Wait("a pair", `document.querySelectorAll('#p-body .pair-side').length === 2 && !document.querySelector('#view-pairs').hidden`)
	require.NotContains(t, p.Str(`document.querySelector('#p-body').textContent`), "m-alpha Answer", "blind: no model named")
	require.NotContains(t, p.Str(`document.querySelector('#p-body h2').textContent`), "m-", "blind: no model named")
	p.Shot("pair")
	judged := 0
	press := func(k string) {
		t.Helper()
		p.Do("press "+k, chromedp.KeyEvent(k))
		judged++
		p.Wait(fmt.Sprintf("verdict %d saved", judged), `document.querySelector('#p-count').textContent === 'Judged `+strconv.Itoa(judged)+` this session'`)
	}
	press("1")
	press("2")
	press("0")
	// The first three verdicts cover the three pairs of models: the least
	// compared pair goes first.
	var mine struct{ Data []prefView }
	a := uiAPI{t: t, base: origin, key: adaKey}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/preferences?limit=200", "", nil, &mine))
	require.Len(t, mine.Data, 3)
	pairs := map[string]bool{}
	for _, v := range mine.Data {
		pairs[min(v.ModelA, v.ModelB)+"|"+max(v.ModelA, v.ModelB)] = true
	}
	require.Len(t, pairs, 3, "each pair of models once: %v", pairs)
	// A reason: c focuses its field, Esc leaves it, x says both are bad.
	p.Do("c: the reason", chromedp.KeyEvent("c"))
	p.Wait("the reason focused", `document.activeElement.id === 'p-reason'`)
	// CDP sends a key's char apart from its keydown, so the page cannot
	// cancel it as it does a real key's: clear what it typed.
	p.Do("type a reason", chromedp.Evaluate[chromedp.Void](`document.querySelector('#p-reason').value = ''`),
		chromedp.KeyEvent("both miss the point"), chromedp.KeyEvent(kb.Escape))
	p.Wait("left the field", `document.activeElement.id !== 'p-reason'`)
	press("x")
	for judged < 9 {
		press("1")
	}
	p.Wait("no pair left", `!!document.querySelector('#p-done')`)
	p.Shot("pairs-done")
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/preferences?limit=200", "", nil, &mine))
	require.Len(t, mine.Data, 9, "every pair of every task, once")
	count := map[string]int{}
	for _, v := range mine.Data {
		count[v.Winner]++
		if v.Winner == "both_bad" {
			require.Equal(t, "both miss the point", v.Reason)
		}
	}
	require.Equal(t, 1, count["tie"])
	require.Equal(t, 1, count["both_bad"])
	require.Equal(t, 7, count["a"]+count["b"])

	// The leaderboard shows the three models.
	p.Do("to the leaderboard", chromedp.Evaluate[chromedp.Void](`location.hash = '#/leaderboard'`))
	p.Wait("the leaderboard", `document.querySelectorAll('.lb-table[data-type="qa"] tbody tr').length === 3`)
	require.Equal(t, "[]", fmt.Sprint(p.Blocked()), "nothing left the machine")

	// ---- Assignment: two curators, half the tasks reviewed by both ----
	q := signInByKeyboard(t, origin, adminKey)
	q.Do("to the team", chromedp.Evaluate[chromedp.Void](`location.hash = '#/team'`))
	q.Wait("the assignment form", `!document.querySelector('#assign-card').hidden && !!document.querySelector('#q-on-`+ada.ID+`')`)
	q.Do("queues for Ada and Bob, overlap 0.5",
		chromedp.Click(chromedp.ID("q-on-"+ada.ID)), chromedp.Click(chromedp.ID("q-on-"+bob.ID)),
		chromedp.SetValue(chromedp.ID("a-overlap"), "0.5"), chromedp.Click(chromedp.ID("a-save")))
	eligible := []string{ada.ID, bob.ID}
	slices.Sort(eligible)
	want := map[string]int{}
	for _, id := range tasks {
		for _, c := range curation.Assignees(id, eligible, 0.5, 2) {
			want[c]++
		}
	}
	require.Equal(t, len(tasks), want[ada.ID]+want[bob.ID]-sharedCount(tasks, eligible))
	for _, c := range []string{ada.ID, bob.ID} {
		q.Wait("progress of "+c, `document.querySelector('#progress-list tr[data-curator="`+c+`"] .pr-assigned')?.textContent === '`+strconv.Itoa(want[c])+`'`)
	}
	require.Equal(t, strconv.Itoa(want[ada.ID]), q.Str(`document.querySelector('#progress-list tr[data-curator="`+ada.ID+`"] .pr-done').textContent`),
		"Ada judged every task")
	q.Shot("assignment")
	var spec curation.AssignmentSpec
	require.Equal(t, http.StatusOK, admin.call(http.MethodGet, "/v1/curation/assignment", "", nil, &spec))
	require.InDelta(t, 0.5, spec.Overlap, 1e-9)
	require.Len(t, spec.Queues, 2)
	// Each curator sees their own progress and queue, an admin everyone's.
	var own struct{ Data []curation.CuratorProgress }
	b := uiAPI{t: t, base: origin, key: bobKey}
	require.Equal(t, http.StatusOK, b.call(http.MethodGet, "/v1/curation/progress", "", nil, &own))
	require.Len(t, own.Data, 1)
	require.Equal(t, want[bob.ID], int(own.Data[0].Assigned))
	var queue struct{ Data []struct{ ID string } }
	require.Equal(t, http.StatusOK, b.call(http.MethodGet, "/v1/curation/queue", "", nil, &queue))
	require.Len(t, queue.Data, want[bob.ID])
	for _, x := range queue.Data {
		require.Contains(t, curation.Assignees(x.ID, eligible, 0.5, 2), bob.ID)
	}
	body, _ := json.Marshal(map[string]any{"overlap": 1, "queues": []map[string]any{{"curator_id": bob.ID}}})
	require.Equal(t, http.StatusForbidden, b.call(http.MethodPut, "/v1/curation/assignment", "application/json", body, nil), "admins only")

	// ---- Agreement: Bob and Cy on the same four pairs ----
	// Bob: a, a, b, tie; Cy: a, b, b, tie. p_o = 3/4; Bob's marginals
	// (a 2, b 1, tie 1), Cy's (a 1, b 2, tie 1): p_e = (2·1 + 1·2 + 1·1)/16
	// = 5/16; κ = (3/4 − 5/16) / (1 − 5/16) = 7/11 = 0.636.
	var t0 uiTask
	type unit struct{ task, a, b string }
	var units []unit
	for _, id := range tasks[:2] {
		t0 = admin.task(id)
		outs := []string{t0.output("m-alpha").ID, t0.output("m-beta").ID, t0.output("m-gamma").ID}
		slices.Sort(outs)
		units = append(units, unit{id, outs[0], outs[1]}, unit{id, outs[1], outs[2]})
	}
	c := uiAPI{t: t, base: origin, key: cyKey}
	for i, w := range [][2]string{{"a", "a"}, {"a", "b"}, {"b", "b"}, {"tie", "tie"}} {
		for j, who := range []uiAPI{b, c} {
			body, _ := json.Marshal(map[string]any{"task_id": units[i].task, "output_a": units[i].a, "output_b": units[i].b, "winner": w[j]})
			require.Equal(t, http.StatusOK, who.call(http.MethodPost, "/v1/curation/preferences", "application/json", body, nil))
		}
	}
	pair := min(bob.ID, cy.ID) + " " + max(bob.ID, cy.ID)
	q.Do("reload the team", chromedp.Reload())
	q.Wait("the agreement of Bob and Cy", `!!document.querySelector('.agree[data-kind="preference"] tr[data-pair="`+pair+`"] .kappa')`)
	require.Equal(t, "0.636", q.Str(`document.querySelector('.agree[data-kind="preference"] tr[data-pair="`+pair+`"] .kappa').textContent`))
	var ag struct{ Data []curation.Agreement }
	require.Equal(t, http.StatusOK, admin.call(http.MethodGet, "/v1/curation/agreement?type=qa", "", nil, &ag))
	require.NotEmpty(t, ag.Data)
	require.NotNil(t, ag.Data[0].Alpha["nominal"])
	require.Contains(t, q.Str(`document.querySelector('.agree[data-kind="preference"] .alpha').textContent`),
		fmt.Sprintf("%.3f", *ag.Data[0].Alpha["nominal"]))
	q.Shot("agreement")

	// Disagreements: the admin settles one, and it leaves the list.
	q.Wait("disagreements", `document.querySelectorAll('.disagree-list li').length > 0`)
	before := q.Str(`String(document.querySelectorAll('.disagree-list li').length)`)
	q.Do("settle the first", chromedp.Click(chromedp.CSS(`.disagree-list li [data-settle="a"]`)))
	n, _ := strconv.Atoi(before)
	q.Wait("one fewer", `document.querySelectorAll('.disagree-list li').length === `+strconv.Itoa(n-1)+` || !!document.querySelector('#no-disagreement')`)
	require.Equal(t, "[]", q.Str(`JSON.stringify(window.__kilnTest ? window.__kilnTest.errors : [])`))
}

// sharedCount counts the tasks that go to two curators.
func sharedCount(tasks, eligible []string) int {
	n := 0
	for _, id := range tasks {
		if len(curation.Assignees(id, eligible, 0.5, 2)) > 1 {
			n++
		}
	}
	return n
}
