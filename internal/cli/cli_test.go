package cli

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestServeSignal: kiln serve, as its own process, stops gracefully on
// SIGINT (Ctrl-C) and SIGTERM and exits 0, so that a supervisor or make
// sees a clean stop.
func TestServeSignal(t *testing.T) {
	t.Parallel()
	bin := kilntest.KilnBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cmd := exec.Command(bin, "serve")
			cmd.Env = append(cmd.Environ(), "KILN_ADDR=127.0.0.1:0", "KILN_API_KEY="+kilntest.Key,
				"KILN_DATABASE_URL=sqlite://"+filepath.Join(dir, "kiln.db"), "KILN_OBJECT_STORE=file://"+filepath.Join(dir, "objects"))
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			var log strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() && !strings.Contains(sc.Text(), `msg="kiln serving"`) {
				log.WriteString(sc.Text() + "\n")
			}
			require.Contains(t, sc.Text(), "kiln serving", "kiln serve ended before it served:\n%s", log.String())

			require.NoError(t, cmd.Process.Signal(sig))
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
			}
			require.NoError(t, cmd.Wait(), "exit 0 after a clean stop:\n%s", log.String())
			require.Contains(t, log.String(), `msg="shutting down"`)
			require.NotContains(t, log.String(), "level=ERROR")
		})
	}
}

// TestDoctor: kiln doctor prints a line per check and a summary, and exits
// 0 on a working kiln and 1 when a check fails.
func TestDoctor(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{})
	store := "--object-store=" + env.App.Cfg.ObjectStore
	code, out, errOut := kiln(t, "doctor", "--database-url="+env.App.Cfg.DatabaseURL, store)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Regexp(t, `(?m)^ok    database +sqlite `, out)
	require.Regexp(t, `(?m)^ok    agent \S+ +heartbeat `, out)
	require.Regexp(t, `(?m)^8 checks: 8 ok, 0 warnings, 0 failed$`, out)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	code, out, errOut = kiln(t, "doctor", "--database-url=postgres://kiln@"+closed+"/kiln?sslmode=disable", store)
	require.Equal(t, 1, code, out)
	require.Regexp(t, `(?m)^FAIL  database +\S+/kiln: `, out)
	require.Equal(t, "kiln: 1 of 7 checks failed\n", errOut)
}
