package provider_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExampleProviderOnly runs terraform/examples/provider-only's own
// `tofu test` (tests/main.tftest.hcl) against a live kiln: it applies the
// example, checks its assertions, rotates the webhook secret, and
// destroys what it made.
func TestExampleProviderOnly(t *testing.T) {
	t.Parallel()
	s := newStack(t, "sqlite")
	// A copy, so that tofu's files stay out of the source tree.
	src, err := filepath.Abs(filepath.Join("..", "examples", "provider-only"))
	require.NoError(t, err)
	require.NoError(t, os.CopyFS(s.dir, os.DirFS(src)))
	s.init()
	out := s.must("test", "-no-color", "-var", "receiver_url="+receiver(t))
	require.Contains(t, out, "2 passed, 0 failed")
	s.must("fmt", "-check", "-recursive", "-no-color", src) // fails on an unformatted file
}
