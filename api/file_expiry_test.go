package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/jobs"
)

// TestFileExpirySDK: expires_after and output_expires_after as OpenAI's
// SDK sends them, their bounds, and the files going at their expires_at,
// with kiln's clock moved forward instead of waiting.
func TestFileExpirySDK(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{})
			c := env.Client()
			ctx := context.Background()
			requireInvalid := func(err error, param string) {
				t.Helper()
				var apiErr *openai.Error
				require.ErrorAs(t, err, &apiErr)
				require.Equal(t, http.StatusBadRequest, apiErr.StatusCode, apiErr.RawJSON())
				require.Equal(t, param, apiErr.Param, apiErr.RawJSON())
			}
			input := func(after int64) *openai.FileObject {
				t.Helper()
				p := openai.FileNewParams{File: openai.File(bytes.NewReader(chatLines(3, 2)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch}
				if after != 0 {
					p.ExpiresAfter = openai.FileNewParamsExpiresAfter{Seconds: after}
				}
				f, err := c.Files.New(ctx, p)
				if err != nil {
					requireInvalid(err, "expires_after.seconds")
					return nil
				}
				return f
			}

			t.Run("out of range", func(t *testing.T) {
				require.Nil(t, input(3599))
				require.Nil(t, input(2592001))
				_, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 3, Filename: "u.txt", MimeType: "text/plain", Purpose: openai.FilePurposeUserData,
					ExpiresAfter: openai.UploadNewParamsExpiresAfter{Seconds: 60}})
				requireInvalid(err, "expires_after.seconds")
				var bad map[string]any
				kilntest.Call(t, env.Base(), env.Key, http.MethodPost, "/v1/uploads", map[string]any{"bytes": 3, "filename": "u.txt",
					"mime_type": "text/plain", "purpose": "user_data", "expires_after": map[string]any{"anchor": "last_active_at", "seconds": 3600}},
					http.StatusBadRequest, &bad)
				require.Equal(t, "expires_after.anchor", bad["error"].(map[string]any)["param"])

				f := input(0)
				_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
					CompletionWindow: openai.BatchNewParamsCompletionWindow24h, OutputExpiresAfter: openai.BatchNewParamsOutputExpiresAfter{Seconds: 10}})
				requireInvalid(err, "output_expires_after.seconds")
				_, err = c.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
					CompletionWindow: openai.BatchNewParamsCompletionWindow24h, OutputExpiresAfter: openai.BatchNewParamsOutputExpiresAfter{Seconds: 2592001}})
				requireInvalid(err, "output_expires_after.seconds")
			})

			t.Run("expiry", func(t *testing.T) {
				expiring := input(3600)
				require.Equal(t, expiring.CreatedAt+3600, expiring.ExpiresAt)
				got, err := c.Files.Get(ctx, expiring.ID)
				require.NoError(t, err)
				require.Equal(t, expiring.ExpiresAt, got.ExpiresAt)

				in := input(0)
				require.Zero(t, in.ExpiresAt, "no expires_after, no retention: kept")
				b, err := c.Batches.New(ctx, openai.BatchNewParams{InputFileID: in.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
					CompletionWindow: openai.BatchNewParamsCompletionWindow24h, OutputExpiresAfter: openai.BatchNewParamsOutputExpiresAfter{Seconds: 7200}})
				require.NoError(t, err)
				b = waitBatch(t, c, b.ID)
				require.Equal(t, openai.BatchStatusCompleted, b.Status)
				var outputs []*openai.FileObject
				for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
					f, err := c.Files.Get(ctx, id)
					require.NoError(t, err)
					require.Equal(t, f.CreatedAt+7200, f.ExpiresAt, id)
					outputs = append(outputs, f)
				}

				// Three hours on, the job deletes them.
				env.App.Batches.SetClock(func() time.Time { return time.Now().Add(3 * time.Hour) })
				require.NoError(t, env.App.Store.Enqueue(ctx, store.Job{Args: jobs.FilesExpireArgs{}}))
				for _, f := range append(outputs, expiring) {
					// The job deletes the row, then the object: wait for both.
					kilntest.Eventually(t, 30*time.Second, func() bool {
						_, err := c.Files.Get(ctx, f.ID)
						_, statErr := env.App.Bucket.Stat(ctx, batch.FileKey(f.ID))
						return err != nil && statErr != nil
					}, "file %s to expire", f.ID)
					_, err := c.Files.Get(ctx, f.ID)
					var apiErr *openai.Error
					require.ErrorAs(t, err, &apiErr)
					require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
					_, err = env.App.Bucket.Stat(ctx, batch.FileKey(f.ID))
					require.ErrorIs(t, err, objectstore.ErrNotExist, "the object goes with the row")
				}
				_, err = c.Files.Get(ctx, in.ID)
				require.NoError(t, err, "a file without expires_at stays")

				evs, _, err := env.App.Store.EventList(ctx, "", store.EventFileExpired, "", 100)
				require.NoError(t, err)
				var expired []string
				for _, ev := range evs {
					var data struct{ ID string }
					require.NoError(t, json.Unmarshal(ev.Data, &data))
					expired = append(expired, data.ID)
				}
				require.ElementsMatch(t, []string{expiring.ID, outputs[0].ID, outputs[1].ID}, expired)
			})
		})
	}
}
