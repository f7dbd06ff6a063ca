package curation

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/kilnhq/kiln/internal/embedded"
)

// The workbench: a single page of plain HTML, CSS and JavaScript, served as
// it is (no build step) from the binary.
//
//go:embed ui
var uiFiles embed.FS

// UIPrefix is where UIHandler serves the workbench.
const UIPrefix = "/curation/"

// UIPolicy is the Content-Security-Policy of every workbench response: the
// page loads its own script, style and images only, runs no inline script
// and talks to its own origin only. Model outputs are shown as text, and
// the policy is the second line of defence should one ever reach the DOM as
// markup.
const UIPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// uiTypes are the content types of the workbench's files, fixed here rather
// than taken from the system's MIME tables, which vary between machines.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

type uiAsset struct {
	file  embedded.File
	ctype string
}

// UIHandler serves the curation workbench under /curation/ (and redirects
// /curation there): GET and HEAD only, with the strict policy above,
// "Cache-Control: no-cache" and an ETag, so that a browser revalidates and
// never runs a stale script against a newer API.
func UIHandler() http.Handler {
	assets := map[string]uiAsset{}
	err := fs.WalkDir(uiFiles, "ui", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		file, err := embedded.Open(uiFiles, name)
		if err != nil {
			return err
		}
		ctype, ok := uiTypes[path.Ext(name)]
		if !ok {
			ctype = "application/octet-stream"
		}
		assets[strings.TrimPrefix(name, "ui/")] = uiAsset{file: file, ctype: ctype}
		return nil
	})
	if err != nil {
		panic("curation: embedded UI: " + err.Error()) // the files are part of the binary
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", UIPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == strings.TrimSuffix(UIPrefix, "/") {
			target := UIPrefix
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, UIPrefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.ctype)
		a.file.Serve(w, r)
	})
}
