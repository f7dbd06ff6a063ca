package gpuagent

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProjectLabelsAreBounded: each project keeps its label, up to
// maxProjectLabels of them; later ones count as "other".
func TestProjectLabelsAreBounded(t *testing.T) {
	var p projectLabels
	for i := range maxProjectLabels {
		id := fmt.Sprint("proj_", i)
		require.Equal(t, id, p.of(id))
	}
	require.Equal(t, "other", p.of("proj_late"))
	require.Equal(t, "proj_0", p.of("proj_0"), "a project seen before keeps its label")
}
