package curation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// curatorClient calls the curation API as a curator, with a key or a session cookie,
// naming a project in curation.ProjectHeader when project is set.
type curatorClient struct {
	t       *testing.T
	base    string
	key     string
	cookie  *http.Cookie
	project string
}

// as is the same caller in another project ("" none named).
func (c curatorClient) as(project string) curatorClient {
	c.project = project
	return c
}

func (c curatorClient) do(method, path string, body any, want int, into any) {
	c.t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/jsonl"
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", ctype)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	if c.project != "" {
		req.Header.Set(curation.ProjectHeader, c.project)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, want, resp.StatusCode, "%s %s (project %q): %s", method, path, c.project, raw)
	if into != nil {
		require.NoError(c.t, json.Unmarshal(raw, into), string(raw))
	}
}

// keys lists the keys of the tasks a caller sees, newest first.
func (c curatorClient) keys() []string {
	c.t.Helper()
	var list taskList
	c.do(http.MethodGet, "/v1/curation/tasks?limit=200", nil, http.StatusOK, &list)
	var out []string
	for _, x := range list.Data {
		out = append(out, x.Key)
	}
	return out
}

// taskIDs maps a caller's tasks' keys to their IDs.
func (c curatorClient) taskIDs() map[string]string {
	c.t.Helper()
	var list taskList
	c.do(http.MethodGet, "/v1/curation/tasks?limit=200", nil, http.StatusOK, &list)
	out := map[string]string{}
	for _, x := range list.Data {
		out[x.Key] = x.ID
	}
	return out
}

// jsonlTask is a line of an external import: task key of type notes,
// answered by m1.
func jsonlTask(key, prompt string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "notes", "key": key, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"model": "m1", "output": "answer to " + prompt})
	return append(b, '\n')
}

type sessionInfo struct {
	Curator struct {
		Name string `json:"name"`
	} `json:"curator"`
	Project  curation.CurationProject   `json:"project"`
	Projects []curation.CurationProject `json:"projects"`
}

// endedBatch stores an ended batch of project with one answered request,
// custom_id key, ready for import.
func endedBatch(t *testing.T, env *kilntest.Env, project, key string) string {
	t.Helper()
	ctx := context.Background()
	st, bucket := env.App.Store, env.App.Bucket
	put := func(body string, create bool) store.File {
		f := store.File{ID: ids.New(ids.File), Purpose: "batch", Filename: "f.jsonl", Bytes: int64(len(body)), Status: store.FileProcessed,
			CreatedAt: time.Now().Unix(), ProjectID: project}
		f.ObjectKey = "files/" + f.ID
		_, err := bucket.Put(ctx, f.ObjectKey, strings.NewReader(body), int64(len(body)))
		require.NoError(t, err)
		if create {
			require.NoError(t, st.FileCreate(ctx, f))
		}
		return f
	}
	in := put(`{"custom_id":"`+key+`","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"Say hi"}]}}`+"\n", true)
	out := put(`{"custom_id":"`+key+`","response":{"status_code":200,"body":{"model":"sim-model","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}}}`+"\n", false) // the batch records it
	now := time.Now()
	b := store.Batch{ID: ids.New(ids.Batch), Endpoint: "/v1/chat/completions", Model: "sim-model", InputFileID: in.ID, CompletionWindow: "24h",
		Status: store.BatchValidating, CreatedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), ProjectID: project,
		Metadata: map[string]string{curation.MetaImport: "true", curation.MetaType: "notes"}}
	require.NoError(t, st.BatchCreate(ctx, b))
	_, err := st.BatchComplete(ctx, b.ID, store.Outcome{Output: &out, Completed: 1})
	require.NoError(t, err)
	return b.ID
}

// TestCurationProjects: tasks, exports, stats, imports and curators are
// per project. A curator of project A sees nothing of project B's (404 or
// empty), even naming B; an admin of both switches between them, by header
// or in the session; the same request in two projects makes two tasks; a
// batch's outputs become tasks of its project.
func TestCurationProjects(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testProjects(t, backend)
		})
	}
}

