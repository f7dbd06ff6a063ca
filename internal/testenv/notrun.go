package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

const (
	// EnvNotRun names a file in which tests that could not run here say
	// so, one line each; scripts/test-services.sh makes it and prints it
	// at the end of `run`, so that a skip never passes for coverage.
	EnvNotRun = "KILN_TEST_NOT_RUN"
	// EnvRequireDocker, set to 1, fails the tests that need Docker when it
	// is not available, instead of reporting them not run: for a CI that
	// has Docker.
	EnvRequireDocker = "KILN_TEST_REQUIRE_DOCKER"
)

var notRunMu sync.Mutex

// NotRun ends t as not run: it skips t with "NOT RUN: " and reason, and adds
// the same line to EnvNotRun's file. It is for a test whose dependency is
// outside the project's services (Docker) and whose steps other tests
// cover; reason should name them.
func NotRun(t testing.TB, reason string) {
	t.Helper()
	line := fmt.Sprintf("NOT RUN: %s: %s", t.Name(), reason)
	if path := os.Getenv(EnvNotRun); path != "" {
		notRunMu.Lock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		notRunMu.Unlock()
		if err != nil {
			t.Errorf("testenv: %s: %v", EnvNotRun, err)
		}
	}
	t.Skip(line)
}

// RequireDocker reports t not run (NotRun) when Docker is not available,
// or fails it with EnvRequireDocker=1. covered names the tests that cover
// its steps without Docker.
func RequireDocker(t testing.TB, covered string) {
	t.Helper()
	err := dockerHealthy()
	if err == nil {
		return
	}
	if os.Getenv(EnvRequireDocker) == "1" {
		t.Fatalf("testenv: this test needs Docker (%s=1), which is not available: %v", EnvRequireDocker, err)
	}
	NotRun(t, fmt.Sprintf("Docker is not available (%v); %s cover its steps", err, covered))
}
