package apikey_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// testBundle is two stores on one fresh database: st, and other, which
// stands for another kiln process.
type testBundle struct {
	backend   string
	ctx       context.Context
	st, other *store.Store
}

func setup(t *testing.T, backend string) *testBundle {
	t.Helper()
	url := storetest.URL(t, backend)
	open := func() *store.Store {
		st, err := store.Open(context.Background(), url, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(t, err)
		t.Cleanup(st.Close)
		return st
	}
	return &testBundle{backend: backend, ctx: context.Background(), st: open(), other: open()}
}

// checker is a Checker on st that trusts a good answer for ttl.
func checker(st *store.Store, ttl time.Duration) *apikey.Checker {
	c := apikey.NewChecker(st, "")
	c.TTL = ttl
	return c
}

func TestChecker(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()

			t.Run("Check", func(t *testing.T) {
				t.Parallel()
				tb := setup(t, backend)
				c := apikey.NewChecker(tb.st, "sk-static")
				k, secret, err := apikey.Create(tb.ctx, tb.st, "ci")
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(secret, apikey.Prefix))
				require.Equal(t, secret[:len(k.Prefix)], k.Prefix)
				require.NoError(t, checkErr(c, tb.ctx, secret))
				require.NoError(t, checkErr(c, tb.ctx, secret), "cached")
				require.NoError(t, checkErr(c, tb.ctx, "sk-static"))
				require.ErrorIs(t, checkErr(c, tb.ctx, ""), apikey.ErrInvalid)
				require.ErrorIs(t, checkErr(c, tb.ctx, "sk-kiln-nope"), apikey.ErrInvalid)
				list, err := tb.st.KeyList(tb.ctx)
				require.NoError(t, err)
				require.Len(t, list, 1)
				require.NotNil(t, list[0].LastUsedAt, "a check records the use")
			})

			// Revoked through the Checker's own store, a key fails its next
			// check: the cache, trusted for an hour here, is told at once.
			t.Run("RevokedThroughItsStore", func(t *testing.T) {
				t.Parallel()
				tb := setup(t, backend)
				c := checker(tb.st, time.Hour)
				k, secret, err := apikey.Create(tb.ctx, tb.st, "ci")
				require.NoError(t, err)
				_, kept, err := apikey.Create(tb.ctx, tb.st, "kept")
				require.NoError(t, err)
				require.NoError(t, checkErr(c, tb.ctx, secret))
				require.NoError(t, checkErr(c, tb.ctx, kept))
				require.NoError(t, tb.st.KeyRevoke(tb.ctx, k.ID))
				require.ErrorIs(t, checkErr(c, tb.ctx, secret), apikey.ErrInvalid, "no wait")
				require.NoError(t, checkErr(c, tb.ctx, kept), "other keys are unaffected")
			})

			// Revoked through another store (another kiln, or kiln keys
			// revoke): on Postgres the notification reaches the Checker,
			// whose cache is trusted for an hour, so nothing else explains
			// the refusal; on SQLite the cache's TTL is the bound.
			t.Run("RevokedThroughAnotherStore", func(t *testing.T) {
				t.Parallel()
				tb := setup(t, backend)
				if backend == "postgres" {
					c := checker(tb.other, time.Hour)
					// The first revocation is heard once the Checker's
					// LISTEN is in place (by its notification, or by the
					// "drop everything" that LISTEN starts with).
					for i := range 2 {
						k, secret, err := apikey.Create(tb.ctx, tb.st, "ci")
						require.NoError(t, err)
						require.NoError(t, checkErr(c, tb.ctx, secret))
						require.NoError(t, tb.st.KeyRevoke(tb.ctx, k.ID))
						require.Eventually(t, func() bool { return checkErr(c, tb.ctx, secret) == apikey.ErrInvalid }, 10*time.Second, 5*time.Millisecond,
							"revocation %d to reach the other store's Checker", i)
					}
					return
				}
				long, short := checker(tb.other, time.Hour), checker(tb.other, 100*time.Millisecond)
				k, secret, err := apikey.Create(tb.ctx, tb.st, "ci")
				require.NoError(t, err)
				require.NoError(t, checkErr(long, tb.ctx, secret))
				require.NoError(t, checkErr(short, tb.ctx, secret))
				require.NoError(t, tb.st.KeyRevoke(tb.ctx, k.ID))
				require.NoError(t, checkErr(long, tb.ctx, secret), "SQLite notifies no other store: the cached answer holds for its TTL")
				require.Eventually(t, func() bool { return checkErr(short, tb.ctx, secret) == apikey.ErrInvalid }, 10*time.Second, 10*time.Millisecond,
					"the revocation to count once the cached answer expires")
				require.ErrorIs(t, checkErr(checker(tb.other, time.Hour), tb.ctx, secret), apikey.ErrInvalid, "nothing cached: refused")
			})
		})
	}
}

// checkErr is Check's verdict alone.
func checkErr(c *apikey.Checker, ctx context.Context, secret string) error {
	_, err := c.Check(ctx, secret)
	return err
}
