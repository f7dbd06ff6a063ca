// Package testenv gives tests real services (an S3 server and a Postgres
// server), each test isolated in a fresh bucket or database that is removed
// when it ends.
//
// The servers come from, in order:
//
//  1. KILN_TEST_S3_URL and KILN_TEST_DATABASE_URL, which `make test` sets
//     after starting both with scripts/test-services.sh;
//  2. containers started with testcontainers-go, when Docker is available;
//  3. nowhere: the test fails, saying how to get them. With
//     KILN_TEST_ALLOW_SKIP=1 it is skipped instead. A skip reads as a pass,
//     so it is never the default.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	// EnvS3URL names the base S3 URL, like
	// s3://ACCESS:SECRET@kiln-test?endpoint=127.0.0.1:9000&secure=false.
	// Each test gets a fresh bucket named after this one.
	EnvS3URL = "KILN_TEST_S3_URL"
	// EnvDatabaseURL names a Postgres URL to a server where the user may
	// create databases, like
	// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
	EnvDatabaseURL = "KILN_TEST_DATABASE_URL"
	// EnvAllowSkip, set to 1, skips tests that need a service none of the
	// sources provides, rather than failing them.
	EnvAllowSkip = "KILN_TEST_ALLOW_SKIP"

	// setupTimeout bounds creating and dropping a bucket or database.
	setupTimeout = time.Minute
)

// S3URL returns the s3:// URL, credentials included, of a new empty bucket on
// a real S3 server. The bucket and its content are removed at t.Cleanup.
func S3URL(t testing.TB) string {
	t.Helper()
	base := serverURL(t, "an S3", EnvS3URL, s3Container)
	if base == "" {
		return "" // only when t is a fake that does not stop the test
	}
	u, client, err := s3Client(base)
	if err != nil {
		t.Fatalf("testenv: %s: %v", EnvS3URL, err)
	}
	// The longest bucket name S3 allows is 63 bytes.
	suffix := "-" + randomHex(6)
	u.Host = u.Host[:min(len(u.Host), 63-len(suffix))] + suffix
	bucket := u.Host

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: u.Query().Get("region")}); err != nil {
		t.Fatalf("testenv: create bucket %s at %s: %v", bucket, client.EndpointURL().Host, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := removeBucket(ctx, client, bucket); err != nil {
			t.Errorf("testenv: remove bucket %s: %v", bucket, err)
		}
	})
	return u.String()
}

// s3Client parses a base S3 URL, of the form objectstore.Open takes, enough
// to manage buckets.
func s3Client(rawURL string) (*url.URL, *minio.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "s3" || u.Host == "" {
		return nil, nil, fmt.Errorf("%q is not an s3://[ACCESS:SECRET@]bucket?endpoint=host:port URL", u.Redacted())
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	secure := true
	if s := q.Get("secure"); s != "" {
		if secure, err = strconv.ParseBool(s); err != nil {
			return nil, nil, fmt.Errorf("secure: %w", err)
		}
	}
	creds := credentials.NewEnvAWS()
	if u.User != nil {
		secret, _ := u.User.Password()
		creds = credentials.NewStaticV4(u.User.Username(), secret, "")
	}
	client, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: q.Get("region")})
	if err != nil {
		return nil, nil, err
	}
	return u, client, nil
}

// removeBucket empties a bucket, unfinished multipart uploads included, and
// removes it.
func removeBucket(ctx context.Context, client *minio.Client, bucket string) error {
	for obj := range client.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		if err := client.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return err
		}
	}
	for up := range client.ListIncompleteUploads(ctx, bucket, "", true) {
		if up.Err != nil {
			return up.Err
		}
		if err := client.RemoveIncompleteUpload(ctx, bucket, up.Key); err != nil {
			return err
		}
	}
	return client.RemoveBucket(ctx, bucket)
}

// PostgresURL returns the postgres:// URL of a new empty database on a real
// Postgres server. The database is dropped at t.Cleanup, closing any
// connections left open.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := serverURL(t, "a Postgres", EnvDatabaseURL, postgresContainer)
	if base == "" {
		return "" // only when t is a fake that does not stop the test
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: %s must be a postgres:// URL", EnvDatabaseURL)
	}
	name := "kiln_test_" + randomHex(8)
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := pgExec(ctx, base, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := pgExec(ctx, base, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func pgExec(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// serverURL returns the base URL of a server: from env, else from a
// container. When neither is available it fails or skips t and returns "".
func serverURL(t skipFataler, what, env string, start func() (string, error)) string {
	t.Helper()
	if u := os.Getenv(env); u != "" {
		return u
	}
	if err := dockerHealthy(); err != nil {
		Unavailable(t, fmt.Sprintf(
			"testenv: this test needs %s server, but %s is not set and Docker is not available (%v). "+
				"Run the tests with `make test`, which starts Postgres and MinIO for them "+
				"(scripts/test-services.sh run -- go test ./...), or set %s and %s yourself.",
			what, env, err, EnvS3URL, EnvDatabaseURL))
		return ""
	}
	u, err := start()
	if err != nil {
		t.Fatalf("testenv: start %s server in a container: %v", what, err)
	}
	return u
}

// skipFataler is the part of testing.TB that serverURL uses, so that its
// test can watch it.
type skipFataler interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Unavailable fails t for a missing service or tool, or skips it when
// EnvAllowSkip is 1: a skip reads as a pass, so it is never the default.
func Unavailable(t skipFataler, msg string) {
	t.Helper()
	if os.Getenv(EnvAllowSkip) == "1" {
		t.Skip(msg + " Skipping: " + EnvAllowSkip + "=1.")
		return
	}
	t.Fatal(msg + " To skip such tests instead, set " + EnvAllowSkip + "=1.")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
