package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/stretchr/testify/require"
)

// TestLongHandlerKeepsItsContext: a handler that works longer than the
// deadline for reading its body is not cancelled by it. (Huma's deadline
// used to outlive the body: net/http's background read after the body
// timed out and cancelled the request's context, and an SDK retried a
// completed upload into a 409.)
func TestLongHandlerKeepsItsContext(t *testing.T) {
	t.Parallel()
	const bodyDeadline = 100 * time.Millisecond
	mux := http.NewServeMux()
	cfg := Config("test")
	install := useOpenAIErrors(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	hapi := humago.New(mux, cfg)
	install(hapi)
	type in struct {
		Body struct {
			Name string `json:"name"`
		}
	}
	type out struct {
		Body struct {
			Cancelled bool `json:"cancelled"`
		}
	}
	huma.Register(hapi, huma.Operation{OperationID: "long", Method: http.MethodPost, Path: "/v1/long", BodyReadTimeout: bodyDeadline},
		func(ctx context.Context, _ *in) (*out, error) {
			var o out
			// Long work: several times the body's deadline.
			select {
			case <-ctx.Done():
				o.Body.Cancelled = true
			case <-time.After(10 * bodyDeadline):
			}
			return &o, nil
		})
	for _, route := range []struct{ name, contentType string }{{"JSON", "application/json"}, {"paced", "text/plain"}} {
		t.Run(route.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(withRequestID(guardBodies(mux, bodyDeadline, 1)))
			t.Cleanup(srv.Close)
			resp, err := http.Post(srv.URL+"/v1/long", route.contentType, strings.NewReader(`{"name": "x"}`))
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			if route.contentType == "application/json" {
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
				require.JSONEq(t, `{"cancelled": false}`, string(body))
			} else {
				// Huma refuses the content type, but only after reading the
				// body through the paced guard, whose deadline is gone by
				// then: the answer comes, not a reset.
				require.NotZero(t, resp.StatusCode)
			}
		})
	}
}
