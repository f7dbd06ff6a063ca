package objectstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPutReaderSize(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		content string
		size    int64
		ok      bool
	}{
		{"abc", 3, true},
		{"abc", -1, true},
		{"", 0, true},
		{"", -1, true},
		{"abc", 2, false},
		{"abc", 4, false},
		{"a", 0, false},
	} {
		pr := newPutReader(t.Context(), strings.NewReader(tt.content), tt.size)
		got, err := io.ReadAll(pr)
		if !tt.ok {
			require.ErrorIs(t, err, errSize, "%q size %d", tt.content, tt.size)
			require.ErrorIs(t, pr.cause(), errSize)
			continue
		}
		require.NoError(t, err, "%q size %d", tt.content, tt.size)
		require.Equal(t, tt.content, string(got))
		require.NoError(t, pr.cause())
	}
}

func TestPutReaderClosed(t *testing.T) {
	t.Parallel()
	pr := newPutReader(t.Context(), strings.NewReader("abc"), 3)
	_, stop := pr.requestContext()
	stop()
	_, err := pr.Read(make([]byte, 3))
	require.ErrorIs(t, err, errPutReturned)
}

// Cancelling ctx cancels the requests only while the reader is not drained.
func TestPutReaderRequestContext(t *testing.T) {
	t.Parallel()

	t.Run("NotDrained", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		pr := newPutReader(ctx, strings.NewReader("abc"), 3)
		reqCtx, stop := pr.requestContext()
		defer stop()

		_, err := pr.Read(make([]byte, 1))
		require.NoError(t, err)
		cancel()
		<-reqCtx.Done()
		_, err = io.ReadAll(pr)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, pr.cause(), context.Canceled)
	})

	t.Run("Drained", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		pr := newPutReader(ctx, strings.NewReader("abc"), 3)
		reqCtx, stop := pr.requestContext()
		defer stop()

		got, err := io.ReadAll(pr)
		require.NoError(t, err)
		require.Equal(t, "abc", string(got))
		cancel()
		require.Eventually(t, func() bool {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			return pr.grace != nil
		}, 10*time.Second, time.Millisecond)
		require.NoError(t, reqCtx.Err(), "cancelled although the reader was drained")
		require.NoError(t, pr.cause())
	})

	t.Run("CancelledBeforeEOF", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		// The last Read cancels: EOF must be withheld.
		pr := newPutReader(ctx, &cancelAtEOF{r: strings.NewReader("abc"), cancel: cancel}, -1)
		_, err := io.ReadAll(pr)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, pr.cause(), context.Canceled)
	})
}

type cancelAtEOF struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelAtEOF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if errors.Is(err, io.EOF) {
		c.cancel()
	}
	return n, err
}
