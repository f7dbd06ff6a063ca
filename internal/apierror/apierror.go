// Package apierror holds the typed errors that kiln's domain and its
// transports return, and their one rendering: OpenAI's error envelope,
// {"error":{"message","type","param","code"}}, with an HTTP status. The
// domain (internal/batch), curation and the API return them; Huma writes
// them as they are (an *Error is a huma.StatusError), and the API renders
// every other error as a 500 whose details are logged, never sent.
package apierror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error types, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeServer         = "server_error"
)

// Error is an error a client sees: OpenAI's envelope with an HTTP status.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Type is invalid_request_error, or server_error for a 5xx.
	Type string
	// Message is a sentence for people.
	Message string
	// Param names the request field at fault, if any.
	Param string
	// Code is a stable reason for programs, if any (e.g. file_in_use).
	Code string
	// Cause is the error the message was made from, if any.
	Cause error
}

func (e *Error) Error() string { return e.Message }

// Unwrap is the cause.
func (e *Error) Unwrap() error { return e.Cause }

// GetStatus is the HTTP status; it makes an Error a huma.StatusError.
func (e *Error) GetStatus() int { return e.Status }

// Body is the inside of the envelope. param and code are always present,
// null when they do not apply.
type Body struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Envelope is OpenAI's error envelope.
type Envelope struct {
	Error Body `json:"error"`
}

// Envelope is e as OpenAI sends it.
func (e *Error) Envelope() Envelope {
	b := Body{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		b.Param = &e.Param
	}
	if e.Code != "" {
		b.Code = &e.Code
	}
	return Envelope{Error: b}
}

// MarshalJSON writes the envelope.
func (e *Error) MarshalJSON() ([]byte, error) { return json.Marshal(e.Envelope()) }

// New is an error with any status. A 5xx is a server_error.
func New(status int, code, param, msg string) *Error {
	typ := TypeInvalidRequest
	if status >= 500 {
		typ = TypeServer
	}
	return &Error{Status: status, Type: typ, Message: msg, Param: param, Code: code}
}

// Invalid is a 400 naming the param at fault.
func Invalid(param, msg string) *Error { return New(http.StatusBadRequest, "", param, msg) }

// InvalidErr is a 400 naming the param at fault, whose message is err's,
// made a sentence.
func InvalidErr(param string, err error) *Error {
	e := Invalid(param, Sentence(err))
	e.Cause = err
	return e
}

// InvalidCode is a 400 with a code.
func InvalidCode(param, code, msg string) *Error { return New(http.StatusBadRequest, code, param, msg) }

// NotFound is a 404 for the kind of thing and its ID, as OpenAI words it.
func NotFound(kind, id string) *Error {
	return New(http.StatusNotFound, "", "", fmt.Sprintf("No %s found with id '%s'.", kind, id))
}

// NotFoundParam is a 404 for an ID given in a param of the request.
func NotFoundParam(param, kind, id string) *Error {
	return New(http.StatusNotFound, "", param, fmt.Sprintf("No %s found with id '%s'.", kind, id))
}

// Conflict is a 409: the state of a resource does not allow the request.
// code says why, for programs.
func Conflict(code, msg string) *Error { return New(http.StatusConflict, code, "", msg) }

// TooLarge is a 413.
func TooLarge(code, param, msg string) *Error {
	return New(http.StatusRequestEntityTooLarge, code, param, msg)
}

// BodyError is the error for a request body that could not be read: a 408
// request_timeout when it stalled or came too slowly (a timeout, in the
// sense of net.Error), and a 400 naming param otherwise (the body broke
// off, or is malformed).
func BodyError(param string, err error) *Error {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		e := New(http.StatusRequestTimeout, "request_timeout", param, "The request body arrived too slowly: "+err.Error()+".")
		e.Cause = err
		return e
	}
	e := Invalid(param, "The request body could not be read: "+err.Error()+".")
	e.Cause = err
	return e
}

// Sentence makes an error message a sentence: capitalised, with a full
// stop.
func Sentence(err error) string {
	m := err.Error()
	if m == "" {
		return m
	}
	m = strings.ToUpper(m[:1]) + m[1:]
	if !strings.HasSuffix(m, ".") {
		m += "."
	}
	return m
}

// As returns the *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

type requestIDKey struct{}

// WithRequestID records the request's ID in ctx.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the ID WithRequestID recorded, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Internal is the 500 a client sees for a failure whose details are only
// logged: it carries the request ID, which the log line has too.
func Internal(ctx context.Context) *Error {
	msg := "The server had an error while processing your request."
	if id := RequestID(ctx); id != "" {
		msg = "The server had an error while processing your request (request ID " + id + ")."
	}
	return New(http.StatusInternalServerError, "", "", msg)
}

// Write writes e as a response, outside Huma (middleware, unknown routes).
func Write(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}
