package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// The images of the containers started when no server is configured. The
// containers live as long as the test binary: testcontainers' reaper (Ryuk)
// removes them after it exits.
const (
	minioImage    = "minio/minio:RELEASE.2024-01-16T16-07-38Z"
	postgresImage = "postgres:15-alpine"

	// containerTimeout bounds pulling and starting a container.
	containerTimeout = 5 * time.Minute
)

var dockerHealthy = sync.OnceValue(func() (err error) {
	// testcontainers panics on some broken Docker setups.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return err
	}
	defer provider.Close()
	return provider.Health(ctx)
})

// The servers in containers, each started once per test binary on first
// use. They return the base URL.
var (
	s3Container       = sync.OnceValues(startMinio)
	postgresContainer = sync.OnceValues(startPostgres)
)

func startMinio() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	user, password := "kiln"+randomHex(4), randomHex(16)
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        minioImage,
			ExposedPorts: []string{"9000/tcp"},
			Env: map[string]string{
				"MINIO_ROOT_USER":     user,
				"MINIO_ROOT_PASSWORD": password,
				"MINIO_BROWSER":       "off",
			},
			Cmd:        []string{"server", "/data"},
			WaitingFor: wait.ForHTTP("/minio/health/live").WithPort("9000/tcp"),
		},
		Started: true,
	})
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("%s: %w", minioImage, err)
	}
	endpoint, err := c.PortEndpoint(ctx, "9000/tcp", "")
	if err != nil {
		return "", fmt.Errorf("%s: %w", minioImage, err)
	}
	return fmt.Sprintf("s3://%s:%s@kiln-test?endpoint=%s&secure=false", user, password, endpoint), nil
}

func startPostgres() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        postgresImage,
			ExposedPorts: []string{"5432/tcp"},
			Env:          map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"},
			// Durability is worthless in a throwaway test server.
			Cmd: []string{
				"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off",
				"-c", "full_page_writes=off", "-c", "max_connections=200",
			},
			// The entrypoint restarts the server once after initdb.
			WaitingFor: wait.ForAll(
				wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
				wait.ForListeningPort("5432/tcp"),
			),
		},
		Started: true,
	})
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return "", fmt.Errorf("%s: %w", postgresImage, err)
	}
	endpoint, err := c.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		return "", fmt.Errorf("%s: %w", postgresImage, err)
	}
	return "postgres://postgres@" + endpoint + "/postgres?sslmode=disable", nil
}
