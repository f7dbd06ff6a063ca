package api

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPacedBodyReadAllocatesNothing: reading an upload's body through its
// pace check costs no allocation a read (an upload of 540 MB is some 17,000
// reads of 32 KB).
func TestPacedBodyReadAllocatesNothing(t *testing.T) {
	body := strings.NewReader(strings.Repeat("x", 1<<20))
	p := &pacedBody{ReadCloser: io.NopCloser(body), idle: time.Minute, minRate: 1, start: time.Now()}
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}
