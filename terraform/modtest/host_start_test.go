package modtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

const (
	// setupTimeout bounds the start-up script: Postgres, MinIO and kiln
	// each start in seconds here.
	setupTimeout = 5 * time.Minute
)

// TestHostStartsInThrowawayRoot renders kiln-host for a root folder of the
// test's own, with service_manager "direct" (no systemd as PID 1 here) and
// no apt-get, writes its files as cloud-init's write_files would, and runs
// its runcmd: the start-up script installs the locally built kiln and
// the cached MinIO (file:// URLs, through the same download code as a real
// host), initialises and starts PostgreSQL (the system's, as the postgres
// user), makes the kiln role and database, starts MinIO, migrates, and
// starts kiln serve. Then kiln-admin makes a key (the module's
// first_key_command), and GET /v1/models with it answers 200 on loopback.
//
// What differs from a real host: processes start in the background instead
// of as systemd units (the units are checked by TestUserData), Postgres is
// a private cluster instead of Debian's packaged one, and Caddy is off.
func TestHostStartsInThrowawayRoot(t *testing.T) {
	t.Parallel()
	minio := hostPrereqs(t)
	kiln := buildKiln(t)
	root := throwawayRoot(t)

	apiPort, pgPort, minioPort := freePort(t), freePort(t), freePortPair(t)
	userData := render(t, "kiln-host", map[string]any{
		"root":             root,
		"service_manager":  "direct",
		"install_packages": false,
		"tls_mode":         "none",
		"public_url":       fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		"listen_addr":      fmt.Sprintf("127.0.0.1:%d", apiPort),
		"postgres_port":    pgPort,
		"minio_port":       minioPort,
		"kiln_binary_url":  "file://" + kiln,
		"minio_binary_url": "file://" + minio,
		"settings":         map[string]string{"KILN_LOG_LEVEL": "debug"},
	})
	runSetup(t, root, userData, "kiln", "minio", "postgres")
	setup := filepath.Join(root, "usr/local/sbin/kiln-setup")
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	// The files that hold secrets are root-only (or the test user's).
	for _, f := range []string{"etc/kiln/kiln.env", "etc/kiln/local.env", "etc/kiln/minio.env"} {
		fi, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
	// The database password was made on the host: it is in local.env, and
	// in no file the user-data wrote.
	local, err := os.ReadFile(filepath.Join(root, "etc/kiln/local.env"))
	require.NoError(t, err)
	m := regexp.MustCompile(`KILN_DATABASE_URL="postgres://kiln:([0-9a-f]{48})@127\.0\.0\.1:` + strconv.Itoa(pgPort) + `/kiln`).FindSubmatch(local)
	require.NotNil(t, m, "local.env:\n%s", local)
	require.NotContains(t, userData, string(m[1]))

	// The module's way to a key: kiln-admin keys create.
	key := makeKey(t, root)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/v1/models", apiPort), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET /v1/models: %s", body)
	require.Contains(t, string(body), `"object":"list"`)

	// kiln's first key went to its log, as first_key_command says.
	logText, err := os.ReadFile(filepath.Join(root, "var/log/kiln/kiln.log"))
	require.NoError(t, err)
	require.Contains(t, string(logText), "first API key")

	// Running the script again is safe: it finds everything running.
	out, err := exec.CommandContext(ctx, setup).CombinedOutput()
	require.NoError(t, err, "the start-up script, again:\n%s", out)
	local2, err := os.ReadFile(filepath.Join(root, "etc/kiln/local.env"))
	require.NoError(t, err)
	require.Equal(t, string(local), string(local2), "a second run changed the generated credentials")
}

// buildKiln builds ./cmd/kiln into a temporary folder others may read (the
// start-up script copies it from a file:// URL).
func buildKiln(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln-bin-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "kiln")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/kiln:\n%s", out)
	return bin
}

// hostPrereqs ends t as unavailable without what a throwaway host needs
// (tofu, MinIO, PostgreSQL) and returns the MinIO binary.
func hostPrereqs(t testing.TB) string {
	t.Helper()
	testenv.TofuBin(t)
	minio, err := testenv.MinIOBin()
	if err != nil {
		testenv.Unavailable(t, "this test runs MinIO: "+err.Error()+".")
	}
	if _, err := os.Stat("/usr/lib/postgresql"); err != nil {
		testenv.Unavailable(t, "this test runs PostgreSQL's server programs, which are not installed (Debian: apt-get install postgresql).")
	}
	if os.Getuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			testenv.Unavailable(t, "as root, this test runs PostgreSQL as the postgres user, which does not exist.")
		}
	}
	return minio
}

// throwawayRoot makes a folder for a host's files. Not t.TempDir: its
// parent is private to root, and Postgres runs as the postgres user. Short,
// for Postgres's socket path.
func throwawayRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp("", "kh-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(root, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	return root
}

// runSetup does what cloud-init does with userData under root: writes its
// files and runs its runcmd, and at cleanup stops what it started (the
// script's stop action), logging logs when t failed.
func runSetup(t testing.TB, root, userData string, logs ...string) {
	t.Helper()
	cc := parseCloudConfig(t, userData)
	writeFiles(t, cc)
	setup := cc.Runcmd[0][0]
	t.Cleanup(func() {
		out, err := exec.Command(setup, "stop").CombinedOutput()
		if err != nil {
			t.Errorf("%s stop: %v\n%s", setup, err, out)
		}
		if t.Failed() {
			for _, name := range logs {
				b, _ := os.ReadFile(filepath.Join(root, "var/log/kiln", name+".log"))
				t.Logf("%s.log:\n%s", name, tail(string(b), 40))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, setup).CombinedOutput()
	require.NoError(t, err, "%s failed:\n%s", setup, out)
	t.Logf("%s:\n%s", filepath.Base(setup), out)
}

// makeKey makes an API key with the host's kiln-admin, as the module's
// first_key_command says.
func makeKey(t testing.TB, root string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "usr/local/bin/kiln-admin"), "keys", "create", "--name", "modtest").CombinedOutput()
	require.NoError(t, err, "kiln-admin keys create:\n%s", out)
	key := regexp.MustCompile(`sk-kiln-[A-Za-z0-9_-]+`).Find(out)
	require.NotNil(t, key, "kiln-admin printed no key:\n%s", out)
	return string(key)
}

// freePort returns a loopback port nothing listens on now, below the
// kernel's ephemeral range where the host has room: the box's servers bind
// it only after kiln-setup runs, and a port the kernel hands out meanwhile to
// another test's connection or listener would take it from them.
func freePort(t testing.TB) int {
	t.Helper()
	return testenv.FreePort(t)
}

// freePortPair returns a port p such that p and p+1 are free (MinIO's API
// and console).
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		p := freePort(t)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err == nil {
			require.NoError(t, ln.Close())
			return p
		}
	}
	t.Fatal("found no two free consecutive ports")
	return 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
