package gpuagent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/config"
)

// Backend is the LLM engine the agent drives: vLLM's OpenAI-compatible
// server, or kiln's simulator.
type Backend interface {
	// Do sends one request body to endpoint (a batch endpoint such as
	// /v1/chat/completions) and returns the HTTP status and body. An error
	// means no HTTP answer came.
	Do(ctx context.Context, endpoint string, body []byte) (status int, resp []byte, err error)
	// Models lists the models the engine serves.
	Models(ctx context.Context) ([]Model, error)
}

// Model is a model an engine serves.
type Model struct {
	ID string
	// OwnedBy is the engine's owned_by: "vllm" for vLLM, "kiln-sim" for
	// kiln's simulator.
	OwnedBy string
}

// SimOwner is the owned_by of models served by kiln's simulator.
const SimOwner = "kiln-sim"

// MaxResponseBytesDefault bounds one response body; a larger answer is an
// error line (response_too_large), not an out-of-memory agent. It is kiln's
// configuration default, named here for the backend's users.
const MaxResponseBytesDefault = config.MaxResponseBytesDefault

// ErrResponseTooLarge is an answer over the backend's limit.
var ErrResponseTooLarge = errors.New("response too large")

// HTTPBackend talks to an OpenAI-compatible server at BaseURL, such as
// http://127.0.0.1:8000/v1.
type HTTPBackend struct {
	BaseURL string
	Client  *http.Client
	// MaxResponseBytes bounds one answer. Default: MaxResponseBytesDefault.
	MaxResponseBytes int64
}

// NewHTTPBackend returns a backend with a connection pool sized for
// concurrency requests in flight.
func NewHTTPBackend(baseURL string, concurrency int) *HTTPBackend {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		// No gzip: the engine is near, and asking for it took a header
		// map of its own for every request.
		DisableCompression: true,
	}
	return &HTTPBackend{BaseURL: strings.TrimRight(baseURL, "/"), Client: &http.Client{Transport: tr}}
}

// url maps a batch endpoint (/v1/chat/completions) onto the base URL, which
// already ends in /v1.
func (b *HTTPBackend) url(endpoint string) string {
	return b.BaseURL + strings.TrimPrefix(endpoint, "/v1")
}

// jsonHeader is every request's header. The transport only reads it.
var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// Do implements Backend.
func (b *HTTPBackend) Do(ctx context.Context, endpoint string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url(endpoint), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	// The transport itself, with a header made once: the client's
	// redirect and cookie handling copied the header and URL of every
	// request, and the header's own map was made for each (together a
	// seventh of the agent's allocations). An engine does not redirect a
	// completion; a redirect would be its answer.
	req.Header = jsonHeader
	tr := b.Client.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	limit := cmp.Or(b.MaxResponseBytes, MaxResponseBytesDefault)
	if resp.ContentLength > limit {
		return resp.StatusCode, nil, fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, limit)
	}
	data, err := readBody(resp.Body, resp.ContentLength, limit)
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(data)) > limit {
		return resp.StatusCode, nil, fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, limit)
	}
	return resp.StatusCode, data, nil
}

// readBody reads a response body of size bytes (-1: unknown) into a
// buffer of its size, or where the size is unknown up to limit+1 bytes.
// net/http ends a body at its Content-Length, with io.ErrUnexpectedEOF if
// the connection ends first.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(io.LimitReader(r, limit+1))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Models implements Backend with GET /models.
func (b *HTTPBackend) Models(ctx context.Context) ([]Model, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.BaseURL+"/models", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list models: %s", resp.Status)
	}
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	out := make([]Model, len(list.Data))
	for i, m := range list.Data {
		out[i] = Model{ID: m.ID, OwnedBy: m.OwnedBy}
	}
	return out, nil
}
