package batchline

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Endpoints are the batch endpoints kiln runs.
var Endpoints = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", EndpointResponses}

// EndpointResponses is OpenAI's Responses API, whose requests must hold an
// input.
const EndpointResponses = "/v1/responses"

// Completion windows: OpenAI's 24h, and as a kiln extension any Go duration
// from 1s to 168h ("90m", "48h").
const (
	MinWindow = time.Second
	MaxWindow = 7 * 24 * time.Hour
)

// Metadata limits, as OpenAI's.
const (
	MaxMetadataKeys     = 16
	MaxMetadataKeyLen   = 64
	MaxMetadataValueLen = 512
)

// ParseWindow reads a completion window.
func ParseWindow(s string) (time.Duration, error) {
	w, err := time.ParseDuration(s)
	if err != nil || w < MinWindow || w > MaxWindow {
		return 0, fmt.Errorf("invalid completion_window %q: use 24h (or, as a kiln extension, a duration from 1s to 168h such as 90m)", s)
	}
	return w, nil
}

// CheckEndpoint reports an endpoint kiln does not run.
func CheckEndpoint(endpoint string) error {
	if !slices.Contains(Endpoints, endpoint) {
		return fmt.Errorf("unsupported endpoint %q; kiln runs %v", endpoint, Endpoints)
	}
	return nil
}

// CheckMetadata reports metadata beyond OpenAI's limits.
func CheckMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return fmt.Errorf("metadata may hold at most %d keys; got %d", MaxMetadataKeys, len(m))
	}
	for k, v := range m {
		if utf8.RuneCountInString(k) > MaxMetadataKeyLen {
			return fmt.Errorf("metadata keys are at most %d characters; %q is longer", MaxMetadataKeyLen, k)
		}
		if utf8.RuneCountInString(v) > MaxMetadataValueLen {
			return fmt.Errorf("metadata values are at most %d characters; the value of %q is longer", MaxMetadataValueLen, k)
		}
	}
	return nil
}
