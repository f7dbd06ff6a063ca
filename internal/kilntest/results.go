package kilntest

import (
	"bufio"
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/openaispec"
)

// ResultLines downloads a batch's output or error file and returns its
// lines parsed, each checked against OpenAI's BatchRequestOutput. An empty
// fileID (no such file) gives none.
func ResultLines(t testing.TB, c openai.Client, fileID string) []map[string]any {
	t.Helper()
	if fileID == "" {
		return nil
	}
	resp, err := c.Files.Content(context.Background(), fileID)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		openaispec.MustValidate(t, "BatchRequestOutput", sc.Bytes())
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}
