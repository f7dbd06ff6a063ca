package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestSlowBodies: a body that stalls, that trickles in below the least
// rate, or that is shorter than its Content-Length gets a 408 in OpenAI's
// envelope, on a streamed upload route and on a JSON route alike, instead
// of holding the connection.
func TestSlowBodies(t *testing.T) {
	t.Parallel()
	env := kilntest.Start(t, "sqlite", kilntest.Options{NoAgent: true, Configure: func(c *config.Config) {
		c.BodyIdleTimeout = 500 * time.Millisecond
		c.BodyMinRate = 10_000
	}})
	u, err := url.Parse(env.Base())
	require.NoError(t, err)

	// request sends the head and then body, byte by byte every gap (no gap:
	// at once), and keeps the connection open after it.
	request := func(t *testing.T, method, path, contentType string, length int, body string, gap time.Duration) (int, string) {
		t.Helper()
		conn, err := net.Dial("tcp", u.Host)
		require.NoError(t, err)
		defer conn.Close()
		// A bound on the test, far above the guard's: not a wait for kiln.
		require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			method, path, u.Host, kilntest.Key, contentType, length)
		answered := make(chan struct{})
		go func() {
			tick := time.NewTicker(max(gap, time.Millisecond))
			defer tick.Stop()
			for i := 0; i < len(body); i++ {
				if gap == 0 {
					_, _ = io.WriteString(conn, body[i:])
					return
				}
				if _, err := conn.Write([]byte{body[i]}); err != nil {
					return
				}
				select {
				case <-answered:
					return
				case <-tick.C:
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		close(answered)
		require.NoError(t, err)
		defer resp.Body.Close()
		var e struct {
			Error struct {
				Code *string `json:"code"`
			} `json:"error"`
		}
		raw, _ := io.ReadAll(resp.Body)
		require.NoError(t, json.Unmarshal(raw, &e), "body: %s", raw)
		code := ""
		if e.Error.Code != nil {
			code = *e.Error.Code
		}
		return resp.StatusCode, code
	}
	multipart := "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n" +
		strings.Repeat(`{"custom_id":"a"}`+"\n", 200) + "\r\n--b--\r\n"

	t.Run("upload trickling below the least rate", func(t *testing.T) {
		t.Parallel()
		status, code := request(t, http.MethodPost, "/v1/files", "multipart/form-data; boundary=b", len(multipart), multipart, 20*time.Millisecond)
		require.Equal(t, http.StatusRequestTimeout, status)
		require.Equal(t, "request_timeout", code)
	})
	t.Run("upload shorter than its Content-Length", func(t *testing.T) {
		t.Parallel()
		status, code := request(t, http.MethodPost, "/v1/files", "multipart/form-data; boundary=b", len(multipart), multipart[:len(multipart)-100], 0)
		require.Equal(t, http.StatusRequestTimeout, status)
		require.Equal(t, "request_timeout", code)
	})
	t.Run("JSON shorter than its Content-Length", func(t *testing.T) {
		t.Parallel()
		body := `{"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "24h"}`
		status, _ := request(t, http.MethodPost, "/v1/batches", "application/json", len(body)+10, body, 0)
		require.Equal(t, http.StatusRequestTimeout, status)
	})
	t.Run("a body at a fair pace is fine", func(t *testing.T) {
		t.Parallel()
		status, _ := request(t, http.MethodPost, "/v1/files", "multipart/form-data; boundary=b", len(multipart), multipart, 0)
		require.Equal(t, http.StatusOK, status)
	})
}
