package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/browsertest"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestRiverUIAuth: River UI and its API answer curation admins only, on
// both backends: a curator admin key or session gets in, a curator who is
// not an admin gets 403, anyone else 401 (a browser, a page that says where
// to sign in). Batch API keys are no admin keys.
func TestRiverUIAuth(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true})
			origin := strings.TrimSuffix(env.URL, "/v1")
			_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
			require.NoError(t, err)
			_, curatorKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Ada", curation.RoleCurator)
			require.NoError(t, err)
			get := func(path, auth, accept string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, origin+path, nil)
				require.NoError(t, err)
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				resp, err := http.DefaultTransport.RoundTrip(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, string(body)
			}

			for _, path := range []string{"/admin/river/", "/admin/river/api/jobs?state=completed", "/admin/river"} {
				status, _ := get(path, "", "")
				require.Equal(t, http.StatusUnauthorized, status, path)
				status, _ = get(path, kilntest.Key, "")
				require.Equal(t, http.StatusUnauthorized, status, "%s: an API key is no admin key", path)
				status, body := get(path, curatorKey, "")
				require.Equal(t, http.StatusForbidden, status, path)
				require.Contains(t, body, "Only a curation admin")
			}
			status, body := get("/admin/river/", "", "text/html")
			require.Equal(t, http.StatusUnauthorized, status)
			require.Contains(t, body, `href="/curation/"`, "a browser is told where to sign in")

			status, body = get("/admin/river/api/jobs?state=completed", adminKey, "")
			require.Equal(t, http.StatusOK, status, body)
			var list struct {
				Data []struct {
					Kind string `json:"kind"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &list))
			status, _ = get("/admin/river", adminKey, "")
			require.Equal(t, http.StatusMovedPermanently, status, "to the prefix with its slash")
			status, body = get("/admin/river/", adminKey, "text/html")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, body, `<div id="root"`)
		})
	}
}

// TestRiverUIBrowser: an admin signs in to the workbench, opens River UI
// and sees kiln's jobs, among them a batch's.
func TestRiverUIBrowser(t *testing.T) {
	t.Parallel()
	browsertest.ChromiumPath(t) // fail first, with the way to fix it
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	origin := strings.TrimSuffix(env.URL, "/v1")
	_, adminKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	// A batch, so that its jobs (validate, finalize) are in the list.
	c := env.Client()
	b := kilntest.WaitBatch(t, c, createBatch(t, c, kilntest.ChatLines(3, 0), "24h").ID)
	require.Equal(t, "completed", string(b.Status))

	tab := browsertest.New(t, browsertest.Options{})
	tab.Navigate("open River UI signed out", origin+"/admin/river/")
	tab.Wait("the sign-in hint", `document.querySelector('#admin-refusal')?.textContent.includes('Sign in first')`)
	tab.Shot("signed-out")
	tab.Do("follow the sign-in link", chromedp.Click(chromedp.ID("admin-sign-in")), chromedp.WaitVisible(chromedp.ID("login-key")))
	tab.Do("sign in as an admin", chromedp.SetValue(chromedp.ID("login-key"), adminKey), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	tab.Wait("signed in", `document.querySelector('#who')?.textContent.startsWith('Root')`)

	tab.Navigate("open River UI", origin+"/admin/river/jobs?state=completed")
	// kiln's periodic jobs too: River's leader enqueues the sweep that runs
	// at start, which may come after the batch has ended; the page lists it
	// when its live update finds it.
	tab.Wait("the completed jobs are listed, kiln's periodic ones too", `document.body.innerText.includes('batch_validate') &&
		document.body.innerText.includes('batch_finalize') && document.body.innerText.includes('objects_sweep')`)
	tab.Shot("jobs")
}
