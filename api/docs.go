package api

import (
	"embed"
	"net/http"
	"path"

	"github.com/kilnhq/kiln/internal/embedded"
)

// docsUI is the API reference page and Swagger UI's built bundle, vendored
// (see docsui/README.md), so that /docs needs no network.
//
//go:embed docsui
var docsUI embed.FS

// DocsPolicy is the Content-Security-Policy of /docs: the page loads its
// script, style and images from kiln alone and talks to kiln alone. Swagger
// UI sets inline styles, and shows SVG icons as data: URLs.
const DocsPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsTypes are the content types of the page's files.
var docsTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
}

// registerDocs serves the API reference at /docs and its files under
// /docs/. The files never change within a build; browsers revalidate them
// by ETag.
func registerDocs(mux *http.ServeMux) {
	serve := func(name string) http.Handler {
		file, err := embedded.Open(docsUI, "docsui/"+name)
		if err != nil {
			panic("api: embedded docs: " + err.Error()) // part of the binary
		}
		ctype, ok := docsTypes[path.Ext(name)]
		if !ok {
			ctype = "text/plain; charset=utf-8" // the licence and notice
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", DocsPolicy)
			h.Set("Content-Type", ctype)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			file.Serve(w, r)
		})
	}
	mux.Handle("GET /docs", serve("index.html"))
	for _, name := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "init.js", "LICENSE", "NOTICE"} {
		mux.Handle("GET /docs/"+name, serve(name))
	}
}
