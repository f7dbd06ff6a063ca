package api

import "net/http"

// registerRiverUI mounts River UI (d.RiverUI, with its API) at
// d.RiverUIPrefix for admins only (requireAdmin): it lists, retries and
// cancels kiln's jobs.
func registerRiverUI(mux *http.ServeMux, d Deps) {
	if d.RiverUI == nil {
		return
	}
	h := d.requireAdmin(d.RiverUI)
	mux.Handle(d.RiverUIPrefix, h) // River UI redirects it to the prefix with a slash
	mux.Handle(d.RiverUIPrefix+"/", h)
}
