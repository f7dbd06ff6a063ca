package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
)

// TestProjectIsolation is driven from the OpenAPI document, so that a new
// route cannot skip it: a key of project A calls every route against the
// resources of project B. Every answer is a 404, or a list without B's
// resources; routes that hold no project's data (models, conquest
// definitions) answer as for anyone, and curation's routes refuse API
// keys. B's data is the same afterwards, on both backends.
func TestProjectIsolation(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
				c.InboxPrefix = "inbox/"
				c.WebhookAllowPrivate = true // the receiver below is on loopback
			}})
			ctx := context.Background()
			keyOf := func(name string) string {
				p := store.Project{ID: ids.New(ids.Project), Name: name}
				require.NoError(t, env.App.Store.ProjectCreate(ctx, p))
				_, secret, err := apikey.New(ctx, env.App.Store, store.APIKey{Name: name, ProjectID: p.ID})
				require.NoError(t, err)
				return secret
			}
			keyA, keyB := keyOf("A"), keyOf("B")
			b := seedProject(t, env, keyB)
			before := snapshot(t, env, keyB)

			doc := env.App.API.OpenAPI()
			paths := make([]string, 0, len(doc.Paths))
			for p := range doc.Paths {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, path := range paths {
				for method, op := range operations(doc.Paths[path]) {
					t.Run(op.OperationID, func(t *testing.T) {
						url, body := b.request(path, op)
						status, raw := call(t, method, env.Base()+url, keyA, body)
						switch kind := classify(path, method, op); kind {
						case "scoped":
							require.Equal(t, http.StatusNotFound, status, "%s %s: %s", method, url, raw)
						case "list":
							require.Equal(t, http.StatusOK, status, "%s %s: %s", method, url, raw)
							for _, id := range b.ids() {
								require.NotContains(t, raw, id, "%s %s lists B's %s", method, url, id)
							}
						case "curation", "admin":
							require.Equal(t, http.StatusUnauthorized, status, "%s %s: %s", method, url, raw)
						case "global":
							require.Less(t, status, 500, "%s %s: %s", method, url, raw)
							for _, id := range b.ids() {
								require.NotContains(t, raw, id)
							}
						default:
							t.Fatalf("%s %s: no rule says how a route of this kind must answer another project (%s)", method, path, kind)
						}
					})
				}
			}
			require.Equal(t, before, snapshot(t, env, keyB), "B's data changed")
		})
	}
}

// classify says what a route must answer project A about B's resources.
func classify(path, method string, op *huma.Operation) string {
	switch {
	case path == "/v1/curation/session" && method == http.MethodPost:
		return "global" // signing in takes a curator key, not an API key
	case strings.HasPrefix(path, "/v1/curation/"):
		return "curation"
	case strings.HasPrefix(path, "/v1/organization/"):
		return "admin" // the Administration API refuses API keys
	case path == "/v1/models" || path == "/v1/agents" || path == "/v1/conquests" || path == "/v1/conquests/{type}":
		return "global"
	case path == "/v1/conquests/{type}/requests":
		return "global" // builds A's own requests from A's records
	case strings.Contains(path, "{"):
		return "scoped"
	case path == "/v1/object_events":
		return "scoped" // the inbox is the default project's
	case method == http.MethodGet:
		return "list"
	case path == "/v1/batches":
		return "scoped" // B's input file
	case method == http.MethodPost && (path == "/v1/files" || path == "/v1/uploads" || path == "/v1/webhook_endpoints"):
		return "global" // makes A's own; the body names nothing of B's
	}
	return "unknown: " + method
}

// projectB is what B made, by the path parameter names that refer to it.
type projectB struct {
	file, batch, upload, part, endpoint, delivery, event, invocation string
}

func (b projectB) ids() []string {
	return []string{b.file, b.batch, b.upload, b.part, b.endpoint, b.delivery, b.event, b.invocation}
}

