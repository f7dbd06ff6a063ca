package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/kilntest"
)

// TestHostileText is driven from the OpenAPI document, so that a new route
// cannot skip it: every string parameter of every operation, and every
// top-level string property of a JSON body, is sent once with a NUL and
// once with invalid UTF-8. Each answer is a 400 in OpenAI's envelope that
// names the param, on both backends (PostgreSQL's text holds neither; it
// used to answer 500).
func TestHostileText(t *testing.T) {
	t.Parallel()
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := startAdmin(t, backend, nil)
			_, curatorKey, err := curation.CreateCurator(context.Background(), env.App.Store, "Root", curation.RoleAdmin)
			require.NoError(t, err)
			doc := env.App.API.OpenAPI()
			base := env.Base()

			paths := make([]string, 0, len(doc.Paths))
			for p := range doc.Paths {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			tried := 0
			for _, path := range paths {
				for method, op := range operations(doc.Paths[path]) {
					key := kilntest.Key
					switch {
					case strings.HasPrefix(path, "/v1/curation/"):
						key = curatorKey
					case strings.HasPrefix(path, "/v1/organization/"):
						key = adminKey
					}
					for _, bad := range []struct{ name, value string }{{"NUL", "a\x00b"}, {"invalid UTF-8", "a\xffb"}} {
						for _, p := range op.Parameters {
							if p.Schema == nil || p.Schema.Type != "string" || p.In == "cookie" {
								continue
							}
							if p.In == "header" && strings.ContainsRune(bad.value, 0) {
								continue // HTTP cannot carry a NUL in a header
							}
							t.Run(op.OperationID+"/"+p.In+"."+p.Name+"/"+bad.name, func(t *testing.T) {
								u, h := requestFor(base, path, op, p, bad.value)
								resp := send(t, method, u, h, key, "")
								requireBadParam(t, resp, p.Name)
							})
							tried++
						}
						for _, prop := range jsonBodyStrings(doc, op) {
							t.Run(op.OperationID+"/body."+prop+"/"+bad.name, func(t *testing.T) {
								u, h := requestFor(base, path, op, nil, "")
								body, err := json.Marshal(map[string]string{prop: "x"})
								require.NoError(t, err)
								raw := strings.Replace(string(body), `"x"`, jsonBad(bad.value), 1)
								resp := send(t, method, u, h, key, raw)
								requireBadParam(t, resp, prop)
							})
							tried++
						}
					}
				}
			}
			require.Greater(t, tried, 50, "the document offered too few strings to try")
		})
	}
}

func operations(item *huma.PathItem) map[string]*huma.Operation {
	out := map[string]*huma.Operation{}
	for m, op := range map[string]*huma.Operation{http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
		http.MethodDelete: item.Delete, http.MethodPatch: item.Patch} {
		if op != nil {
			out[m] = op
		}
	}
	return out
}

// requestFor is the operation's URL and headers with plain values for
// every parameter, and bad in the one parameter p (if any).
func requestFor(base, path string, op *huma.Operation, p *huma.Param, bad string) (string, http.Header) {
	h := http.Header{}
	q := url.Values{}
	for _, par := range op.Parameters {
		v := "x"
		if par.Schema != nil && (par.Schema.Type == "integer" || par.Schema.Type == "number") {
			v = "1"
		}
		if par.Schema != nil && par.Schema.Type == "boolean" {
			v = "false"
		}
		if par == p {
			v = bad
		}
		switch par.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+par.Name+"}", url.PathEscape(v))
		case "query":
			if par == p || par.Required {
				q.Set(par.Name, v)
			}
		case "header":
			if par == p {
				h.Set(par.Name, v)
			}
		}
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, h
}

// jsonBodyStrings are the string properties at the top of the operation's
// JSON request body.
func jsonBodyStrings(doc *huma.OpenAPI, op *huma.Operation) []string {
	if op.RequestBody == nil || op.RequestBody.Content["application/json"] == nil {
		return nil
	}
	s := op.RequestBody.Content["application/json"].Schema
	if s != nil && s.Ref != "" {
		s = doc.Components.Schemas.SchemaFromRef(s.Ref)
	}
	if s == nil {
		return nil
	}
	var out []string
	for name, prop := range s.Properties {
		if prop.Type == "string" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// jsonBad is a JSON string holding bad: a NUL escaped as JSON does, or the
// raw invalid bytes.
func jsonBad(bad string) string {
	return `"` + strings.ReplaceAll(bad, "\x00", `\u0000`) + `"`
}

func send(t *testing.T, method, u string, h http.Header, key, body string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	require.NoError(t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func requireBadParam(t *testing.T, resp *http.Response, param string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "body: %s", raw)
	require.NoError(t, json.Unmarshal(raw, &e), "body: %s", raw)
	require.NotNil(t, e.Error.Param, "body: %s", raw)
	require.Equal(t, param, *e.Error.Param, "body: %s", raw)
}
