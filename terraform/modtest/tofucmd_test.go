package modtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

// TestTofuFmt checks that every .tf and .tftest.hcl file under terraform/
// is as tofu fmt writes it.
func TestTofuFmt(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("..")
	require.NoError(t, err)
	runTofu(t, dir, "fmt", "-check", "-recursive", "-diff", "-no-color")
}

// TestTofuTest runs each provider-free module's tofu test suite
// (tests/*.tftest.hcl) offline, and validates the provider-free examples.
// Each runs in a copy, so that init writes nothing into the source tree.
func TestTofuTest(t *testing.T) {
	t.Parallel()
	testenv.TofuBin(t)
	for _, module := range []string{"kiln-host", "kiln-gpu-agent"} {
		t.Run(module, func(t *testing.T) {
			t.Parallel()
			dir := copyTree(t, filepath.Join(modulesDir(t), module))
			runTofu(t, dir, "init", "-input=false", "-no-color")
			out := runTofu(t, dir, "test", "-no-color")
			require.Contains(t, out, "Success!", out)
			require.NotContains(t, out, " 0 passed", out)
		})
	}
	for _, example := range []string{"single-box", "box-plus-gpu"} {
		t.Run("examples/"+example, func(t *testing.T) {
			t.Parallel()
			// The examples call ../../modules: copy all of terraform/.
			root := copyTree(t, filepath.Dir(modulesDir(t)))
			dir := filepath.Join(root, "examples", example)
			runTofu(t, dir, "init", "-input=false", "-no-color")
			runTofu(t, dir, "validate", "-no-color")
		})
	}
}

// copyTree copies the folder src (without .terraform folders) into a new
// temporary folder and returns the copy's path.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".terraform" || strings.HasPrefix(rel, "modtest") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
	return dst
}