// request is the route's URL with B's IDs in its path, and a body that
// names B's resources where the route takes one.
func (b projectB) request(path string, op *huma.Operation) (string, string) {
	for name, id := range map[string]string{"file_id": b.file, "batch_id": b.batch, "upload_id": b.upload, "endpoint_id": b.endpoint,
		"delivery_id": b.delivery, "event_id": b.event, "invocation_id": b.invocation, "type": "email_evaluation",
		"task_id": "task_x", "export_id": "export_x", "curator_id": "cur_x"} {
		path = strings.ReplaceAll(path, "{"+name+"}", id)
	}
	body := map[string]any{}
	switch op.OperationID {
	case "createBatch":
		body = map[string]any{"input_file_id": b.file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
	case "completeUpload":
		body = map[string]any{"part_ids": []string{b.part}}
	case "presignUploadParts":
		body = map[string]any{"count": 1}
	case "testWebhookEndpoint":
		body = map[string]any{"event_type": "batch.completed"}
	case "createWebhookEndpoint":
		body = map[string]any{"url": "http://127.0.0.1:9/a", "event_types": []string{"batch.completed"}}
	case "createUpload":
		body = map[string]any{"bytes": 1, "filename": "a", "mime_type": "text/plain", "purpose": "batch"}
	case "buildConquestRequests":
		body = map[string]any{"records": []any{}}
	case "receiveObjectEvents":
		body = map[string]any{"Records": []any{}}
	}
	raw, _ := json.Marshal(body)
	return path, string(raw)
}

// seedProject makes one of everything in the key's project: a finished
// batch with its files and events, a pending upload with a part, a webhook
// endpoint with a delivery.
func seedProject(t *testing.T, env *kilntest.Env, key string) projectB {
	t.Helper()
	ctx := context.Background()
	recv := httptestReceiver(t)
	c := openai.NewClient(option.WithBaseURL(env.URL+"/"), option.WithAPIKey(key))
	var b projectB
	var ep struct {
		ID string `json:"id"`
	}
	kilntest.Call(t, env.Base(), key, http.MethodPost, "/v1/webhook_endpoints", map[string]any{"url": recv, "event_types": []string{"batch.completed"}}, 200, &ep)
	b.endpoint = ep.ID
	batch := createBatch(t, c, chatLines(3, 0), "24h")
	b.batch, b.file = batch.ID, batch.InputFileID
	done := kilntest.WaitBatch(t, c, batch.ID)
	require.Equal(t, openai.BatchStatusCompleted, done.Status)
	u, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 3, Filename: "p.jsonl", MimeType: "text/plain", Purpose: openai.FilePurposeBatch})
	require.NoError(t, err)
	part, err := c.Uploads.Parts.New(ctx, u.ID, openai.UploadPartNewParams{Data: bytes.NewReader([]byte("abc"))})
	require.NoError(t, err)
	b.upload, b.part = u.ID, part.ID
	var evs, invs, dels struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	kilntest.Eventually(t, kilntestWait, func() bool {
		kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/webhook_endpoints/"+b.endpoint+"/deliveries", nil, 200, &dels)
		return len(dels.Data) > 0
	}, "a delivery to B's endpoint")
	// Settled, so that a snapshot of B's data stays put unless someone
	// changes it.
	kilntest.Eventually(t, kilntestWait, func() bool {
		var pending struct {
			Data []json.RawMessage `json:"data"`
		}
		kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/function_invocations?status=pending", nil, 200, &pending)
		kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/webhook_endpoints/"+b.endpoint+"/deliveries?status=pending", nil, 200, &dels)
		return len(pending.Data) == 0 && len(dels.Data) == 0
	}, "B's invocations and deliveries to finish")
	kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/webhook_endpoints/"+b.endpoint+"/deliveries", nil, 200, &dels)
	kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/events?type=batch.completed", nil, 200, &evs)
	kilntest.Call(t, env.Base(), key, http.MethodGet, "/v1/function_invocations", nil, 200, &invs)
	require.NotEmpty(t, evs.Data)
	require.NotEmpty(t, invs.Data)
	b.event, b.invocation, b.delivery = evs.Data[0].ID, invs.Data[0].ID, dels.Data[0].ID
	return b
}

// snapshot is what B's key lists of B's data.
func snapshot(t *testing.T, env *kilntest.Env, key string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, path := range []string{"/v1/files", "/v1/batches", "/v1/webhook_endpoints", "/v1/events", "/v1/function_invocations"} {
		var raw json.RawMessage
		kilntest.Call(t, env.Base(), key, http.MethodGet, path, nil, 200, &raw)
		out[path] = string(raw)
	}
	return out
}

func call(t *testing.T, method, url, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

const kilntestWait = time.Minute

// httptestReceiver is a loopback webhook receiver that takes everything.
func httptestReceiver(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hooks"
}