func testProjects(t *testing.T, backend string) {
	env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
	ctx := context.Background()
	st := env.App.Store
	base := env.Base()
	a, b := store.Project{ID: ids.New(ids.Project), Name: "Alpha"}, store.Project{ID: ids.New(ids.Project), Name: "Beta"}
	require.NoError(t, st.ProjectCreate(ctx, a))
	require.NoError(t, st.ProjectCreate(ctx, b))
	newCurator := func(name, role string, projects ...string) (store.Curator, curatorClient) {
		c, key, err := curation.CreateCurator(ctx, st, name, role, projects...)
		require.NoError(t, err)
		return c, curatorClient{t: t, base: base, key: key}
	}
	_, root := newCurator("Root", curation.RoleAdmin, a.ID, b.ID)
	ada, adaIn := newCurator("Ada", curation.RoleCurator, a.ID)
	bo, boIn := newCurator("Bo", curation.RoleCurator, b.ID)
	_, _, err := curation.CreateCurator(ctx, st, "Two", curation.RoleCurator, a.ID, b.ID)
	require.ErrorIs(t, err, curation.ErrOneProject, "only an admin works in several projects")

	// Imports land in the project named: the same request in both is two
	// tasks, one each.
	var res struct{ Tasks, Outputs int }
	root.as(a.ID).do(http.MethodPost, "/v1/curation/imports", append(jsonlTask("shared", "Hello"), jsonlTask("a-only", "Only A")...), 200, &res)
	require.Equal(t, 2, res.Tasks)
	root.as(b.ID).do(http.MethodPost, "/v1/curation/imports", append(jsonlTask("shared", "Hello"), jsonlTask("b-only", "Only B")...), 200, &res)
	require.Equal(t, 2, res.Tasks, "a task of B's own for the shared request")

	// A batch's outputs become tasks of the batch's project: by the import
	// function when it ends (which may have run already), or by the
	// admins' route in that project alone.
	for _, p := range []store.Project{a, b} {
		batchID := endedBatch(t, env, p.ID, "from-batch")
		other := a.ID
		if p.ID == a.ID {
			other = b.ID
		}
		root.as(other).do(http.MethodPost, "/v1/curation/imports/batches/"+batchID, nil, http.StatusNotFound, nil)
		root.as(p.ID).do(http.MethodPost, "/v1/curation/imports/batches/"+batchID, nil, http.StatusOK, nil)
		id, err := st.CurationTaskIDByKey(ctx, p.ID, "notes", "from-batch")
		require.NoError(t, err, p.Name)
		stored, outs, _, err := st.CurationTaskGet(ctx, id)
		require.NoError(t, err)
		require.Equal(t, p.ID, stored.ProjectID)
		require.Len(t, outs, 1, "the batch's output, in its project's task")
		require.Equal(t, batchID, outs[0].BatchID)
	}

	// Ada (A) sees A's tasks only; Bo (B) B's.
	require.ElementsMatch(t, []string{"shared", "a-only", "from-batch"}, adaIn.keys())
	require.ElementsMatch(t, []string{"shared", "b-only", "from-batch"}, boIn.keys())
	aTasks, bTasks := adaIn.taskIDs(), boIn.taskIDs()
	require.NotEqual(t, aTasks["shared"], bTasks["shared"])

	// Nothing of B's opens for Ada: its tasks, annotations, exports, stats
	// and imports are 404 or empty, and naming B is 404.
	var tk task
	boIn.do(http.MethodGet, "/v1/curation/tasks/"+bTasks["b-only"], nil, http.StatusOK, &tk)
	adaIn.do(http.MethodGet, "/v1/curation/tasks/"+bTasks["b-only"], nil, http.StatusNotFound, nil)
	adaIn.do(http.MethodPost, "/v1/curation/tasks/"+bTasks["b-only"]+"/annotations", map[string]any{"version": tk.Version, "status": "skipped"},
		http.StatusNotFound, nil)
	boIn.do(http.MethodGet, "/v1/curation/tasks/"+bTasks["b-only"], nil, http.StatusOK, &tk)
	require.Equal(t, "pending", tk.Status, "B's task is unchanged")
	for _, path := range []string{"/v1/curation/tasks", "/v1/curation/stats", "/v1/curation/exports", "/v1/curation/session", "/v1/curation/types"} {
		adaIn.as(b.ID).do(http.MethodGet, path, nil, http.StatusNotFound, nil)
		adaIn.as("proj_nope").do(http.MethodGet, path, nil, http.StatusNotFound, nil)
	}
	adaIn.as(a.ID).do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusOK, nil)

	var bExport struct {
		ID     string  `json:"id"`
		Status string  `json:"status"`
		Rows   int     `json:"rows"`
		FileID *string `json:"file_id"`
	}
	gold := tk.Outputs[0].ID
	boIn.do(http.MethodPost, "/v1/curation/tasks/"+bTasks["b-only"]+"/annotations", map[string]any{"version": tk.Version, "gold_output_id": gold}, 200, nil)
	boIn.do(http.MethodPost, "/v1/curation/exports", map[string]any{"format": curation.FormatSFT}, 200, &bExport)
	kilntest.Eventually(t, time.Minute, func() bool {
		boIn.do(http.MethodGet, "/v1/curation/exports/"+bExport.ID, nil, 200, &bExport)
		return bExport.Status == store.ExportCompleted || bExport.Status == store.ExportFailed
	}, "B's export")
	require.Equal(t, store.ExportCompleted, bExport.Status)
	require.Equal(t, 1, bExport.Rows, "B's gold task alone")
	f, err := st.FileGet(ctx, *bExport.FileID)
	require.NoError(t, err)
	require.Equal(t, b.ID, f.ProjectID, "the export's file is B's")
	require.Equal(t, store.FileOwnerCuration, f.Owner)
	adaIn.do(http.MethodGet, "/v1/curation/exports/"+bExport.ID, nil, http.StatusNotFound, nil)
	var exports struct {
		Data []struct{ ID string } `json:"data"`
	}
	adaIn.do(http.MethodGet, "/v1/curation/exports", nil, 200, &exports)
	require.Empty(t, exports.Data)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	// A's selection has no gold task (B's gold star is not A's): refused at once.
	adaIn.do(http.MethodPost, "/v1/curation/exports", map[string]any{"format": curation.FormatSFT, "source": "gold"}, http.StatusBadRequest, &e)
	require.Equal(t, "empty_export", e.Error.Code)
	root.as(a.ID).do(http.MethodPost, "/v1/curation/exports", map[string]any{"format": curation.FormatSFT, "type": "b_only_type"}, http.StatusBadRequest, &e)
	require.Equal(t, "empty_export", e.Error.Code)

	type stats struct {
		Data []struct {
			Outputs int `json:"outputs"`
			Gold    int `json:"gold"`
		} `json:"data"`
		Tasks []struct {
			Total int `json:"total"`
		} `json:"tasks"`
	}
	var sa, sb stats
	adaIn.do(http.MethodGet, "/v1/curation/stats", nil, 200, &sa)
	boIn.do(http.MethodGet, "/v1/curation/stats", nil, 200, &sb)
	require.Equal(t, 3, sa.Tasks[0].Total)
	require.Zero(t, sa.Data[0].Gold, "B's gold star is not A's")
	require.Equal(t, 1, sb.Data[0].Gold)

	// The admin of both: the first project by name without a header, the
	// one named with it; a session remembers the switcher's choice.
	require.ElementsMatch(t, adaIn.keys(), root.keys())
	require.ElementsMatch(t, boIn.keys(), root.as(b.ID).keys())
	var who sessionInfo
	root.do(http.MethodGet, "/v1/curation/session", nil, 200, &who)
	require.Equal(t, curation.CurationProject{ID: a.ID, Name: "Alpha"}, who.Project)
	require.Equal(t, []curation.CurationProject{{ID: a.ID, Name: "Alpha"}, {ID: b.ID, Name: "Beta"}}, who.Projects)
	root.do(http.MethodPost, "/v1/curation/session/project", map[string]string{"project_id": b.ID}, http.StatusBadRequest, &e)
	require.Equal(t, "no_session", e.Error.Code, "a key names its project per request")

	session := curatorClient{t: t, base: base, cookie: signIn(t, base, root.key)}
	require.ElementsMatch(t, adaIn.keys(), session.keys())
	session.do(http.MethodPost, "/v1/curation/session/project", map[string]string{"project_id": b.ID}, 200, &who)
	require.Equal(t, b.ID, who.Project.ID)
	require.ElementsMatch(t, boIn.keys(), session.keys(), "the session works in B now")
	session.do(http.MethodGet, "/v1/curation/tasks/"+bTasks["b-only"], nil, 200, nil)
	session.do(http.MethodGet, "/v1/curation/tasks/"+aTasks["a-only"], nil, http.StatusNotFound, nil)
	require.ElementsMatch(t, adaIn.keys(), session.as(a.ID).keys(), "a header wins over the session")
	other := curatorClient{t: t, base: base, cookie: signIn(t, base, root.key)}
	require.ElementsMatch(t, adaIn.keys(), other.keys(), "each session chooses for itself")
	adaSession := curatorClient{t: t, base: base, cookie: signIn(t, base, adaIn.key)}
	adaSession.do(http.MethodPost, "/v1/curation/session/project", map[string]string{"project_id": b.ID}, http.StatusNotFound, nil)
	require.ElementsMatch(t, adaIn.keys(), adaSession.keys())

	// Curators are per project too: an admin sees and manages the
	// curators of the project they work in, and gives only their own
	// projects.
	var list curatorList
	root.as(a.ID).do(http.MethodGet, "/v1/curation/curators", nil, 200, &list)
	var names []string
	for _, c := range list.Data {
		names = append(names, c["name"].(string))
	}
	require.ElementsMatch(t, []string{"Root", "Ada"}, names)
	root.as(a.ID).do(http.MethodPost, "/v1/curation/curators/"+bo.ID+"/revoke", nil, http.StatusNotFound, nil)
	root.as(a.ID).do(http.MethodPost, "/v1/curation/curators/"+ada.ID+"/projects", map[string]string{"project_id": b.ID}, http.StatusConflict, &e)
	require.Equal(t, "one_project", e.Error.Code, "Ada is no admin")

	cy, cyIn := newCurator("Cy", curation.RoleAdmin, a.ID)
	c := store.Project{ID: ids.New(ids.Project), Name: "Gamma"}
	require.NoError(t, st.ProjectCreate(ctx, c))
	root.as(a.ID).do(http.MethodPost, "/v1/curation/curators/"+cy.ID+"/projects", map[string]string{"project_id": c.ID}, http.StatusNotFound, nil)
	cyIn.as(b.ID).do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusNotFound, nil)
	var got curation.Curator
	root.as(a.ID).do(http.MethodPost, "/v1/curation/curators/"+cy.ID+"/projects", map[string]string{"project_id": b.ID}, 200, &got)
	require.ElementsMatch(t, []string{a.ID, b.ID}, got.Projects)
	require.ElementsMatch(t, boIn.keys(), cyIn.as(b.ID).keys(), "Cy works in B now")
	root.as(a.ID).do(http.MethodDelete, "/v1/curation/curators/"+cy.ID+"/projects/"+b.ID, nil, 200, &got)
	require.Equal(t, []string{a.ID}, got.Projects)
	cyIn.as(b.ID).do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusNotFound, nil)
	root.as(a.ID).do(http.MethodDelete, "/v1/curation/curators/"+cy.ID+"/projects/"+a.ID, nil, http.StatusConflict, &e)
	require.Equal(t, "last_project", e.Error.Code)

	// A curator whose project is archived has none left: 403, and the
	// workbench says so at sign-in.
	_, err = st.ProjectArchive(ctx, b.ID)
	require.NoError(t, err)
	boIn.do(http.MethodGet, "/v1/curation/tasks", nil, http.StatusForbidden, nil)
	curatorClient{t: t, base: base}.do(http.MethodPost, "/v1/curation/session", map[string]string{"key": boIn.key}, http.StatusForbidden, &e)
	require.Equal(t, "no_project", e.Error.Code)
	session.do(http.MethodGet, "/v1/curation/session", nil, 200, &who)
	require.Equal(t, a.ID, who.Project.ID, "a session in an archived project falls back to the first left")
	require.Len(t, who.Projects, 1)
}

