package llmsim

import (
	"net/http"
	"strconv"
)

// Sleep mode, as vLLM's development endpoints (vllm serve
// --enable-sleep-mode with VLLM_SERVER_DEV_MODE=1) offer it:
//
//   - POST /sleep?level=1|2 puts the engine to sleep (level 1 offloads the
//     weights to CPU memory, level 2 discards them; the simulator treats both
//     alike). The level defaults to 1; vLLM's mode parameter is ignored.
//   - POST /wake_up wakes it.
//   - GET /is_sleeping answers {"is_sleeping": true|false}.
//
// Both POSTs answer 200 with an empty body, as vLLM does, and are no-ops when
// the engine already is in that state. /health, /v1/models and /metrics keep
// answering while the engine sleeps.
//
// A sleeping vLLM has no weights on the GPU, and what it does with an
// inference request depends on its version: older ones crash with a CUDA
// illegal memory access (vllm-project/vllm#15483), newer ones hold the
// request until /wake_up. The simulator rejects it instead, with 503 and an
// OpenAI-style error that says to wake the engine, so a client that forgets
// to wake the engine fails fast and visibly. The simulator is always
// sleep-capable; it needs neither flag nor environment.
//
// Requests already generating when the engine goes to sleep finish normally.

// sleepRejection answers inference requests while the engine sleeps.
var sleepRejection = &apiError{
	status:  http.StatusServiceUnavailable,
	typ:     "ServiceUnavailableError",
	message: "The engine is sleeping; POST /wake_up before sending requests.",
}

// awake wraps an inference route: while the engine sleeps, a request is
// counted as received and failed with sleepRejection.
func (s *Server) awake(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sleepLevel.Load() != 0 {
			s.received()
			s.fail(w, route, sleepRejection)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleSleep(w http.ResponseWriter, r *http.Request) {
	level := 1
	if v := r.URL.Query().Get("level"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 2 {
			writeRaw(w, http.StatusBadRequest, []byte(`{"detail":"level must be 1 or 2"}`))
			return
		}
		level = n
	}
	if s.sleepLevel.CompareAndSwap(0, int32(level)) {
		s.sleeps.Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleWakeUp(w http.ResponseWriter, _ *http.Request) {
	if s.sleepLevel.Swap(0) != 0 {
		s.wakeUps.Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleIsSleeping(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		IsSleeping bool `json:"is_sleeping"`
	}{s.sleepLevel.Load() != 0})
}
