package objectstore_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

// A folder store reports its filesystem's free and total space; an S3
// bucket reports none (its server does).
func TestDiskCollector(t *testing.T) {
	t.Parallel()
	folder, err := objectstore.Open(t.Context(), "file://"+t.TempDir())
	require.NoError(t, err)
	c := objectstore.DiskCollector(folder)
	require.NotNil(t, c)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		require.Len(t, mf.GetMetric(), 1)
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	require.Positive(t, got["kiln_object_store_free_bytes"])
	require.GreaterOrEqual(t, got["kiln_object_store_size_bytes"], got["kiln_object_store_free_bytes"])

	s3, err := objectstore.Open(t.Context(), testenv.S3URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s3.Close() })
	require.Nil(t, objectstore.DiskCollector(s3))
}
