package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/store/storetest"
	"github.com/kilnhq/kiln/internal/testenv"
)

// TestCORSOriginsAtStart: kiln serve checks at start that browsers on
// KILN_CORS_ORIGINS can use the object store's presigned URLs, and warns,
// naming the origin, when they cannot. This MinIO (no per-bucket CORS
// rules to set) allows one origin only.
func TestCORSOriginsAtStart(t *testing.T) {
	t.Parallel()
	const allowed, other = "https://app.example.com", "https://evil.example.com"
	objectStore := testenv.StartMinIOWith(t, testenv.MinIOOptions{Env: []string{"MINIO_API_CORS_ALLOW_ORIGIN=" + allowed}}).URL()

	// start runs New as kiln serve does and returns what it logged.
	start := func(t *testing.T, origins ...string) string {
		t.Helper()
		var logs syncBuffer
		cfg := config.Config{Addr: "127.0.0.1:0", DatabaseURL: storetest.URL(t, "sqlite"), ObjectStore: objectStore,
			APIKey: "sk-kiln-test-key", Agent: "off", CORSOrigins: origins}
		a, err := app.New(t.Context(), cfg, app.Options{Serve: true, Version: "test"}, slog.New(slog.NewTextHandler(&logs, nil)))
		require.NoError(t, err, "an object store without CORS does not stop kiln")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
		return logs.String()
	}

	t.Run("Allowed", func(t *testing.T) {
		t.Parallel()
		require.NotContains(t, start(t, allowed), "KILN_CORS_ORIGINS")
	})
	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		logs := start(t, allowed, other)
		require.Contains(t, logs, "level=WARN")
		require.Contains(t, logs, "browsers on KILN_CORS_ORIGINS cannot use presigned URLs")
		require.Contains(t, logs, "origin "+other+": preflight")
		require.NotContains(t, logs, "origin "+allowed+":")
	})
}

// syncBuffer is a bytes.Buffer that a logger may write from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
