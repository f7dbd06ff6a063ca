package curation_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestPairwiseAPI: a curator compares a pair through the API; the
// leaderboard counts it, only an admin settles a pair, and the preference
// exports take the verdict before the ratings.
func TestPairwiseAPI(t *testing.T) {
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	ctx := context.Background()
	_, adminKey, err := curation.CreateCurator(ctx, env.App.Store, "Root", curation.RoleAdmin)
	require.NoError(t, err)
	_, key, err := curation.CreateCurator(ctx, env.App.Store, "Ada", curation.RoleCurator)
	require.NoError(t, err)
	admin, a := uiAPI{t: t, base: origin, key: adminKey}, uiAPI{t: t, base: origin, key: key}
	ids := seedPairs(t, admin, 1)

	var pair curation.Pair
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/pairs/next?blind=false", "", nil, &pair))
	require.False(t, pair.Done)
	require.Equal(t, ids[0], pair.TaskID)
	require.NotNil(t, pair.A.Model)
	require.EqualValues(t, 0, pair.Compared)
	// Rate the other way round: the verdict must win in the export.
	five, one := 5, 1
	body, _ := json.Marshal(map[string]any{"version": 1, "outputs": []map[string]any{{"id": pair.A.ID, "rating": five}, {"id": pair.B.ID, "rating": one}}})
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/tasks/"+ids[0]+"/annotations", "application/json", body, nil))
	body, _ = json.Marshal(map[string]any{"task_id": pair.TaskID, "output_a": pair.A.ID, "output_b": pair.B.ID, "winner": "b", "reason": "clearer"})
	var pv curation.PreferenceView
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/preferences", "application/json", body, &pv))
	require.Equal(t, pair.A.ID, pv.OutputA, "shown as sent")
	require.EqualValues(t, "b", pv.Winner)
	final, _ := json.Marshal(map[string]any{"task_id": pair.TaskID, "output_a": pair.A.ID, "output_b": pair.B.ID, "winner": "a", "final": true})
	require.Equal(t, http.StatusBadRequest, a.call(http.MethodPost, "/v1/curation/preferences", "application/json", final, nil), "admins settle")
	bad, _ := json.Marshal(map[string]any{"task_id": pair.TaskID, "output_a": pair.A.ID, "output_b": "out_nope", "winner": "a"})
	require.Equal(t, http.StatusBadRequest, a.call(http.MethodPost, "/v1/curation/preferences", "application/json", bad, nil))

	var lb struct{ Data []curation.TypeLeaderboard }
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/leaderboard?type=qa", "", nil, &lb))
	require.Len(t, lb.Data, 1)
	require.EqualValues(t, 1, lb.Data[0].Verdicts)
	require.Equal(t, *pair.B.Model, lb.Data[0].Standings[0].Model, "the winner leads")

	// The next pair is of another two models.
	var next curation.Pair
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/pairs/next", "", nil, &next))
	require.Nil(t, next.A.Model, "blind by default")
	require.NotEqual(t, map[string]bool{pair.A.ID: true, pair.B.ID: true}, map[string]bool{next.A.ID: true, next.B.ID: true})

	ex := &curation.Exporter{Store: env.App.Store, Bucket: env.App.Bucket, Log: slog.New(slog.DiscardHandler)}
	f, rows, err := ex.Run(ctx, "export_test", "", curation.ExportOptions{Format: curation.FormatTRL})
	require.NoError(t, err)
	require.EqualValues(t, 1, rows)
	rc, err := env.App.Bucket.Get(ctx, f.ObjectKey)
	require.NoError(t, err)
	raw, _ := io.ReadAll(rc)
	rc.Close()
	require.Contains(t, string(raw), `"chosen":[{"role":"assistant","content":"`+pair.B.Content+`"}]`, "the verdict, not the ratings")
}
