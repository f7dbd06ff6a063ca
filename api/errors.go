package api

import (
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// The one place where errors become responses. Handlers (and the domain
// under them) return *apierror.Error for what a client should see, which
// Huma writes as it is, and any other error for a failure of kiln's own.
// Huma turns the latter, and the errors it raises itself (validation, bad
// JSON, too-large bodies), into an *huma.ErrorModel; renderErrors rewrites
// those in OpenAI's envelope, and logs a 5xx's details with the request's
// ID instead of sending them. This is set per API, not process-wide: two
// APIs in one process (tests) do not share it.

// useOpenAIErrors installs the rendering on a new API's config and the
// API.
func useOpenAIErrors(cfg *huma.Config, log *slog.Logger) func(huma.API) {
	cfg.Transformers = append(cfg.Transformers, renderErrors(log))
	return func(api huma.API) {
		api.UseMiddleware(func(ctx huma.Context, next func(huma.Context)) { next(openAIStatus{ctx}) })
		api.UseMiddleware(checkText(api))
	}
}

// hctx lets openAIStatus embed a huma.Context without its field's name
// clashing with the interface's Context method.
type hctx = huma.Context

// openAIStatus answers 400 where Huma answers 422: OpenAI has no 422.
type openAIStatus struct{ hctx }

// Unwrap is the wrapped context, for humago.Unwrap.
func (c openAIStatus) Unwrap() huma.Context { return c.hctx }

// SetReadDeadline does nothing: kiln's own guards own the read deadline
// (checkText for JSON bodies, guardBodies for the rest), and clear it once
// a body is read. Huma's would outlive the body: net/http's background
// read after the body then times out, which cancels the request's context
// in the middle of a long handler.
func (c openAIStatus) SetReadDeadline(time.Time) error { return nil }

func (c openAIStatus) SetStatus(code int) {
	if code == http.StatusUnprocessableEntity {
		code = http.StatusBadRequest
	}
	c.hctx.SetStatus(code)
}

// renderErrors is the API's transformer: it rewrites Huma's error model in
// OpenAI's envelope.
func renderErrors(log *slog.Logger) huma.Transformer {
	return func(ctx huma.Context, _ string, v any) (any, error) {
		var e *apierror.Error
		switch m := v.(type) {
		case *apierror.Error:
			e = m
		case *huma.ErrorModel:
			e = fromHuma(ctx, log, m)
		default:
			return v, nil
		}
		ctx.SetHeader("Content-Type", "application/json")
		return e, nil
	}
}

// fromHuma is OpenAI's envelope for an error Huma raised: the param is the
// first field at fault, the message lists every fault.
func fromHuma(ctx huma.Context, log *slog.Logger, m *huma.ErrorModel) *apierror.Error {
	if m.Status >= 500 {
		var details []string
		for _, d := range m.Errors {
			if d != nil {
				details = append(details, d.Message)
			}
		}
		log.ErrorContext(ctx.Context(), "request failed", "request_id", apierror.RequestID(ctx.Context()),
			"method", ctx.Method(), "path", ctx.URL().Path, "status", m.Status, "err", strings.Join(details, "; "))
		e := apierror.Internal(ctx.Context())
		e.Status = m.Status
		return e
	}
	param := ""
	var details []string
	for _, d := range m.Errors {
		if d == nil {
			continue
		}
		p := paramOf(d.Location)
		// Huma places a missing property at its parent object; OpenAI
		// names the property itself.
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
	}
	msg := m.Detail
	if msg == "" {
		msg = m.Title
	}
	if len(details) > 0 {
		msg = strings.TrimSuffix(msg, ".") + ": " + strings.Join(details, "; ")
	}
	status := m.Status
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	return apierror.New(status, "", param, msg)
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

// withRequestID gives every request an ID, in the X-Request-Id header of
// its response and in its context, where a 5xx's log line and message
// find it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ids.New(ids.Request)
		w.Header().Set("X-Request-Id", id)
		// Answers are JSON or files: never to be sniffed as something
		// else by a browser.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r.WithContext(apierror.WithRequestID(r.Context(), id)))
	})
}

// internalError logs err with the request's ID and returns the 500 the
// client sees, for failures outside Huma (middleware).
func internalError(r *http.Request, log *slog.Logger, err error) *apierror.Error {
	log.ErrorContext(r.Context(), "request failed", "request_id", apierror.RequestID(r.Context()),
		"method", r.Method, "path", r.URL.Path, "err", err)
	return apierror.Internal(r.Context())
}

// notFoundOr maps the store's ErrNotFound onto a 404 for the kind and ID;
// other errors stay as they are.
func notFoundOr(err error, kind, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return apierror.NotFound(kind, id)
	}
	return err
}

// Error documents OpenAI's error envelope in the OpenAPI document: every
// error response is one (an *apierror.Error, written by its MarshalJSON).
type Error struct {
	Body ErrorBody `json:"error"`
}

// ErrorBody documents the inside of the envelope.
type ErrorBody apierror.Body

// documentErrors makes every error response of the document OpenAI's
// envelope, where Huma documents its own error model.
func documentErrors(api huma.API) {
	doc := api.OpenAPI()
	schema := doc.Components.Schemas.Schema(reflect.TypeOf(Error{}), true, "Error")
	for _, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op == nil {
				continue
			}
			for _, r := range op.Responses {
				if _, ok := r.Content["application/problem+json"]; ok {
					delete(r.Content, "application/problem+json")
					r.Content["application/json"] = &huma.MediaType{Schema: schema}
				}
			}
		}
	}
	delete(doc.Components.Schemas.Map(), "ErrorModel")
	delete(doc.Components.Schemas.Map(), "ErrorDetail")
}
