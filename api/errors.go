package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/store"
)

// Error is OpenAI's error envelope: {"error":{"message","type","param","code"}}.
// Every /v1 route answers with it.
type Error struct {
	status int
	Body   ErrorBody `json:"error"`
}

// ErrorBody is the inside of the envelope. param and code are always
// present, null when they do not apply.
type ErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *Error) Error() string  { return e.Body.Message }
func (e *Error) GetStatus() int { return e.status }

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
)

func newError(status int, typ, code, param, msg string) *Error {
	e := &Error{status: status, Body: ErrorBody{Message: msg, Type: typ}}
	if code != "" {
		e.Body.Code = &code
	}
	if param != "" {
		e.Body.Param = &param
	}
	return e
}

func badRequest(param, msg string) *Error {
	return newError(http.StatusBadRequest, typeInvalidRequest, "", param, msg)
}

func notFound(kind, id string) *Error {
	return newError(http.StatusNotFound, typeInvalidRequest, "", "", fmt.Sprintf("No %s found with id '%s'.", kind, id))
}

var installErrors sync.Once

// useOpenAIErrors makes Huma write OpenAI's envelope for every error it
// raises itself: validation (422 becomes OpenAI's 400), bad JSON, too-large
// bodies.
func useOpenAIErrors() {
	installErrors.Do(func() {
		huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
			param := ""
			var details []string
			for _, err := range errs {
				var d *huma.ErrorDetail
				if errors.As(err, &d) {
					p := paramOf(d.Location)
					// Huma places a missing property at its parent object;
					// OpenAI names the property itself.
					if name, ok := missingProperty(d.Message); ok {
						p = strings.TrimPrefix(p+"."+name, ".")
					}
					if param == "" {
						param = p
					}
					if p != "" {
						details = append(details, p+": "+d.Message)
					} else {
						details = append(details, d.Message)
					}
					continue
				}
				if err != nil {
					details = append(details, err.Error())
				}
			}
			if status == http.StatusUnprocessableEntity {
				status = http.StatusBadRequest
			}
			typ := typeInvalidRequest
			if status >= 500 {
				typ = typeServer
				details = nil // never send internals
				msg = "The server had an error while processing your request."
			}
			if len(details) > 0 {
				msg = strings.TrimSuffix(msg, ".") + ": " + strings.Join(details, "; ")
			}
			return newError(status, typ, "", param, msg)
		}
	})
}

// missingProperty returns the property that Huma's "expected required
// property X to be present" names.
func missingProperty(msg string) (string, bool) {
	name, ok := strings.CutPrefix(msg, "expected required property ")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(name, " to be present")
}

// paramOf turns Huma's "body.metadata.key" into OpenAI's "metadata.key".
func paramOf(location string) string {
	for _, p := range []string{"body.", "query.", "path.", "header."} {
		if strings.HasPrefix(location, p) {
			return strings.TrimPrefix(location, p)
		}
	}
	if location == "body" {
		return ""
	}
	return location
}

// storeError maps a store error onto an API error: not found is 404, a
// conflict is 409, and anything else is a 500 whose details go to the log
// only.
func storeError(ctx context.Context, log *slog.Logger, kind, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(kind, id)
	case errors.Is(err, context.Canceled):
		return newError(499, typeInvalidRequest, "", "", "The client closed the request.")
	default:
		return internal(ctx, log, err)
	}
}

func internal(ctx context.Context, log *slog.Logger, err error) *Error {
	log.ErrorContext(ctx, "request failed", "err", err)
	return newError(http.StatusInternalServerError, typeServer, "", "", "The server had an error while processing your request.")
}

// writeError writes an envelope outside Huma (middleware, unknown routes).
func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = jsonEncode(w, e)
}

// CodedError is an error in OpenAI's envelope with a code, for routes
// other packages register on the API (curation).
func CodedError(status int, code, msg string) error {
	typ := typeInvalidRequest
	if status >= 500 {
		typ = typeServer
	}
	return newError(status, typ, code, "", msg)
}
