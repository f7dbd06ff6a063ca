// Package netguard provides an outbound HTTP client for delivering webhooks
// to user-supplied URLs without exposing internal services (an SSRF guard).
//
// The guard is enforced in two places:
//
//   - CheckURL validates a target URL when it is registered, so obviously bad
//     targets (wrong scheme, credentials, private IP literals, localhost) are
//     rejected with a user-readable message.
//   - NewClient returns an *http.Client whose dialer checks the IP address of
//     every connection it actually opens. Because the check runs after DNS
//     resolution, on the address being connected to, a hostname that resolves
//     (or later re-resolves, as in DNS rebinding) to a private address is
//     still refused.
package netguard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// DefaultTimeout is the overall request timeout used when
	// Options.Timeout is zero.
	DefaultTimeout = 10 * time.Second

	// DefaultMaxResponseBytes is the response body limit used when
	// Options.MaxResponseBytes is zero.
	DefaultMaxResponseBytes int64 = 64 << 10 // 64 KiB
)

// Options configures NewClient.
type Options struct {
	// AllowPrivate disables the address guard, permitting connections to
	// loopback, private, link-local and other non-public addresses. It is
	// meant for development and tests only.
	AllowPrivate bool

	// Timeout bounds a whole request, from dialing to reading the response
	// body. Zero means DefaultTimeout (10s).
	Timeout time.Duration

	// MaxResponseBytes is the most bytes of a response body a caller should
	// read. Zero means DefaultMaxResponseBytes (64 KiB). The client does not
	// apply it by itself; read bodies with
	// ReadLimited(resp.Body, o.ResponseLimit()).
	MaxResponseBytes int64
}

// RequestTimeout returns the effective request timeout: Timeout, or
// DefaultTimeout when Timeout is zero or negative.
func (o Options) RequestTimeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// ResponseLimit returns the effective response body limit: MaxResponseBytes,
// or DefaultMaxResponseBytes when MaxResponseBytes is zero or negative.
func (o Options) ResponseLimit() int64 {
	if o.MaxResponseBytes <= 0 {
		return DefaultMaxResponseBytes
	}
	return o.MaxResponseBytes
}

// BlockedError is returned (wrapped in *net.OpError and *url.Error) when the
// client refuses to connect to an address. Detect it with errors.As.
type BlockedError struct {
	Addr netip.Addr
}

func (e *BlockedError) Error() string {
	return "netguard: refusing to connect to private address " + e.Addr.String()
}

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	thisNet    = netip.MustParsePrefix("0.0.0.0/8")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// Blocked reports whether addr is one the client refuses to connect to
// (unless Options.AllowPrivate is set): loopback, private (RFC 1918 and IPv6
// ULA fc00::/7), link-local unicast and multicast (169.254.0.0/16 including
// cloud metadata at 169.254.169.254, fe80::/10), any multicast, unspecified,
// carrier-grade NAT (100.64.0.0/10), 0.0.0.0/8, the limited broadcast
// address, and IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::/96) forms of
// blocked IPv4 addresses. The zero (invalid) Addr is blocked.
func Blocked(addr netip.Addr) bool {
	if !addr.IsValid() {
		return true
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is6() && nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case addr.IsLoopback(),
		addr.IsPrivate(),
		addr.IsLinkLocalUnicast(),
		addr.IsLinkLocalMulticast(),
		addr.IsInterfaceLocalMulticast(),
		addr.IsMulticast(),
		addr.IsUnspecified():
		return true
	}
	if addr.Is4() {
		return cgnat.Contains(addr) || thisNet.Contains(addr) || addr == broadcast4
	}
	return false
}

// control is a net.Dialer Control func that refuses blocked addresses. It
// runs on the resolved address just before connect(2).
func control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Should not happen for TCP dials; refuse rather than guess.
		return fmt.Errorf("netguard: cannot parse dial address %q: %w", address, err)
	}
	if Blocked(ap.Addr()) {
		return &BlockedError{Addr: ap.Addr()}
	}
	return nil
}

// NewClient returns an HTTP client for webhook delivery. Unless
// o.AllowPrivate is set it refuses to connect to any address for which
// Blocked reports true, checking the IP actually dialed so DNS rebinding
// cannot bypass the guard. The client does not follow redirects (a 3xx
// response is returned as is), ignores proxy environment variables, requires
// TLS 1.2 or later with the system roots, and pools idle connections.
func NewClient(o Options) *http.Client {
	timeout := o.RequestTimeout()

	dialer := &net.Dialer{
		Timeout:   min(timeout, 5*time.Second),
		KeepAlive: 30 * time.Second,
	}
	if !o.AllowPrivate {
		dialer.Control = control
	}

	transport := &http.Transport{
		// No proxy: honouring HTTP_PROXY would send requests to the proxy's
		// address, bypassing the dial-time check on the real target.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			// RootCAs nil means the system roots.
			MinVersion: tls.VersionTLS12,
		},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: 1 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
	}

	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// CheckURL validates a webhook target URL at registration time. The URL must
// be absolute with scheme http or https, have a host, and carry no userinfo
// or fragment. Unless allowPrivate is set, a host that is an IP literal for
// which Blocked reports true, or that is "localhost" or ends in ".localhost",
// is refused. Hostnames are not resolved here; the client re-checks every
// connection at dial time. Errors are plain messages suitable for an API
// response.
func CheckURL(raw string, allowPrivate bool) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("url is not valid")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("url must use http or https")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return errors.New("url must include a host")
	}
	if u.User != nil {
		return errors.New("url must not include a username or password")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("url must not include a fragment")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("url port must be between 1 and 65535")
		}
	}
	if allowPrivate {
		return nil
	}

	host := u.Hostname() // brackets and port removed
	if addr, err := netip.ParseAddr(host); err == nil {
		if Blocked(addr) {
			return fmt.Errorf("url host %s is a private, loopback or otherwise non-public address", host)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("url host %s is a loopback address", host)
	}
	return nil
}

// ReadLimited reads at most n bytes from r. It reads up to n+1 bytes so it
// can report, with truncated, whether r held more than n bytes; body never
// exceeds n bytes. A negative n is treated as zero.
func ReadLimited(r io.Reader, n int64) (body []byte, truncated bool, err error) {
	if n < 0 {
		n = 0
	}
	limit := n + 1
	if limit < 0 { // n == math.MaxInt64
		limit = n
	}
	body, err = io.ReadAll(io.LimitReader(r, limit))
	if int64(len(body)) > n {
		body = body[:n]
		truncated = true
	}
	return body, truncated, err
}
