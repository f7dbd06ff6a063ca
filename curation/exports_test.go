package curation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestCurationEmptyExport checks that an export whose selection gives its
// format no row is refused at once, per format, and accepted once the
// selection has what the format takes.
func TestCurationEmptyExport(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true})
	origin := strings.TrimSuffix(env.URL, "/v1")
	_, key, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin) // imports are for admins
	require.NoError(t, err)
	a := uiAPI{t: t, base: origin, key: key}

	var lines strings.Builder
	for _, model := range []string{"m/one", "m/two"} {
		b, err := json.Marshal(map[string]any{"type": "notes", "key": "k-1", "model": model, "output": "answer of " + model,
			"messages": []map[string]string{{"role": "user", "content": "Say something."}}})
		require.NoError(t, err)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/imports", "application/jsonl", []byte(lines.String()), nil))
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	require.Equal(t, http.StatusOK, a.call(http.MethodGet, "/v1/curation/tasks", "", nil, &list))
	require.Len(t, list.Data, 1)
	task := a.task(list.Data[0].ID)

	export := func(body map[string]any) (int, string) {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		req, err := http.NewRequest(http.MethodPost, origin+"/v1/curation/exports", strings.NewReader(string(raw)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code
	}
	annotate := func(body map[string]any) {
		body["version"] = task.Version
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, a.call(http.MethodPost, "/v1/curation/tasks/"+task.ID+"/annotations", "application/json", raw, &task))
	}
	refused := func(when string, formats ...map[string]any) {
		for _, f := range formats {
			code, errCode := export(f)
			require.Equal(t, http.StatusBadRequest, code, "%s: %v", when, f)
			require.Equal(t, "empty_export", errCode, "%s: %v", when, f)
		}
	}
	accepted := func(when string, formats ...map[string]any) {
		for _, f := range formats {
			code, errCode := export(f)
			require.Equal(t, http.StatusOK, code, "%s: %v (%s)", when, f, errCode)
		}
	}
	sft := map[string]any{"format": curation.FormatSFT}
	sftGold := map[string]any{"format": curation.FormatSFT, "source": "gold"}
	sftCorrected := map[string]any{"format": curation.FormatSFT, "source": "corrected"}
	dpo := map[string]any{"format": curation.FormatDPO}
	trl := map[string]any{"format": curation.FormatTRL}
	icl := map[string]any{"format": curation.FormatICL}
	ls := map[string]any{"format": curation.FormatLabelStudio}

	refused("nothing annotated", sft, sftGold, sftCorrected, dpo, trl, icl)
	refused("a type with no task", map[string]any{"format": curation.FormatLabelStudio, "type": "cv_parsing"})
	accepted("any task", ls)

	one, two := task.output("m/one").ID, task.output("m/two").ID
	annotate(map[string]any{"outputs": []map[string]any{{"id": one, "rating": 4}, {"id": two, "rating": 4}}})
	refused("two equal ratings are no pair", dpo, trl)
	annotate(map[string]any{"outputs": []map[string]any{{"id": two, "rating": 2}}})
	accepted("a pair", dpo, trl)

	annotate(map[string]any{"outputs": []map[string]any{{"id": two, "corrected": "a better answer"}}})
	accepted("a correction", sft, sftCorrected)
	refused("a correction is no gold", sftGold, icl)
	annotate(map[string]any{"gold_output_id": one})
	accepted("gold", sftGold, icl)
	require.Equal(t, one, fmt.Sprint(*task.Gold))
}
