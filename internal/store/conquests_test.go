package store_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testConquests(t *testing.T, setup setupFunc) {
	t.Run("RecordOutputs", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		b := newBatch(t, tb)
		// More outputs than one multi-row insert holds on either backend.
		const n = 1201
		var outs []store.ConquestOutput
		for i := range n {
			o := store.ConquestOutput{CustomID: fmt.Sprintf("req-%04d", i), Line: int64(i + 1), Valid: i%3 != 0}
			if !o.Valid {
				o.Reason, o.Message = "schema", fmt.Sprintf("line %d", i+1)
			}
			outs = append(outs, o)
		}
		require.NoError(t, tb.st.ConquestRecord(tb.ctx, b.ID, outs, ""))
		got, err := tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 800, got.Conquest.Valid)
		require.EqualValues(t, 401, got.Conquest.Invalid)
		require.NotNil(t, got.Conquest.CheckedAt)
		require.Empty(t, got.Conquest.Error)

		// All, in output-file order, in pages after a line.
		var all []store.ConquestOutput
		after := int64(0)
		for {
			page, more, err := tb.st.ConquestOutputList(tb.ctx, b.ID, -1, after, 500)
			require.NoError(t, err)
			all = append(all, page...)
			if !more {
				break
			}
			after = page[len(page)-1].Line
		}
		require.Equal(t, outs, all)
		invalid, more, err := tb.st.ConquestOutputList(tb.ctx, b.ID, 0, 0, 2)
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, []store.ConquestOutput{outs[0], outs[3]}, invalid)
		valid, _, err := tb.st.ConquestOutputList(tb.ctx, b.ID, 1, 1, 2)
		require.NoError(t, err)
		require.Equal(t, []store.ConquestOutput{outs[1], outs[2]}, valid)

		// Checking again replaces the result.
		require.NoError(t, tb.st.ConquestRecord(tb.ctx, b.ID, outs[:2], ""))
		got, err = tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.EqualValues(t, 1, got.Conquest.Valid)
		require.EqualValues(t, 1, got.Conquest.Invalid)
		all, more, err = tb.st.ConquestOutputList(tb.ctx, b.ID, -1, 0, 10)
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, outs[:2], all)

		// An error says why nothing could be checked.
		require.NoError(t, tb.st.ConquestRecord(tb.ctx, b.ID, nil, "output file unreadable"))
		got, err = tb.st.BatchGet(tb.ctx, b.ID)
		require.NoError(t, err)
		require.Equal(t, "output file unreadable", got.Conquest.Error)
		require.Zero(t, got.Conquest.Valid+got.Conquest.Invalid)
		all, _, err = tb.st.ConquestOutputList(tb.ctx, b.ID, -1, 0, 10)
		require.NoError(t, err)
		require.Empty(t, all)
	})

	t.Run("Records", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// More records than one multi-row insert holds on either backend.
		records := map[string]json.RawMessage{}
		for i := range 1201 {
			records[fmt.Sprintf("req-%04d", i)] = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		}
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "email", records))
		for _, id := range []string{"req-0000", "req-0099", "req-0100", "req-0500", "req-1200"} {
			got, err := tb.st.ConquestRecordGet(tb.ctx, "", "email", id)
			require.NoError(t, err)
			require.JSONEq(t, string(records[id]), string(got), id)
		}
		// A record kept before stays as it is; new ones are added.
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "email", map[string]json.RawMessage{
			"req-0000": json.RawMessage(`{"n":"changed"}`), "req-new": json.RawMessage(`{"n":"new"}`)}))
		got, err := tb.st.ConquestRecordGet(tb.ctx, "", "email", "req-0000")
		require.NoError(t, err)
		require.JSONEq(t, `{"n":0}`, string(got))
		got, err = tb.st.ConquestRecordGet(tb.ctx, "", "email", "req-new")
		require.NoError(t, err)
		require.JSONEq(t, `{"n":"new"}`, string(got))
		require.NoError(t, tb.st.ConquestRecordsPut(tb.ctx, "", "email", nil))

		// Records are kept per type.
		_, err = tb.st.ConquestRecordGet(tb.ctx, "", "other", "req-0000")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tb.st.ConquestRecordGet(tb.ctx, "", "email", "req-nope")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
