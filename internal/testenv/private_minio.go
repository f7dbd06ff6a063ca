package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

const (
	// EnvMinIOBin names the MinIO server binary that private MinIO servers
	// run. scripts/test-services.sh sets it. Unset, the binary that
	// scripts/install-minio.sh caches is used, if it is there.
	EnvMinIOBin = "KILN_TEST_MINIO_BIN"

	// minioVersion is the MinIO that scripts/install-minio.sh builds; a test
	// keeps the two in step.
	minioVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

	// minioBucket is the bucket made on each private MinIO server.
	minioBucket = "kiln-test"
	// minioRegion is the region of minioBucket.
	minioRegion = "us-east-1"
)

// MinIO is a private S3 server owned by one test, which may stop, kill and
// restart it, unlike the shared server of S3URL. Its methods may be called
// from several goroutines.
type MinIO struct {
	bin         string
	dir         string // holds data/, certs/ and log
	port        int
	consolePort int
	user        string
	password    string
	logPath     string
	env         []string // extra environment, from MinIOOptions

	mu   sync.Mutex
	proc *Process // nil while stopped
}

// MinIOOptions shape a private MinIO server.
type MinIOOptions struct {
	// Env is extra environment for the server, as NAME=value: for example
	// MINIO_NOTIFY_WEBHOOK_ENABLE_PRIMARY=on and
	// MINIO_NOTIFY_WEBHOOK_ENDPOINT_PRIMARY=URL for bucket notifications. It
	// is added after the server's own settings (credentials, browser off),
	// so it may override them, and it applies to every (re)start.
	Env []string
}

// StartMinIO starts a private MinIO server on a free loopback port, with its
// data in a temporary folder and random credentials, and makes a bucket on
// it. It is killed and its data removed at t.Cleanup.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOWith(t, MinIOOptions{})
}

// StartMinIOWith is StartMinIO with options.
func StartMinIOWith(t testing.TB, o MinIOOptions) *MinIO {
	t.Helper()
	bin, err := MinIOBin()
	if err != nil {
		if errors.Is(err, errNoMinIO) {
			Unavailable(t, "testenv: this test runs its own MinIO server, but "+err.Error())
			return nil
		}
		t.Fatalf("testenv: %v", err)
	}
	dir := t.TempDir()
	m := &MinIO{
		bin:      bin,
		dir:      dir,
		user:     "kiln" + randomHex(4),
		password: randomHex(16),
		logPath:  filepath.Join(dir, "log"),
		env:      slices.Clone(o.Env),
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: private MinIO log, last lines:%s", logTail(m.logPath, 0))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.proc != nil {
			if err := m.proc.kill(); err != nil {
				t.Errorf("testenv: private MinIO: %v", err)
			}
			m.proc = nil
		}
	})

	// Another process may take a port between our choosing it and MinIO
	// listening on it; then choose again.
	for attempt := 1; ; attempt++ {
		m.port, err = freePort()
		if err == nil {
			m.consolePort, err = freePort()
		}
		if err != nil {
			t.Fatalf("testenv: find a free port: %v", err)
		}
		if m.port == m.consolePort {
			continue
		}
		err = m.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("testenv: start private MinIO: %v", err)
		}
	}

	_, client, err := s3Client(m.URL())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := client.MakeBucket(ctx, minioBucket, minio.MakeBucketOptions{Region: minioRegion}); err != nil {
		t.Fatalf("testenv: create bucket %s on private MinIO: %v", minioBucket, err)
	}
	return m
}

// URL returns the s3:// URL of the server's bucket, credentials included,
// which stays the same across restarts.
func (m *MinIO) URL() string {
	q := url.Values{}
	q.Set("endpoint", m.endpoint())
	q.Set("region", minioRegion)
	q.Set("secure", "false")
	u := url.URL{
		Scheme:   "s3",
		User:     url.UserPassword(m.user, m.password),
		Host:     minioBucket,
		RawQuery: q.Encode(),
	}
	return u.String()
}

