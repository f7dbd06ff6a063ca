package batch

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/netguard"
	"github.com/kilnhq/kiln/internal/store"
)

// MetadataWebhookURL is the batch metadata key that names a batch's own
// webhook URL. It must fall under a registered endpoint's URL, whose secret
// signs the delivery.
const MetadataWebhookURL = "webhook_url"

// Covers reports whether target falls under an endpoint's URL: the same
// scheme, host and port, and a path that is the endpoint's path or below
// it, segment by segment, once both are normalised
// (netguard.PathSegments). A URL whose path a server could read as another
// one (dot segments such as /hooks/a/../b or %2e%2e, encoded slashes,
// backslashes) covers nothing and is covered by nothing.
func Covers(endpointURL, target string) bool {
	e, err1 := url.Parse(endpointURL)
	t, err2 := url.Parse(target)
	if err1 != nil || err2 != nil || t.User != nil {
		return false
	}
	if !strings.EqualFold(e.Scheme, t.Scheme) || !strings.EqualFold(e.Hostname(), t.Hostname()) || portOf(e) != portOf(t) {
		return false
	}
	es, err1 := netguard.PathSegments(e)
	ts, err2 := netguard.PathSegments(t)
	if err1 != nil || err2 != nil {
		return false
	}
	if len(es) > 1 && es[len(es)-1] == "" {
		es = es[:len(es)-1] // a trailing slash: /hooks/ covers /hooks
	}
	return len(ts) >= len(es) && slices.Equal(ts[:len(es)], es)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// CoveringEndpoint is the endpoint whose URL covers target most closely.
func CoveringEndpoint(eps []store.WebhookEndpoint, target string) (store.WebhookEndpoint, bool) {
	var best store.WebhookEndpoint
	found := false
	for _, e := range eps {
		if Covers(e.URL, target) && (!found || len(e.URL) > len(best.URL)) {
			best, found = e, true
		}
	}
	return best, found
}

// checkWebhookURL is the rule on a batch's metadata webhook_url: an
// address the delivery guard would allow, under a registered endpoint.
func (s *Service) checkWebhookURL(ctx context.Context, target string) error {
	if err := netguard.CheckURL(target, s.limits.WebhookAllowPrivate); err != nil {
		return apierror.Invalid("metadata", "metadata.webhook_url: "+apierror.Sentence(err))
	}
	eps, _, err := s.store.WebhookEndpointList(ctx, auth.Project(ctx), "", 0)
	if err != nil {
		return err
	}
	if _, ok := CoveringEndpoint(eps, target); !ok {
		return apierror.Invalid("metadata", "metadata.webhook_url must fall under the URL of a registered webhook endpoint (POST /v1/webhook_endpoints), whose secret signs its deliveries.")
	}
	return nil
}
