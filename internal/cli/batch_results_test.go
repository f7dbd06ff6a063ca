package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/llmsim"
)

// resultLine is what these tests read of an output or error line.
type resultLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int `json:"status_code"`
	} `json:"response"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
}

func readResultLines(t *testing.T, data []byte) []resultLine {
	t.Helper()
	var out []resultLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l resultLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		out = append(out, l)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestBatchRetryMerged: a batch that expires part-way is retried with
// kiln batch retry; the retry is cancelled and retried in turn, and that
// retry completes. kiln batch download --merged then writes every
// custom_id exactly once, each its success; kiln batch tail and download
// --partial read the results by cursor, each line once.
func TestBatchRetryMerged(t *testing.T) {
	t.Parallel()
	// Slow enough that a 3-second window ends with requests left, and that
	// a retry is still running when the test cancels it: two sequences of
	// 150 ms each are at most 13 requests a second.
	env := kilntest.Start(t, "sqlite", kilntest.Options{Sim: &llmsim.Config{Models: app.SimModels, MaxNumSeqs: 2,
		TTFT: 150 * time.Millisecond, TPOT: -1}})
	base := strings.TrimSuffix(env.URL, "/v1")
	flags := []string{"--url", base, "--key", env.Key}
	const n = 100
	input := writeRequests(t, n, "sim-model")

	code, out, errOut := kiln(t, append([]string{"batch", "submit", input, "--window", "3s", "--wait"}, flags...)...)
	require.Equal(t, 1, code, errOut)
	first := strings.TrimSpace(out)
	require.Equal(t, "expired", batchStatus(t, env, first))

	// kiln batch tail reads every line of the ended batch once.
	code, out, errOut = kiln(t, append([]string{"batch", "tail", first}, flags...)...)
	require.Equal(t, 0, code, errOut)
	tailed := readResultLines(t, []byte(out))
	require.Len(t, tailed, n)
	expired := 0
	for _, l := range tailed {
		if l.Error != nil && l.Error.Code == "batch_expired" {
			expired++
		}
	}
	require.Positive(t, expired, "the window ended with requests left")
	require.Contains(t, errOut, fmt.Sprintf("batch %s expired: %d lines", first, n))

	code, out, errOut = kiln(t, append([]string{"batch", "retry", first, "--code", "batch_expired", "--window", "24h"}, flags...)...)
	require.Equal(t, 0, code, errOut)
	second := strings.TrimSpace(out)
	require.Regexp(t, `^batch_\w+$`, second)
	code, _, errOut = kiln(t, append([]string{"batch", "retry", first}, flags...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "batch_already_retried")

	for deadline := time.Now().Add(time.Minute); batchStatus(t, env, second) == "validating"; {
		require.True(t, time.Now().Before(deadline), "the retry is still validating")
	}
	kilntest.Call(t, env.Base(), env.Key, "POST", "/v1/batches/"+second+"/cancel", nil, 200, nil)
	code, _, errOut = kiln(t, append([]string{"batch", "wait", second}, flags...)...)
	require.Equal(t, 1, code, errOut)
	require.Equal(t, "cancelled", batchStatus(t, env, second))

	// --partial of an ended batch is all of it.
	dir := t.TempDir()
	code, out, errOut = kiln(t, append([]string{"batch", "download", second, "--partial", "--dir", dir}, flags...)...)
	require.Equal(t, 0, code, errOut)
	partial, err := os.ReadFile(filepath.Join(dir, second+"_partial.jsonl"))
	require.NoError(t, err)
	require.Len(t, readResultLines(t, partial), expired)
	require.Equal(t, filepath.Join(dir, second+"_partial.jsonl")+"\n", out)

	code, out, errOut = kiln(t, append([]string{"batch", "retry", second, "--wait", "--window", "24h"}, flags...)...)
	require.Equal(t, 0, code, errOut)
	third := strings.Split(strings.TrimSpace(out), "\n")[0]
	require.Equal(t, "completed", batchStatus(t, env, third))

	code, out, errOut = kiln(t, append([]string{"batch", "download", first, "--merged", "--dir", dir}, flags...)...)
	require.Equal(t, 0, code, errOut)
	merged, err := os.ReadFile(strings.TrimSpace(out))
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, l := range readResultLines(t, merged) {
		require.False(t, ids[l.CustomID], "custom_id %s twice", l.CustomID)
		ids[l.CustomID] = true
		require.NotNil(t, l.Response, "%s: its newest success", l.CustomID)
		require.Equal(t, 200, l.Response.StatusCode)
	}
	require.Len(t, ids, n, "every custom_id once")
	require.Contains(t, errOut, fmt.Sprintf("3 batches merged: %d requests, %d succeeded, 0 failed", n, n))
}