func (m *MinIO) endpoint() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

// Stop stops the server cleanly: SIGTERM, then SIGKILL after
// ProcessStopTimeout.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		t.Fatalf("testenv: stop private MinIO: it is not running")
	}
	m.proc.Stop(t)
	m.proc = nil
}

// Crash kills the server with SIGKILL, as a crash would.
func (m *MinIO) Crash(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		t.Fatalf("testenv: kill private MinIO: it is not running")
	}
	m.proc.Kill(t)
	m.proc = nil
}

// Start starts the stopped server again, on the same port and data, and
// waits until it serves requests. It fails t if something else has taken
// the port meanwhile.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		t.Fatalf("testenv: start private MinIO: it is already running")
	}
	if err := m.start(); err != nil {
		t.Fatalf("testenv: start private MinIO again: %v", err)
	}
}

// Restart stops the server cleanly and starts it again.
func (m *MinIO) Restart(t testing.TB) {
	t.Helper()
	m.Stop(t)
	m.Start(t)
}

// start runs the server and waits until it serves requests. The caller
// holds m.mu or owns m alone.
func (m *MinIO) start() error {
	// Only the S3 port: with MINIO_BROWSER=off nothing listens on the
	// console's.
	if err := portFree(m.port); err != nil {
		return fmt.Errorf("%w: cannot listen on %s: %v", errPortTaken, m.endpoint(), err)
	}
	logStart := fileSize(m.logPath)
	log, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the server has its own descriptor
	cmd := exec.Command(m.bin, "server", filepath.Join(m.dir, "data"),
		"--address", m.endpoint(),
		"--console-address", "127.0.0.1:"+strconv.Itoa(m.consolePort),
		"--certs-dir", filepath.Join(m.dir, "certs"), // not ~/.minio/certs
	)
	cmd.Env = append(EnvironWithout("MINIO_"),
		"MINIO_ROOT_USER="+m.user,
		"MINIO_ROOT_PASSWORD="+m.password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Env = append(cmd.Env, m.env...)
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := startProcess(cmd, syscall.SIGKILL)
	if err != nil {
		return err
	}
	// /minio/health/live answers 200 before the server can serve
	// requests; /minio/health/cluster waits for that.
	health := "http://" + m.endpoint() + "/minio/health/cluster"
	err = proc.waitReady(readyTimeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", health, resp.Status)
		}
		return nil
	})
	if err != nil {
		_ = proc.kill()
		tail := logTail(m.logPath, logStart)
		if strings.Contains(strings.ToLower(tail), "address already in use") {
			return fmt.Errorf("%w: %s%s", errPortTaken, m.endpoint(), tail)
		}
		return fmt.Errorf("on %s: %v%s", m.endpoint(), err, tail)
	}
	m.proc = proc
	return nil
}

var errNoMinIO = errors.New("no MinIO binary")

// MinIOBin returns the MinIO server binary: EnvMinIOBin, else the one
// scripts/install-minio.sh caches.
func MinIOBin() (string, error) {
	if bin := os.Getenv(EnvMinIOBin); bin != "" {
		if err := executable(bin); err != nil {
			return "", fmt.Errorf("%s: %w", EnvMinIOBin, err)
		}
		return bin, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%w: %s is not set, and %v", errNoMinIO, EnvMinIOBin, err)
		}
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "kiln", "minio", minioVersion, "minio")
	if err := executable(bin); err != nil {
		return "", fmt.Errorf("%w: %s is not set, and scripts/install-minio.sh has not built %s (%v). "+
			"Run the tests with `make test`, or run scripts/install-minio.sh (several minutes) first",
			errNoMinIO, EnvMinIOBin, bin, err)
	}
	return bin, nil
}

// executable says whether path is a file someone may execute.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// EnvironWithout returns the environment less the variables whose names
// start with prefix, for a subprocess that must not inherit them.
func EnvironWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}
