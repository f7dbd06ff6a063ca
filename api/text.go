package api

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/kilnhq/kiln/internal/dbtext"
)

// checkText is the one check at the edge on every string a request brings:
// each parameter of the operation (path, query, header) and each string of
// a JSON body must be text the store can hold (internal/dbtext). A bad one
// is a 400 naming its param, before anything reaches a handler. Streamed
// bodies (uploads) are checked where they are read: filenames and form
// fields by the domain, file contents by validation.
func checkText(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		op := ctx.Operation()
		for _, p := range op.Parameters {
			var v string
			switch p.In {
			case "path":
				v = ctx.Param(p.Name)
			case "query":
				v = ctx.Query(p.Name)
			case "header":
				v = ctx.Header(p.Name)
			case "cookie":
				continue // a cookie that is not a session is no session
			}
			if err := dbtext.Check(v); err != nil {
				_ = huma.WriteErr(api, ctx, http.StatusBadRequest, "Invalid parameter",
					&huma.ErrorDetail{Location: p.In + "." + p.Name, Message: "the value " + err.Error()})
				return
			}
		}
		if op.RequestBody == nil || op.RequestBody.Content["application/json"] == nil ||
			!jsonContent(ctx.Header("Content-Type")) {
			next(ctx)
			return
		}
		r, w := humago.Unwrap(ctx)
		// Read no more than Huma would (a larger body is Huma's to
		// refuse), within Huma's deadline for the whole body, which is
		// cleared once the body is read (see openAIStatus).
		rc := http.NewResponseController(w)
		if op.BodyReadTimeout > 0 {
			_ = rc.SetReadDeadline(time.Now().Add(op.BodyReadTimeout))
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, op.MaxBodyBytes+1))
		if err == nil && int64(len(body)) <= op.MaxBodyBytes {
			// Read whole. (A failed or too large body keeps its
			// deadline, so that net/http's drain of its rest cannot
			// hang.)
			_ = rc.SetReadDeadline(time.Time{})
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			_ = huma.WriteErr(api, ctx, http.StatusRequestTimeout, "The request body arrived too slowly", err)
			return
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		if err == nil && int64(len(body)) <= op.MaxBodyBytes {
			if path, bad := dbtext.CheckJSON(body); bad != nil {
				_ = huma.WriteErr(api, ctx, http.StatusBadRequest, "Invalid body",
					&huma.ErrorDetail{Location: "body." + path, Message: "the value " + bad.Error()})
				return
			}
		}
		next(ctx)
	}
}

// jsonContent reports whether a request's Content-Type is JSON, or absent
// (Huma then reads JSON).
func jsonContent(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	return ct == "" || ct == "application/json" || strings.HasSuffix(ct, "+json")
}
