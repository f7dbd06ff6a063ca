package api

import (
	"errors"
	"html"
	"io"
	"net/http"
	"strings"

	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Admin is who a request to an admin page comes from.
type Admin struct {
	// Name names the admin in logs: the curator's name.
	Name string
	// Via is how they signed in: "curator_session" or "curator_key".
	Via string
}

// errNoAdmin is a request that carries no admin's credentials.
var errNoAdmin = errors.New("api: no admin credentials")

// adminOf is the one check of kiln's admin pages (River UI): it says which
// admin a request comes from, errNoAdmin when it carries no credentials,
// and curation.ErrNotAdmin for a curator without the admin role. Today an
// admin is a curation admin, by the workbench's session cookie or a curator
// key as a bearer token; admin API keys join here as a third way in.
func (d Deps) adminOf(r *http.Request) (Admin, error) {
	c, err := curation.Admin(r, d.Store)
	switch {
	case err == nil:
		via := "curator_key"
		if _, cerr := r.Cookie(curation.CookieName); cerr == nil {
			via = "curator_session"
		}
		return Admin{Name: c.Name, Via: via}, nil
	case errors.Is(err, store.ErrNotFound):
		return Admin{}, errNoAdmin
	default:
		return Admin{}, err
	}
}

// requireAdmin serves next to admins only. Without credentials the answer
// is 401, and a browser gets a page that says where to sign in; a curator
// who is not an admin gets 403. Admin pages may not be framed.
func (d Deps) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_, err := d.adminOf(r)
		switch {
		case err == nil:
			next.ServeHTTP(w, r)
		case errors.Is(err, errNoAdmin):
			adminRefusal(w, r, http.StatusUnauthorized, "Sign in first: kiln's admin pages are for curation admins.")
		case errors.Is(err, curation.ErrNotAdmin):
			adminRefusal(w, r, http.StatusForbidden, "Only a curation admin may open kiln's admin pages.")
		default:
			apierror.Write(w, internalError(r, d.Log, err))
		}
	})
}

// adminRefusal answers an admin page's refusal: a short page for a browser
// with a link to the workbench's sign-in, plain text otherwise.
func adminRefusal(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg+" Send a curator admin key (ck-…) as 'Authorization: Bearer', or sign in at /curation/.\n")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kiln admin</title></head><body>
<main><h1>kiln admin</h1><p id="admin-refusal">`+html.EscapeString(msg)+`</p>
<p>Sign in to the <a id="admin-sign-in" href="/curation/">curation workbench</a> with a curator admin key (<code>kiln curators create --role admin</code>), then open this page again.</p></main>
</body></html>
`)
}
