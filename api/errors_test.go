package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/apierror"
)

// TestErrorRendering: the one renderer writes OpenAI's envelope for typed
// errors, for Huma's own validation errors (400, not 422) and for kiln's
// failures, whose details go to the log with the request's ID and never to
// the client. Two APIs in one process do not share it.
func TestErrorRendering(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	mux := http.NewServeMux()
	cfg := Config("test")
	install := useOpenAIErrors(&cfg, log)
	hapi := humago.New(mux, cfg)
	install(hapi)
	type in struct {
		Kind  string `path:"kind"`
		Limit int    `query:"limit" minimum:"1"`
	}
	huma.Register(hapi, huma.Operation{OperationID: "boom", Method: http.MethodGet, Path: "/v1/boom/{kind}"},
		func(_ context.Context, in *in) (*struct{}, error) {
			switch in.Kind {
			case "conflict":
				return nil, apierror.Conflict("file_in_use", "The file is in use.")
			case "wrapped":
				return nil, errors.Join(errors.New("context"), apierror.NotFound("batch", "batch_x"))
			}
			return nil, errors.New("the secret detail of a failure")
		})
	srv := httptest.NewServer(withRequestID(mux))
	t.Cleanup(srv.Close)

	get := func(t *testing.T, path string) (*http.Response, apierror.Body) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		var env struct{ Error apierror.Body }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
		return resp, env.Error
	}

	t.Run("typed conflict", func(t *testing.T) {
		resp, e := get(t, "/v1/boom/conflict?limit=1")
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		require.Equal(t, "file_in_use", *e.Code)
		require.Equal(t, apierror.TypeInvalidRequest, e.Type)
	})
	t.Run("wrapped not found", func(t *testing.T) {
		resp, e := get(t, "/v1/boom/wrapped?limit=1")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Equal(t, "No batch found with id 'batch_x'.", e.Message)
	})
	t.Run("validation is a 400 naming the param", func(t *testing.T) {
		resp, e := get(t, "/v1/boom/x?limit=0")
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "limit", *e.Param)
	})
	t.Run("a failure is a 500 with the request ID, logged, never sent", func(t *testing.T) {
		resp, e := get(t, "/v1/boom/x?limit=1")
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		require.Equal(t, apierror.TypeServer, e.Type)
		id := resp.Header.Get("X-Request-Id")
		require.True(t, strings.HasPrefix(id, "req_"), id)
		require.Contains(t, e.Message, id)
		require.NotContains(t, e.Message, "secret")
		require.Contains(t, logs.String(), "the secret detail of a failure")
		require.Contains(t, logs.String(), id)
	})
	t.Run("no process-wide change", func(t *testing.T) {
		// Huma's error constructor is left as it is, for other APIs.
		_, isModel := huma.NewError(http.StatusBadRequest, "x").(*huma.ErrorModel)
		require.True(t, isModel)
	})
}
