package modtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// batchTimeout bounds a two-request batch on the simulator, from creation
// to completed, agent start-up and engine start included.
const batchTimeout = 3 * time.Minute

// TestBoxPlusAgentRunsABatch is examples/box-plus-gpu in two throwaway
// roots: kiln-host with agent_cidr (its PostgreSQL and MinIO let agents in
// with the passwords given) and kiln-gpu-agent wired to the host's
// agent_database_url and agent_object_store_url, both rendered by one tofu
// apply and started by their start-up scripts ("direct", no systemd). The
// agent's engine is `kiln sim` (engine = "command", require_gpu = false)
// in place of vLLM, which cannot run here. A batch sent to the host's API
// completes, so the agent claimed it through the database and wrote its
// results to the host's MinIO. Everything stays on 127.0.0.1.
func TestBoxPlusAgentRunsABatch(t *testing.T) {
	t.Parallel()
	minio := hostPrereqs(t)
	kiln := buildKiln(t)
	boxRoot, gpuRoot := throwawayRoot(t), throwawayRoot(t)

	apiPort, pgPort, minioPort, metricsPort := freePort(t), freePort(t), freePortPair(t), freePort(t)
	outs := applyRoot(t, map[string]map[string]any{
		"box": withSource(t, "kiln-host", map[string]any{
			"root":                boxRoot,
			"service_manager":     "direct",
			"install_packages":    false,
			"tls_mode":            "none",
			"public_url":          fmt.Sprintf("http://127.0.0.1:%d", apiPort),
			"listen_addr":         fmt.Sprintf("127.0.0.1:%d", apiPort),
			"postgres_port":       pgPort,
			"minio_port":          minioPort,
			"kiln_binary_url":     "file://" + kiln,
			"minio_binary_url":    "file://" + minio,
			"agent_cidr":          "127.0.0.0/8",
			"private_host":        "127.0.0.1",
			"postgres_password":   "pg-" + randomHex(t, 12),
			"minio_root_password": "minio-" + randomHex(t, 12),
		}),
		"gpu": withSource(t, "kiln-gpu-agent", map[string]any{
			"root":             gpuRoot,
			"service_manager":  "direct",
			"install_packages": false,
			"require_gpu":      false,
			"kiln_binary_url":  "file://" + kiln,
			"database_url":     "${module.box.agent_database_url}",
			"object_store_url": "${module.box.agent_object_store_url}",
			"models":           []string{"sim-model"},
			"max_num_seqs":     16,
			"engine":           "command",
			"engine_command":   kiln + " sim --addr {{.Host}}:{{.Port}} --models {{.Model}} --max-num-seqs {{.MaxNumSeqs}}",
			"metrics_addr":     fmt.Sprintf("127.0.0.1:%d", metricsPort),
		}),
	}, "box.user_data", "gpu.user_data")

	runSetup(t, boxRoot, outs["box.user_data"], "kiln", "minio", "postgres")
	runSetup(t, gpuRoot, outs["gpu.user_data"], "kiln-agent")

	// The agent's settings hold the host's database and bucket, given by
	// the host's outputs; its unit does not.
	agentEnv, err := os.ReadFile(filepath.Join(gpuRoot, "etc/kiln/agent.env"))
	require.NoError(t, err)
	require.Contains(t, string(agentEnv), fmt.Sprintf("@127.0.0.1:%d/kiln", pgPort))
	require.Contains(t, string(agentEnv), fmt.Sprintf("endpoint=127.0.0.1:%d", minioPort))

	key := makeKey(t, boxRoot)
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	api := fmt.Sprintf("http://127.0.0.1:%d/v1", apiPort)

	var input bytes.Buffer
	for i := range 2 {
		fmt.Fprintf(&input, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-model","messages":[{"role":"user","content":"hi %d"}]}}`+"\n", i, i)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	require.NoError(t, mw.WriteField("purpose", "batch"))
	fw, err := mw.CreateFormFile("file", "requests.jsonl")
	require.NoError(t, err)
	_, err = fw.Write(input.Bytes())
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	var file struct{ ID string }
	call(ctx, t, key, http.MethodPost, api+"/files", mw.FormDataContentType(), &body, &file)

	var batch struct {
		ID            string
		Status        string
		RequestCounts struct{ Total, Completed, Failed int } `json:"request_counts"`
	}
	req, err := json.Marshal(map[string]string{"input_file_id": file.ID, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
	require.NoError(t, err)
	call(ctx, t, key, http.MethodPost, api+"/batches", "application/json", bytes.NewReader(req), &batch)

	for batch.Status != "completed" {
		require.NotContains(t, []string{"failed", "expired", "cancelled"}, batch.Status)
		select {
		case <-ctx.Done():
			t.Fatalf("batch %s is still %s after %s", batch.ID, batch.Status, batchTimeout)
		case <-time.After(200 * time.Millisecond): // a poll interval, not synchronisation
		}
		call(ctx, t, key, http.MethodGet, api+"/batches/"+batch.ID, "", nil, &batch)
	}
	require.Equal(t, 2, batch.RequestCounts.Total)
	require.Equal(t, 2, batch.RequestCounts.Completed)
}

// call sends one API request with key and decodes a 200's JSON into out.
func call(ctx context.Context, t testing.TB, key, method, url, contentType string, body io.Reader, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, url, b)
	require.NoError(t, json.Unmarshal(b, out), "%s", b)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