// TestCurationProjectSwitcherBrowser: the workbench of a curator with two
// projects shows a switcher; the queue is the chosen project's, and a
// reload keeps the choice. A curator with one project sees no switcher.
func TestCurationProjectSwitcherBrowser(t *testing.T) {
	chromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	ctx := context.Background()
	st := env.App.Store
	base := env.Base()
	a, b := store.Project{ID: ids.New(ids.Project), Name: "Alpha"}, store.Project{ID: ids.New(ids.Project), Name: "Beta"}
	require.NoError(t, st.ProjectCreate(ctx, a))
	require.NoError(t, st.ProjectCreate(ctx, b))
	_, rootKey, err := curation.CreateCurator(ctx, st, "Root", curation.RoleAdmin, a.ID, b.ID)
	require.NoError(t, err)
	_, adaKey, err := curation.CreateCurator(ctx, st, "Ada", curation.RoleCurator, a.ID)
	require.NoError(t, err)
	root := curatorClient{t: t, base: base, key: rootKey}
	root.as(a.ID).do(http.MethodPost, "/v1/curation/imports", append(jsonlTask("a-1", "One"), jsonlTask("a-2", "Two")...), 200, nil)
	root.as(b.ID).do(http.MethodPost, "/v1/curation/imports", jsonlTask("b-1", "Three"), 200, nil)

	p := newTab(t)
	queue := `[...document.querySelectorAll('#task-list a')].map((e) => e.textContent).join('|')`
	p.do("open the workbench", chromedp.Navigate(base+"/curation/"), chromedp.WaitVisible(chromedp.ID("login-key")))
	p.do("sign in", chromedp.SetValue(chromedp.ID("login-key"), rootKey), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.wait("Alpha's queue", `document.querySelectorAll('#task-list a').length === 2`)
	require.Equal(t, "false", p.str(`String(document.querySelector('#project-switch').hidden)`), "two projects: a switcher")
	require.Equal(t, "Alpha|Beta", p.str(`[...document.querySelectorAll('#project-select option')].map((o) => o.textContent).join('|')`))
	require.Contains(t, p.str(queue), "One")
	p.shot("project-alpha")
	p.checkA11y("project switcher")

	p.do("switch to Beta", chromedp.SetValue(chromedp.ID("project-select"), b.ID),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#project-select').dispatchEvent(new Event('change'))`))
	p.wait("Beta's queue", `document.querySelectorAll('#task-list a').length === 1 && document.querySelector('#task-list').textContent.includes('Three')`)
	p.do("reload", chromedp.Reload())
	p.wait("still Beta", `document.querySelector('#project-select')?.value === `+js(b.ID)+` && document.querySelectorAll('#task-list a').length === 1`)

	p.click("sign out", "#logout")
	p.do("sign in as Ada", chromedp.WaitVisible(chromedp.ID("login-key")), chromedp.SetValue(chromedp.ID("login-key"), adaKey),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.wait("Ada's queue", `document.querySelectorAll('#task-list a').length === 2`)
	require.Equal(t, "true", p.str(`String(document.querySelector('#project-switch').hidden)`), "one project: no switcher")
}
