package faulttest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestResultsTailAcrossAgentKill tails a running 5,000-request batch
// through GET /v1/batches/{id}/results, cursor after cursor, while its
// `kiln agent` is SIGKILLed twice and restarted. The lines the tail got, in
// the order it got them, hold no line twice, and as a set they are the
// final output and error files' lines, byte for byte. Both backends.
func TestResultsTailAcrossAgentKill(t *testing.T) {
	t.Parallel()
	bin := kilntest.KilnBinary(t)
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			const n = 5000
			env := kilntest.Start(t, backend, kilntest.Options{NoAgent: true, Configure: func(cfg *config.Config) {
				cfg.ShardSize = 250
			}})
			sim := startSim(t)
			c := client(env)
			id := createBatch(t, c, n)
			startAgent := agentStarter(t, env, bin, sim.url)

			type tailed struct {
				lines []string
				pages int
				err   error
			}
			done := make(chan tailed, 1)
			go func() {
				var got tailed
				after := ""
				for {
					page, next, fin, err := tailPage(env, id, after)
					if err != nil {
						got.err = err
						done <- got
						return
					}
					got.lines = append(got.lines, page...)
					got.pages++
					after = next
					if fin {
						done <- got
						return
					}
				}
			}()

			agent := startAgent()
			for kill := range 2 {
				target := sim.completed() + n/5
				poll(t, "the agent's answers", func() (bool, error) { return sim.completed() >= target, nil })
				agent.Kill(t)
				t.Logf("kill %d after %d answers", kill+1, sim.completed())
				agent = startAgent()
			}
			b := waitBatch(t, c, id)
			requireCompleted(t, c, b, n)
			got := <-done
			require.NoError(t, got.err)

			final := map[string]bool{}
			for _, fileID := range []string{b.OutputFileID, b.ErrorFileID} {
				if fileID == "" {
					continue
				}
				resp, err := c.Files.Content(context.Background(), fileID)
				require.NoError(t, err)
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NoError(t, err)
				for _, l := range strings.SplitAfter(string(body), "\n") {
					if l != "" {
						final[l] = true
					}
				}
			}
			require.Len(t, final, n)
			seen := map[string]bool{}
			for i, l := range got.lines {
				require.False(t, seen[l], "line %d of the tail came twice: %s", i, l)
				seen[l] = true
				require.True(t, final[l], "line %d of the tail is in neither final file, byte for byte: %s", i, l)
			}
			require.Len(t, seen, n, "the tail got every line of the final files")
			t.Logf("%d lines tailed in %d answers", len(got.lines), got.pages)
		})
	}
}

// tailPage asks for the results after a cursor, waiting for them, and
// returns the answer's lines, the next cursor and whether the results have
// ended. An answer with fewer lines than it announced is an error.
func tailPage(env *kilntest.Env, id, after string) ([]string, string, bool, error) {
	req, err := http.NewRequest(http.MethodGet, env.URL+"/batches/"+id+"/results?wait=10&limit=700&after="+after, nil)
	if err != nil {
		return nil, "", false, err
	}
	req.Header.Set("Authorization", "Bearer "+env.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", false, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", false, fmt.Errorf("results: %s: %s", resp.Status, body)
	}
	want, err := strconv.Atoi(resp.Header.Get("Kiln-Result-Lines"))
	if err != nil {
		return nil, "", false, fmt.Errorf("results: Kiln-Result-Lines: %w", err)
	}
	if got := bytes.Count(body, []byte("\n")); got != want {
		return nil, "", false, fmt.Errorf("results: %d lines, announced %d", got, want)
	}
	var lines []string
	for _, l := range strings.SplitAfter(string(body), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, resp.Header.Get("Kiln-Next-After"), resp.Header.Get("Kiln-Results-Done") == "true", nil
}
