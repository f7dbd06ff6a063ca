package batch_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// bodyOf is a request line's body, as the validator counts it.
func bodyOf(t *testing.T, line string) json.RawMessage {
	t.Helper()
	var in struct {
		Body json.RawMessage `json:"body"`
	}
	require.NoError(t, json.Unmarshal([]byte(line), &in))
	return in.Body
}
