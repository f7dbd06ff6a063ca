package store_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
)

func testErrors(t *testing.T, setup setupFunc) {
	t.Run("ConstraintIsPermanent", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// Version 1 is applied already: a second row breaks the key.
		err := tb.st.ExecForTest(tb.ctx, `INSERT INTO kiln_migrations (version, applied_at) VALUES (1, 0)`)
		require.Error(t, err)
		require.True(t, store.IsPermanent(err), "%v", err)
	})
	t.Run("OtherErrorsAreNot", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		err := tb.st.ExecForTest(tb.ctx, `SELECT * FROM no_such_table`)
		require.Error(t, err)
		require.False(t, store.IsPermanent(err), "%v", err)
		require.False(t, store.IsPermanent(errors.New("plain")))
		require.False(t, store.IsPermanent(nil))
	})
	if b := setup(t); b.backend == "postgres" {
		t.Run("NULInTextIsPermanent", func(t *testing.T) {
			t.Parallel()
			tb := setup(t)
			err := tb.st.ExecForTest(tb.ctx, "INSERT INTO kiln_migrations (version, applied_at) SELECT length(convert_from('\\x6100'::bytea, 'UTF8'))::bigint + 1000, 0")
			require.Error(t, err)
			require.True(t, store.IsPermanent(err), "%v", err)
		})
	}
}
