package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// TestMigrateIntoProjects builds a database with the schema from before
// projects (migration 7) and real rows in it, then migrates it: every row
// belongs to the default project, the old key still works there, and a key
// of another project sees none of it.
func TestMigrateIntoProjects(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := storetest.URL(t, backend)
			old, err := store.OpenAt(ctx, url, testLog(), 7)
			require.NoError(t, err)
			for _, stmt := range []string{
				`INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES ('key_old', 'aris', 'sk-kiln-ab', 'hash-old', 1)`,
				`INSERT INTO files (id, purpose, filename, bytes, object_key, status, created_at) VALUES ('file-old', 'batch', 'in.jsonl', 10, 'files/file-old', 'processed', 2)`,
				`INSERT INTO batches (id, endpoint, input_file_id, completion_window, status, created_at, expires_at, total, completed)
					VALUES ('batch_old', '/v1/chat/completions', 'file-old', '24h', 'completed', 3, 86403, 2, 2)`,
				`INSERT INTO uploads (id, filename, purpose, bytes, mime_type, status, created_at, expires_at)
					VALUES ('upload_old', 'big.jsonl', 'batch', 100, 'application/jsonl', 'pending', 4, 3604)`,
				`INSERT INTO webhook_endpoints (id, url, name, event_types, secret, created_at, updated_at)
					VALUES ('we_old', 'https://aris.example/hook', 'aris', '["batch.completed"]', 'whsec_old', 5, 5)`,
				`INSERT INTO events (id, type, created_at, data) VALUES ('evt_old', 'batch.completed', 6, '{"id": "batch_old"}')`,
			} {
				require.NoError(t, old.Exec(ctx, stmt))
			}
			old.Close()

			st, err := store.Open(ctx, url, testLog())
			require.NoError(t, err)
			t.Cleanup(st.Close)

			p, err := st.ProjectGet(ctx, store.DefaultProject)
			require.NoError(t, err)
			require.Nil(t, p.ArchivedAt)
			k, err := st.KeyByHash(ctx, "hash-old")
			require.NoError(t, err, "a key from before projects still works")
			require.Equal(t, store.DefaultProject, k.ProjectID)
			f, err := st.FileGet(ctx, "file-old")
			require.NoError(t, err)
			require.Equal(t, store.DefaultProject, f.ProjectID)
			b, err := st.BatchGet(ctx, "batch_old")
			require.NoError(t, err)
			require.Equal(t, store.DefaultProject, b.ProjectID)
			require.Equal(t, store.BatchCompleted, b.Status)
			u, err := st.UploadGet(ctx, "upload_old")
			require.NoError(t, err)
			require.Equal(t, store.DefaultProject, u.ProjectID)
			e, err := st.WebhookEndpointGet(ctx, "we_old")
			require.NoError(t, err)
			require.Equal(t, store.DefaultProject, e.ProjectID)
			evs, _, err := st.EventList(ctx, store.DefaultProject, "", "", 10)
			require.NoError(t, err)
			require.Len(t, evs, 1)
			require.Equal(t, "evt_old", evs[0].ID)

			other, _, err := st.EventList(ctx, "proj_other", "", "", 10)
			require.NoError(t, err)
			require.Empty(t, other, "another project sees none of it")
			files, _, err := st.FileList(ctx, store.FileListParams{Project: "proj_other", Limit: 10})
			require.NoError(t, err)
			require.Empty(t, files)
		})
	}
}

// TestPendingMigrations: a database opened without migrating tells which
// of kiln's migrations it lacks, and opening it does not apply them.
func TestPendingMigrations(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := storetest.URL(t, backend)
			pending := func() []int {
				st, err := store.OpenWith(ctx, url, testLog(), &store.OpenOpts{NoMigrate: true})
				require.NoError(t, err)
				defer st.Close()
				p, err := st.PendingMigrations(ctx)
				require.NoError(t, err)
				return p
			}
			all := pending()
			require.Greater(t, len(all), 8, "a database kiln never saw lacks every migration")
			require.Equal(t, all, pending(), "opening without migrating changes nothing")
			old, err := store.OpenAt(ctx, url, testLog(), 7)
			require.NoError(t, err)
			old.Close()
			require.Equal(t, all[7:], pending())
			st, err := store.Open(ctx, url, testLog())
			require.NoError(t, err)
			st.Close()
			require.Empty(t, pending())
		})
	}
}
