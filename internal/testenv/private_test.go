package testenv

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

func TestStartPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	start := time.Now()
	pg := StartPostgres(t)
	t.Logf("private Postgres started in %s", time.Since(start))
	pgURL := pg.URL()
	require.Regexp(t, `^postgres://postgres@127\.0\.0\.1:\d+/postgres\?sslmode=disable$`, pgURL)

	conn, err := pgx.Connect(ctx, pgURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')")
	require.NoError(t, err)

	// checkRows checks the rows, on a new connection to the same URL.
	want := "kept"
	checkRows := func(t *testing.T) {
		t.Helper()
		conn, err := pgx.Connect(ctx, pg.URL())
		require.NoError(t, err)
		defer conn.Close(ctx)
		var rows string
		require.NoError(t, conn.QueryRow(ctx, "SELECT string_agg(v, ',' ORDER BY v) FROM t").Scan(&rows))
		require.Equal(t, want, rows)
	}

	t.Run("Restart", func(t *testing.T) {
		start := time.Now()
		pg.Restart(t)
		t.Logf("private Postgres restarted in %s", time.Since(start))
		require.Equal(t, pgURL, pg.URL())
		checkRows(t)

		// The connection from before the restart is gone.
		require.Error(t, conn.Ping(ctx))
	})

	t.Run("Crash", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, pgURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		// Committed just before the crash: it must survive.
		_, err = conn.Exec(ctx, "INSERT INTO t VALUES ('committed')")
		require.NoError(t, err)
		want = "committed,kept"
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO t VALUES ('uncommitted')")
		require.NoError(t, err)

		start := time.Now()
		pg.Crash(t)
		t.Logf("private Postgres crashed in %s", time.Since(start))
		require.Error(t, tx.Commit(ctx))

		start = time.Now()
		pg.Start(t)
		t.Logf("private Postgres recovered in %s", time.Since(start))
		checkRows(t) // not the uncommitted row
	})

	t.Run("PortTaken", func(t *testing.T) {
		pg.Stop(t)
		port := pgURL[strings.LastIndex(pgURL, ":")+1 : strings.LastIndex(pgURL, "/")]
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		require.NoError(t, err)

		pg.mu.Lock()
		err = pg.start()
		pg.mu.Unlock()
		require.ErrorIs(t, err, errPortTaken)
		require.ErrorContains(t, err, "127.0.0.1:"+port)

		require.NoError(t, l.Close())
		pg.Start(t)
		checkRows(t)
	})
}

func TestStartMinIO(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	start := time.Now()
	m := StartMinIO(t)
	t.Logf("private MinIO started in %s", time.Since(start))
	s3URL := m.URL()
	require.Regexp(t, `^s3://kiln[0-9a-f]{8}:[0-9a-f]{32}@kiln-test\?endpoint=127\.0\.0\.1%3A\d+&region=us-east-1&secure=false$`, s3URL)

	u, client, err := s3Client(s3URL)
	require.NoError(t, err)
	bucket := u.Host
	_, err = client.PutObject(ctx, bucket, "a/b", strings.NewReader("kept"), 4, minio.PutObjectOptions{})
	require.NoError(t, err)

	checkObject := func(t *testing.T) {
		t.Helper()
		require.Equal(t, s3URL, m.URL())
		obj, err := client.GetObject(ctx, bucket, "a/b", minio.GetObjectOptions{})
		require.NoError(t, err)
		defer obj.Close()
		b, err := io.ReadAll(obj)
		require.NoError(t, err)
		require.Equal(t, "kept", string(b))
	}

	t.Run("Restart", func(t *testing.T) {
		start := time.Now()
		m.Restart(t)
		t.Logf("private MinIO restarted in %s", time.Since(start))
		checkObject(t)
	})

	t.Run("Crash", func(t *testing.T) {
		m.Crash(t)
		_, err := net.Dial("tcp", client.EndpointURL().Host)
		require.Error(t, err, "the server is gone")
		start := time.Now()
		m.Start(t)
		t.Logf("private MinIO started after a crash in %s", time.Since(start))
		checkObject(t)
	})
}

// TestMinIOVersion keeps minioVersion in step with the MinIO that
// scripts/install-minio.sh builds and caches.
func TestMinIOVersion(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile("../../scripts/install-minio.sh")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^version=(\S+)$`).FindSubmatch(script)
	require.NotNil(t, m, "no version= line in scripts/install-minio.sh")
	require.Equal(t, string(m[1]), minioVersion)
}

func TestMinIOBin(t *testing.T) {
	t.Setenv(EnvMinIOBin, "/nonexistent/minio")
	_, err := MinIOBin()
	require.ErrorContains(t, err, EnvMinIOBin)
	require.NotErrorIs(t, err, errNoMinIO, "a wrong setting fails even with "+EnvAllowSkip+"=1")

	t.Setenv(EnvMinIOBin, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	_, err = MinIOBin()
	require.ErrorIs(t, err, errNoMinIO)
	require.ErrorContains(t, err, "install-minio.sh")
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	require.Positive(t, compareVersions("10", "9.6"))
	require.Positive(t, compareVersions("16", "15"))
	require.Negative(t, compareVersions("15", "15.1"))
	require.Zero(t, compareVersions("15", "15"))
}

func TestProcess(t *testing.T) {
	t.Parallel()

	t.Run("Stop", func(t *testing.T) {
		t.Parallel()
		p := StartProcess(t, exec.Command("sleep", "60"))
		require.NoError(t, p.Err())
		p.Stop(t)
		<-p.Done()
		var exit *exec.ExitError
		require.ErrorAs(t, p.Err(), &exit)
		require.Equal(t, syscall.SIGTERM, exit.Sys().(syscall.WaitStatus).Signal())
		p.Stop(t) // no-op once exited
	})

	t.Run("Kill", func(t *testing.T) {
		t.Parallel()
		// A shell that ignores SIGTERM still dies.
		p := StartProcess(t, exec.Command("sh", "-c", `trap "" TERM; sleep 60 & wait`))
		p.Kill(t)
		var exit *exec.ExitError
		require.ErrorAs(t, p.Err(), &exit)
		require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal())
	})

	t.Run("Cleanup", func(t *testing.T) {
		t.Parallel()
		var p *Process
		t.Run("Owner", func(t *testing.T) {
			p = StartProcess(t, exec.Command("sleep", "60"))
		})
		select {
		case <-p.Done():
		default:
			t.Fatal("the process outlived its test")
		}
	})
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	require.Less(t, port, ephemeralPortsLow(), "below the ephemeral range")
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	defer l.Close()
	require.ErrorIs(t, portFree(port), syscall.EADDRINUSE)
}

func TestPGBinDir(t *testing.T) {
	t.Setenv(EnvPGBinDir, t.TempDir())
	_, err := pgBinDir()
	require.ErrorContains(t, err, EnvPGBinDir)
	require.NotErrorIs(t, err, errNoPostgres, "a wrong setting fails even with "+EnvAllowSkip+"=1")
}
