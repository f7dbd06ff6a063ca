package kilntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// KilnBinary builds the kiln command once per test process and returns its
// path, for tests that run kiln as a separate process (to kill it, or to
// measure it alone).
func KilnBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kiln")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/kilnhq/kiln/cmd/kiln")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("kilntest: build kiln: %v\n%s", buildErr, buildOut)
	}
	return binPath
}
