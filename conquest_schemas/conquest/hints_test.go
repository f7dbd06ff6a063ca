package conquest_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
)

// TestHints checks every type's preview fields and tones: each type names
// its preview, and its badges' tones cover their enums.
func TestHints(t *testing.T) {
	t.Parallel()
	reg, err := conquest.Load()
	require.NoError(t, err)
	for _, d := range reg.Latest() {
		t.Run(d.ID, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, d.CheckHints())
			require.NotEmpty(t, d.Rendering.Preview, "a preview for the queue")
			for _, v := range d.Rendering.Output {
				if v.Format == "badge" {
					require.NotEmpty(t, v.Tones, "%s: a badge has tones", v.Pointer)
				}
			}
		})
	}
	ce, err := reg.Get("candidate_evaluation", 0)
	require.NoError(t, err)
	for _, v := range ce.Rendering.Output {
		if v.Pointer == "/recommendation/decision" {
			require.Equal(t, conquest.ToneNegative, v.Tones["strong_no"], "strong_no is negative, whatever it starts with")
			require.Equal(t, conquest.TonePositive, v.Tones["strong_yes"])
		}
	}
}

// TestHintsRefused checks that a wrong tone or preview is caught.
func TestHintsRefused(t *testing.T) {
	t.Parallel()
	reg, err := conquest.Load()
	require.NoError(t, err)
	ce, err := reg.Get("candidate_evaluation", 0)
	require.NoError(t, err)

	t.Run("UnknownTone", func(t *testing.T) {
		t.Parallel()
		src := `"tones": {"strong_yes": "good"`
		_, err := conquest.LoadFS(fstest.MapFS{"d/x.v1.json": {Data: []byte(`{"id": "x", "version": 1, "title": "X", "rendering": {"data": [], "output": [{` + src + `}}]}}`)}}, "d")
		require.ErrorContains(t, err, `tone "good"`)
	})
	t.Run("Cases", func(t *testing.T) {
		t.Parallel()
		for name, c := range map[string]struct {
			mutate func(d *conquest.Definition)
			want   string
		}{
			"preview of no field": {func(d *conquest.Definition) { d.Rendering.Preview = []string{"nope.name"} }, `"nope.name" is no data field`},
			"tone of no value": {func(d *conquest.Definition) {
				d.Rendering.Output[0].Tones = map[string]conquest.Tone{"advance": conquest.TonePositive}
			}, `"advance" is no value`},
			"value without tone": {func(d *conquest.Definition) {
				d.Rendering.Output[0].Tones = map[string]conquest.Tone{"yes": conquest.TonePositive}
			}, "no tone"},
			"column of no table": {func(d *conquest.Definition) {
				d.Rendering.Output[0].ColumnTones = map[string]map[string]conquest.Tone{"severity": {"low": conquest.ToneNeutral}}
			}, "no column"},
		} {
			t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
				t.Parallel()
				d := *ce
				d.Rendering.Output = append([]conquest.OutputView(nil), ce.Rendering.Output...)
				require.Equal(t, "/recommendation/decision", d.Rendering.Output[0].Pointer)
				c.mutate(&d)
				require.ErrorContains(t, d.CheckHints(), c.want)
			})
		}
	})
}
