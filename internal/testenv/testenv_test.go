package testenv

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

func TestS3URL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	var bucketURL string
	ok := t.Run("Use", func(t *testing.T) {
		bucketURL = S3URL(t)
		other := S3URL(t)
		require.NotEqual(t, bucketURL, other, "each call gets its own bucket")

		u, client, err := s3Client(bucketURL)
		require.NoError(t, err)
		require.Regexp(t, `^[a-z0-9-]+-[0-9a-f]{12}$`, u.Host)
		exists, err := client.BucketExists(ctx, u.Host)
		require.NoError(t, err)
		require.True(t, exists)

		// Leave an object and an unfinished upload for the cleanup.
		_, err = client.PutObject(ctx, u.Host, "a/b", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		require.NoError(t, err)
		_, err = minio.Core{Client: client}.NewMultipartUpload(ctx, u.Host, "c", minio.PutObjectOptions{})
		require.NoError(t, err)
	})
	if !ok || bucketURL == "" { // failed or skipped
		return
	}

	u, client, err := s3Client(bucketURL)
	require.NoError(t, err)
	exists, err := client.BucketExists(ctx, u.Host)
	require.NoError(t, err)
	require.False(t, exists, "bucket %s outlived its test", u.Host)
}

func TestPostgresURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	var dbURL string
	ok := t.Run("Use", func(t *testing.T) {
		dbURL = PostgresURL(t)
		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		// Left open until the parent test ends: the drop must not wait
		// for it.
		t.Cleanup(func() { _ = conn.Close(context.Background()) })

		var name string
		var tables int
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`,
		).Scan(&name, &tables))
		require.Regexp(t, `^kiln_test_[0-9a-f]{16}$`, name)
		require.Zero(t, tables)
		_, err = conn.Exec(ctx, "CREATE TABLE t (id int)")
		require.NoError(t, err)

		require.NotEqual(t, dbURL, PostgresURL(t), "each call gets its own database")
	})
	if !ok || dbURL == "" { // failed or skipped
		return
	}

	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	require.Zero(t, n, "database %s outlived its test", name)
}

// fakeT records what serverURL does to a test. Unlike testing.T, its Skip and
// Fatal return.
type fakeT struct {
	skipped, fatal string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Skip(args ...any)                  { f.skipped = fmt.Sprint(args...) }
func (f *fakeT) Fatal(args ...any)                 { f.fatal = fmt.Sprint(args...) }
func (f *fakeT) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

// Without a server the test fails, unless skipping is asked for.
func TestServerURLUnavailable(t *testing.T) {
	if dockerHealthy() == nil {
		t.Skip("Docker is available here, so a container would be started")
	}
	t.Setenv(EnvS3URL, "")
	start := func() (string, error) { panic("no container without Docker") }

	t.Setenv(EnvAllowSkip, "")
	var f fakeT
	require.Empty(t, serverURL(&f, "S3", EnvS3URL, start))
	require.Empty(t, f.skipped)
	require.Contains(t, f.fatal, "make test")
	require.Contains(t, f.fatal, EnvS3URL)
	require.Contains(t, f.fatal, EnvAllowSkip+"=1")

	t.Setenv(EnvAllowSkip, "1")
	f = fakeT{}
	require.Empty(t, serverURL(&f, "S3", EnvS3URL, start))
	require.Empty(t, f.fatal)
	require.Contains(t, f.skipped, "make test")
}

func TestServerURLFromEnv(t *testing.T) {
	t.Setenv(EnvDatabaseURL, "postgres://example/db")
	var f fakeT
	require.Equal(t, "postgres://example/db", serverURL(&f, "Postgres", EnvDatabaseURL, nil))
	require.Empty(t, f.fatal)
	require.Empty(t, f.skipped)
}
