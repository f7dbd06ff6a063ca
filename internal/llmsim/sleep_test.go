package llmsim

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func (b *testBundle) isSleeping(t *testing.T) bool {
	t.Helper()
	resp, data, err := b.do(t, t.Context(), http.MethodGet, "/is_sleeping", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
	var body map[string]any
	require.NoError(t, json.Unmarshal(data, &body), "body: %s", data)
	require.Len(t, body, 1, "body: %s", data)
	sleeping, ok := body["is_sleeping"].(bool)
	require.True(t, ok, "body: %s", data)
	return sleeping
}

func TestSleepMode(t *testing.T) {
	t.Parallel()

	t.Run("SleepAndWake", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		require.False(t, b.isSleeping(t))
		b.chat(t, chatBody("Before sleep."))

		resp, data := b.post(t, "/sleep?level=1", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
		require.Empty(t, data)
		require.True(t, b.isSleeping(t))
		require.Equal(t, 1, b.sim.Stats().SleepLevel)

		// Health and the model list stay up while the engine sleeps.
		resp, _, err := b.do(t, t.Context(), http.MethodGet, "/health", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _, err = b.do(t, t.Context(), http.MethodGet, "/v1/models", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, data = b.post(t, "/wake_up", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", data)
		require.Empty(t, data)
		require.False(t, b.isSleeping(t))
		b.chat(t, chatBody("After waking up."))

		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Sleeps)
		require.Equal(t, int64(1), st.WakeUps)
		require.Equal(t, 0, st.SleepLevel)
		require.Equal(t, int64(2), st.Completed)
	})

	t.Run("RejectsInferenceWhileSleeping", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		resp, _ := b.post(t, "/sleep", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 1, b.sim.Stats().SleepLevel, "the level defaults to 1")

		for _, tc := range []struct {
			path string
			body any
		}{
			{"/v1/chat/completions", chatBody("Anyone awake?")},
			{"/v1/completions", map[string]any{"model": ModelDefault, "prompt": "Anyone awake?"}},
			{"/v1/embeddings", map[string]any{"model": ModelDefault, "input": "Anyone awake?"}},
		} {
			resp, data := b.post(t, tc.path, tc.body)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s: %s", tc.path, data)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var env struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    int     `json:"code"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(data, &env), "body: %s", data)
			require.Equal(t, "ServiceUnavailableError", env.Error.Type)
			require.Equal(t, http.StatusServiceUnavailable, env.Error.Code)
			require.Contains(t, env.Error.Message, "/wake_up")
		}

		st := b.sim.Stats()
		require.Equal(t, int64(3), st.Requests)
		require.Equal(t, int64(3), st.Failed)
		require.Equal(t, int64(0), st.Completed)
	})

	t.Run("RepeatedCallsAreNoOps", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		resp, _ := b.post(t, "/wake_up", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for range 2 {
			resp, _ = b.post(t, "/sleep?level=2", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		resp, _ = b.post(t, "/sleep?level=1", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		st := b.sim.Stats()
		require.Equal(t, 2, st.SleepLevel, "sleeping again keeps the first level")
		require.Equal(t, int64(1), st.Sleeps)
		for range 2 {
			resp, _ = b.post(t, "/wake_up", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		st = b.sim.Stats()
		require.Equal(t, int64(1), st.WakeUps)
		require.Equal(t, 0, st.SleepLevel)
	})

	t.Run("BadRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}).start(t)

		for _, level := range []string{"0", "3", "deep"} {
			resp, data := b.post(t, "/sleep?level="+level, nil)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "level %s: %s", level, data)
		}
		require.False(t, b.isSleeping(t))

		resp, _, err := b.do(t, t.Context(), http.MethodGet, "/sleep", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		resp, _, err = b.do(t, t.Context(), http.MethodPost, "/is_sleeping", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
}
