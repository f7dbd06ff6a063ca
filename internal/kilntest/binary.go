package kilntest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
// measure it alone). Builds are named by their content, so test processes
// of one source tree share one file and nothing accumulates.
func KilnBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "kiln-test-bin")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		tmp := filepath.Join(dir, "kiln."+strconv.Itoa(os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, "github.com/kilnhq/kiln/cmd/kiln")
		if buildOut, buildErr = cmd.CombinedOutput(); buildErr != nil {
			return
		}
		var data []byte
		if data, buildErr = os.ReadFile(tmp); buildErr != nil {
			return
		}
		sum := sha256.Sum256(data)
		binPath = filepath.Join(dir, "kiln-"+hex.EncodeToString(sum[:8]))
		buildErr = os.Rename(tmp, binPath)
	})
	if buildErr != nil {
		t.Fatalf("kilntest: build kiln: %v\n%s", buildErr, buildOut)
	}
	return binPath
}
