package objectstore_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/testenv"
)

// TestS3CredentialChain opens an s3:// URL without credentials, so that
// they come from the AWS SDK's default chain: here ECS's container
// credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI with its authorization
// token), served by a loopback endpoint as an ECS agent serves a task
// role's. The store then works against MinIO with them, presigned URLs
// included, and fetches them again before they expire.
// Not parallel: it sets the environment the chain reads.
func TestS3CredentialChain(t *testing.T) {
	withCreds := testenv.S3URL(t)
	u, err := url.Parse(withCreds)
	require.NoError(t, err)
	access := u.User.Username()
	secret, _ := u.User.Password()
	u.User = nil

	const token = "ecs-task-token"
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/credentials/task" || r.Header.Get("Authorization") != token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fetches.Add(1)
		// Expiring within the refresh window: each use fetches anew.
		_ = json.NewEncoder(w).Encode(map[string]string{
			"AccessKeyId": access, "SecretAccessKey": secret, "Token": "",
			"Expiration": time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339),
			"RoleArn":    "arn:aws:iam::123456789012:role/kiln-task",
		})
	}))
	t.Cleanup(srv.Close)

	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored at cleanup
			require.NoError(t, os.Unsetenv(k))
		}
	}
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // never off loopback
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", srv.URL+"/v2/credentials/task")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)

	ctx := context.Background()
	b, err := objectstore.Open(ctx, u.String())
	require.NoError(t, err, "the bucket is reached with the chain's credentials")
	t.Cleanup(func() { _ = b.Close() })
	require.Positive(t, fetches.Load(), "from the ECS endpoint")

	_, err = b.Put(ctx, "dir/a", strings.NewReader("hello"), 5)
	require.NoError(t, err)
	rc, err := b.Get(ctx, "dir/a")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	_, err = b.Compose(ctx, "dir/b", []string{"dir/a", "dir/a"})
	require.NoError(t, err)
	var keys []string
	require.NoError(t, b.List(ctx, "dir/", func(i objectstore.Info) error {
		keys = append(keys, i.Key)
		return nil
	}))
	require.Equal(t, []string{"dir/a", "dir/b"}, keys)

	getURL, err := b.PresignGet(ctx, "dir/b", time.Minute, "")
	require.NoError(t, err)
	resp, err := http.Get(getURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "hellohello", string(body))

	require.NoError(t, b.Delete(ctx, "dir/a"))
	require.NoError(t, b.Delete(ctx, "dir/b"))
	require.Greater(t, fetches.Load(), int32(1), "credentials near their expiry are fetched again")

	t.Run("NoCredentials", func(t *testing.T) {
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
		_, err := objectstore.Open(ctx, u.String())
		require.ErrorContains(t, err, "credential", "a chain that finds nothing says so")
	})
}
