package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/store/storetest"
)

// The gauges of the uploads in progress count as the caps on them do.
func TestUploadsCollector(t *testing.T) {
	t.Parallel()
	for _, backend := range storetest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.New(t, backend)
			reg := prometheus.NewRegistry()
			reg.MustRegister(newUploadsCollector(st, slog.New(slog.NewTextHandler(io.Discard, nil))))
			gauges := func() map[string]float64 {
				t.Helper()
				families, err := reg.Gather()
				require.NoError(t, err)
				out := map[string]float64{}
				for _, mf := range families {
					for _, m := range mf.GetMetric() {
						out[mf.GetName()] = m.GetGauge().GetValue()
					}
				}
				return out
			}
			require.Equal(t, map[string]float64{"kiln_uploads_pending": 0, "kiln_uploads_pending_bytes": 0}, gauges())

			now := time.Now().Unix()
			var made []store.Upload
			for _, bytes := range []int64{10, 32} {
				u := store.Upload{ID: ids.New(ids.Upload), Filename: "f", Purpose: "batch", Bytes: bytes, MimeType: "text/plain",
					Status: store.UploadPending, CreatedAt: now, ExpiresAt: now + 3600}
				require.NoError(t, st.UploadCreate(ctx, u))
				made = append(made, u)
			}
			require.Equal(t, map[string]float64{"kiln_uploads_pending": 2, "kiln_uploads_pending_bytes": 42}, gauges())
			_, err := st.UploadTransition(ctx, made[0].ID, []string{store.UploadPending}, store.UploadCancelled, 0)
			require.NoError(t, err)
			require.Equal(t, map[string]float64{"kiln_uploads_pending": 1, "kiln_uploads_pending_bytes": 32}, gauges())
		})
	}
}
