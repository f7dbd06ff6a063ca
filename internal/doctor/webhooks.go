package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/store"
)

// webhooks checks that every webhook endpoint of every active project is
// reachable as kiln delivers to it: under the SSRF guard's policy, through
// the guarded client. It sends a HEAD request, which a receiver answers
// without an event to act on; any answer counts as reachable.
func (d *doctor) webhooks(ctx context.Context, st *store.Store) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var endpoints []store.WebhookEndpoint
	after := ""
	for {
		projects, more, err := st.ProjectList(ctx, after, 100, false)
		if err != nil {
			d.add("webhooks", Fail, "list projects: %v", err)
			return
		}
		for _, p := range projects {
			es, _, err := st.WebhookEndpointList(ctx, p.ID, "", 0)
			if err != nil {
				d.add("webhooks", Fail, "list endpoints: %v", err)
				return
			}
			endpoints = append(endpoints, es...)
			after = p.ID
		}
		if !more {
			break
		}
	}
	if len(endpoints) == 0 {
		d.add("webhooks", OK, "no endpoints registered")
		return
	}
	client := netguard.NewClient(netguard.Options{AllowPrivate: d.cfg.WebhookAllowPrivate, Timeout: min(d.cfg.WebhookTimeout, d.timeout)})
	defer client.CloseIdleConnections()
	for _, e := range endpoints {
		s, detail := reach(ctx, client, e.URL, d.cfg.WebhookAllowPrivate)
		d.add("webhook "+e.ID, s, "%s", detail)
	}
}

// reach checks one endpoint's URL against the guard's rules, then sends it
// a HEAD request.
func reach(ctx context.Context, client *http.Client, url string, allowPrivate bool) (Status, string) {
	if err := netguard.CheckURL(url, allowPrivate); err != nil {
		return Fail, fmt.Sprintf("%s: refused by the SSRF guard: %v", url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return Fail, fmt.Sprintf("%s: %v", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var blocked *netguard.BlockedError
		if errors.As(err, &blocked) {
			return Fail, fmt.Sprintf("%s: refused by the SSRF guard: %s is not a public address; kiln delivers to private addresses only with %s",
				url, blocked.Addr, netguard.AllowSetting)
		}
		return Fail, fmt.Sprintf("%s: unreachable: %v", url, err)
	}
	resp.Body.Close()
	return OK, fmt.Sprintf("%s: reachable (HEAD: %s)", url, resp.Status)
}
