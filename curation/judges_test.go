package curation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

type judgeView struct {
	ID          string
	Type        string
	Model       string
	Kind        string
	BatchID     string `json:"batch_id"`
	Status      string
	Requests    int64
	BatchStatus string `json:"batch_status"`
	Labels      int64
	Unreadable  int64
	Error       string
}

type prelabelView struct {
	JudgeID   string   `json:"judge_id"`
	Model     string   `json:"model"`
	Kind      string   `json:"kind"`
	OutputIDs []string `json:"output_ids"`
	Value     string   `json:"value"`
	Reason    string   `json:"reason"`
}

type taskWithPrelabels struct {
	ID      string
	Outputs []struct {
		ID    string
		Model string
	}
	Prelabels       []prelabelView
	PrelabelsHidden int `json:"prelabels_hidden"`
}

// runJudge asks for a judge and waits for it to end.
func runJudge(t *testing.T, a uiAPI, body map[string]any) judgeView {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	var j judgeView
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/judges", "application/json", raw, &j))
	require.Equal(t, "running", j.Status)
	kilntest.Eventually(t, 2*time.Minute, func() bool {
		require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/judges/"+j.ID, "", nil, &j))
		return j.Status != "running"
	}, "judge %s to end", j.ID)
	return j
}

// TestJudges runs model judges through kiln's own queue and agent (kiln
// sim answering in the judges' strict schema), on both backends: pairwise
// and rating pre-labels, hidden in blind review until the curator decides,
// counted in agreement as a coder of their own and left out of the
// leaderboard; and the bad requests.
func TestJudges(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			origin := env.Base()
			ctx := context.Background()
			_, adminKey, err := curation.CreateCurator(ctx, env.App.Store, "Root", curation.RoleAdmin)
			require.NoError(t, err)
			_, adaKey, err := curation.CreateCurator(ctx, env.App.Store, "Ada", curation.RoleCurator)
			require.NoError(t, err)
			admin := uiAPI{t: t, base: origin, key: adminKey}
			ada := uiAPI{t: t, base: origin, key: adaKey}
			tasks := seedPairs(t, admin, 4) // 4 tasks × 3 models: 12 pairs, 12 outputs
			const model = "sim-model"

			// Bad requests, refused at once.
			for _, c := range []struct {
				who  uiAPI
				body string
				code int
			}{
				{ada, `{"type":"qa","model":"sim-model"}`, http.StatusForbidden},
				{admin, `{"type":"qa","model":"no-such-model"}`, http.StatusBadRequest},
				{admin, `{"type":"no_such_type","model":"sim-model"}`, http.StatusBadRequest},
				{admin, `{"type":"qa","model":"sim-model","kind":"vibes"}`, http.StatusBadRequest},
				{admin, `{"type":"qa","model":"sim-model","limit":0}`, http.StatusBadRequest},
			} {
				require.Equal(t, c.code, c.who.call(http.MethodPost, "/v1/curation/judges", "application/json", []byte(c.body), nil), c.body)
			}
			var none struct{ Data []judgeView }
			require.Equal(t, http.StatusOK, admin.call(http.MethodGet, "/v1/curation/judges", "", nil, &none))
			require.Empty(t, none.Data, "a refused judge leaves nothing")

			// Pairwise: 10 of the 12 pairs, then the other 2.
			pj := runJudge(t, admin, map[string]any{"type": "qa", "model": model, "kind": "preference", "limit": 10})
			require.Equal(t, "imported", pj.Status, pj.Error)
			require.Equal(t, int64(10), pj.Requests)
			require.Equal(t, int64(10), pj.Labels, "kiln sim answers in the judge's schema")
			require.Equal(t, "completed", pj.BatchStatus)
			rest := runJudge(t, admin, map[string]any{"type": "qa", "model": model})
			require.Equal(t, int64(2), rest.Requests, "units judged before are skipped")
			require.Equal(t, http.StatusBadRequest, admin.call(http.MethodPost, "/v1/curation/judges", "application/json",
				[]byte(`{"type":"qa","model":"sim-model"}`), nil), "nothing_to_judge")

			// Ratings of every output.
			rj := runJudge(t, admin, map[string]any{"type": "qa", "model": model, "kind": "rating"})
			require.Equal(t, int64(12), rj.Requests)
			require.Equal(t, int64(12), rj.Labels)

			// Not blind: every pre-label of the task shows.
			var task taskWithPrelabels
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/tasks/"+tasks[0], "", nil, &task))
			require.Len(t, task.Prelabels, 6, "3 pairs and 3 ratings")
			require.Zero(t, task.PrelabelsHidden)
			for _, p := range task.Prelabels {
				require.Equal(t, model, p.Model)
				if p.Kind == "rating" {
					require.Contains(t, []string{"1", "2", "3", "4", "5"}, p.Value)
					require.Len(t, p.OutputIDs, 1)
				} else {
					require.Contains(t, []string{"a", "b", "tie", "both_bad"}, p.Value)
					require.Len(t, p.OutputIDs, 2)
					require.Less(t, p.OutputIDs[0], p.OutputIDs[1])
				}
			}

			// Blind: hidden until Ada decides; her rating shows the judge's.
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/tasks/"+tasks[0]+"?blind=true", "", nil, &task))
			require.Empty(t, task.Prelabels)
			require.Equal(t, 6, task.PrelabelsHidden)
			var full struct {
				Version int64
				Outputs []struct{ ID string }
			}
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/tasks/"+tasks[0], "", nil, &full))
			rated := full.Outputs[0].ID
			ann, _ := json.Marshal(map[string]any{"version": full.Version, "outputs": []map[string]any{{"id": rated, "rating": 4}}})
			require.Equal(t, http.StatusOK, ada.call(http.MethodPost, "/v1/curation/tasks/"+tasks[0]+"/annotations", "application/json", ann, nil))
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/tasks/"+tasks[0]+"?blind=true", "", nil, &task))
			require.Len(t, task.Prelabels, 1)
			require.Equal(t, []string{rated}, task.Prelabels[0].OutputIDs)
			require.Equal(t, 5, task.PrelabelsHidden)

			// The blind pair carries no pre-label; the verdict's answer does,
			// with winner read for the sides as sent.
			var pair struct {
				TaskID    string `json:"task_id"`
				A, B      struct{ ID string }
				Prelabels []prelabelView
			}
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/pairs/next?blind=true", "", nil, &pair))
			require.Empty(t, pair.Prelabels)
			verdict, _ := json.Marshal(map[string]any{"task_id": pair.TaskID, "output_a": pair.B.ID, "output_b": pair.A.ID, "winner": "a"})
			var saved struct{ Prelabels []prelabelView }
			require.Equal(t, http.StatusOK, ada.call(http.MethodPost, "/v1/curation/preferences", "application/json", verdict, &saved))
			require.Len(t, saved.Prelabels, 1)
			require.Equal(t, []string{pair.B.ID, pair.A.ID}, saved.Prelabels[0].OutputIDs)
			var notBlind struct{ Prelabels []prelabelView }
			require.Equal(t, http.StatusOK, ada.call(http.MethodGet, "/v1/curation/tasks/"+pair.TaskID, "", nil, &notBlind))
			stored := notBlind.Prelabels[slices.IndexFunc(notBlind.Prelabels, func(p prelabelView) bool {
				return p.Kind == "preference" && slices.Contains(p.OutputIDs, pair.A.ID) && slices.Contains(p.OutputIDs, pair.B.ID)
			})]
			want := stored.Value
			if stored.OutputIDs[0] != pair.B.ID {
				want = map[string]string{"a": "b", "b": "a"}[want]
				if want == "" {
					want = stored.Value
				}
			}
			require.Equal(t, want, saved.Prelabels[0].Value, "the winner follows the sides")

			// Agreement: the judge is a coder of its own, beside Ada, on the
			// units both answered; the leaderboard counts Ada's verdict only.
			var ag struct {
				Data []struct {
					Kind  string
					Units int64
					Pairs []struct {
						CuratorA     string `json:"curator_a"`
						CuratorAName string `json:"curator_a_name"`
						CuratorB     string `json:"curator_b"`
						CuratorBName string `json:"curator_b_name"`
						Units        int64
					}
				}
			}
			require.Equal(t, http.StatusOK, admin.call(http.MethodGet, "/v1/curation/agreement?type=qa", "", nil, &ag))
			kinds := map[string]int64{}
			for _, a := range ag.Data {
				kinds[a.Kind] = a.Units
				require.Len(t, a.Pairs, 1, a.Kind)
				names := []string{a.Pairs[0].CuratorAName, a.Pairs[0].CuratorBName}
				require.Contains(t, names, "Ada")
				require.Contains(t, names, "Judge sim-model ("+a.Kind+")")
			}
			require.Equal(t, map[string]int64{"preference": 1, "rating": 1}, kinds)
			var lb struct {
				Data []struct {
					Verdicts int64
				}
			}
			require.Equal(t, http.StatusOK, admin.call(http.MethodGet, "/v1/curation/leaderboard?type=qa", "", nil, &lb))
			require.NotEmpty(t, lb.Data)
			require.Equal(t, int64(1), lb.Data[0].Verdicts, "the judges' verdicts are not the leaderboard's")
		})
	}
}
