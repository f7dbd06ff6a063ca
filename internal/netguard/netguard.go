// Package netguard provides an outbound HTTP client for delivering webhooks
// to user-supplied URLs without exposing internal services (an SSRF guard).
//
// The guard is enforced in two places, on one list of refused address
// ranges (Blocked):
//
//   - CheckURL validates a target URL when it is registered, so bad targets
//     (wrong scheme, credentials, dot segments, a host that is a refused
//     address in any spelling, localhost, or a name the hosts file maps to a
//     refused address) are rejected with a user-readable message.
//   - NewClient returns an *http.Client whose dialer checks the IP address of
//     every connection it actually opens. Because the check runs after name
//     resolution, on the address being connected to, a hostname that
//     resolves (or later re-resolves, as in DNS rebinding) to a private
//     address is still refused.
package netguard

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
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

	// MaxURLLength is the longest URL CheckURL accepts, in bytes.
	MaxURLLength = 2048

	// MaxHostLength is the longest host CheckURL accepts: a DNS name's
	// limit.
	MaxHostLength = 253

	// AllowSetting is the setting that lifts the guard, for messages that
	// say how to reach a refused address on purpose.
	AllowSetting = "KILN_WEBHOOK_ALLOW_PRIVATE=true"

	// HostsFile is the hosts file registration consults by default.
	HostsFile = "/etc/hosts"
)

// LookupFunc answers the addresses of a host name. It is the seam through
// which the guard resolves names, so that tests never leave the machine.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

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

	// LookupHost, when set, resolves the host names the client dials, in
	// place of the system resolver (tests use it to stay off DNS). Every
	// address it answers is still checked when dialed. Default: nil, the
	// system resolver.
	LookupHost LookupFunc

	// IdleConnsPerHost is how many idle connections to one host the client
	// keeps for reuse: a sender with more requests in flight to one
	// receiver than this dials anew for the rest. Default: 64.
	IdleConnsPerHost int
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

// blockedRanges are the addresses webhooks may not reach unless private
// addresses are allowed: the one list that both registration (CheckURL) and
// the client's dialer check, through Blocked. IPv4 addresses inside IPv6
// ones (IPv4-mapped, NAT64, 6to4) are checked as the IPv4 address they
// carry.
var blockedRanges = prefixes(
	// IPv4.
	"0.0.0.0/8",       // "this network", 0.0.0.0 included
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
	"172.16.0.0/12",   // private (RFC 1918)
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private (RFC 1918)
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and the broadcast 255.255.255.255
	// IPv6.
	"::/96",          // unspecified, loopback (::1) and IPv4-compatible (::a.b.c.d)
	"64:ff9b:1::/48", // local-use IPv4/IPv6 translation
	"100::/64",       // discard-only
	"2001::/32",      // Teredo: tunnels to an IPv4 address
	"2001:db8::/32",  // documentation
	"fc00::/7",       // unique local (ULA), AWS's fd00:ec2::254 included
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// BlockedRanges returns the address ranges Blocked refuses (a copy).
func BlockedRanges() []netip.Prefix {
	return append([]netip.Prefix(nil), blockedRanges...)
}

// Blocked reports whether addr is one the guard refuses (unless private
// addresses are allowed): an address in one of BlockedRanges — loopback,
// private (RFC 1918, IPv6 ULA), link-local (cloud metadata at
// 169.254.169.254 included), carrier-grade NAT, multicast, unspecified,
// reserved, benchmarking and documentation ranges — or an IPv4-mapped
// (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) form of a
// blocked IPv4 address. The zero (invalid) Addr is blocked.
func Blocked(addr netip.Addr) bool {
	if !addr.IsValid() {
		return true
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is6() {
		b := addr.As16()
		switch {
		case nat64.Contains(addr):
			addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixTo4.Contains(addr):
			if Blocked(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})) {
				return true
			}
		}
	}
	for _, p := range blockedRanges {
		if p.Contains(addr) {
			return true
		}
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

// dialer resolves hosts as registration reads them, then dials through a
// net.Dialer whose Control refuses blocked addresses.
type dialer struct {
	net    *net.Dialer
	lookup LookupFunc
}

// DialContext dials address. A numeric host in any spelling that
// registration accepts (0x7f.1, 2130706433, ...) is dialed as the address
// it denotes, whatever the system resolver would make of it; a name goes
// to the lookup seam when one is set, else to the system resolver. Either
// way, the address connected to passes the guard first.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addr, numeric, err := ParseHost(host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if numeric {
		return d.net.DialContext(ctx, network, net.JoinHostPort(addr.String(), port))
	}
	if d.lookup == nil {
		return d.net.DialContext(ctx, network, address)
	}
	addrs, err := d.lookup(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for _, a := range addrs {
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// NewClient returns an HTTP client for webhook delivery. Unless
// o.AllowPrivate is set it refuses to connect to any address for which
// Blocked reports true, checking the IP actually dialed so DNS rebinding
// cannot bypass the guard. The client does not follow redirects (a 3xx
// response is returned as is), ignores proxy environment variables, requires
// TLS 1.2 or later with the system roots, and pools idle connections.
func NewClient(o Options) *http.Client {
	timeout := o.RequestTimeout()

	nd := &net.Dialer{
		Timeout:   min(timeout, 5*time.Second),
		KeepAlive: 30 * time.Second,
	}
	if !o.AllowPrivate {
		nd.Control = control
	}
	d := &dialer{net: nd, lookup: o.LookupHost}

	transport := &http.Transport{
		// No proxy: honouring HTTP_PROXY would send requests to the proxy's
		// address, bypassing the dial-time check on the real target.
		Proxy:       nil,
		DialContext: d.DialContext,
		TLSClientConfig: &tls.Config{
			// RootCAs nil means the system roots.
			MinVersion: tls.VersionTLS12,
		},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: 1 * time.Second,
		MaxIdleConns:          max(256, o.IdleConnsPerHost),
		MaxIdleConnsPerHost:   cmp.Or(o.IdleConnsPerHost, 64),
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

// ParseHost reads a URL's host (without brackets or port) as an address
// when it is numeric: an IP literal, or an IPv4 address in one of the
// spellings that inet_aton and browsers accept — decimal (2130706433),
// hexadecimal (0x7f000001, 0x7f.0.0.1), octal (0177.0.0.1) and short forms
// (127.1, 127.0.1) — which some resolvers turn into addresses without a
// lookup. numeric is false for a name. A host whose last label is a number
// but that is no valid IPv4 address (1.2.3.999, example.123) is an error,
// as browsers have it.
func ParseHost(host string) (addr netip.Addr, numeric bool, err error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true, nil
	}
	name := strings.TrimSuffix(host, ".")
	labels := strings.Split(name, ".")
	if !isNumber(labels[len(labels)-1]) {
		return netip.Addr{}, false, nil
	}
	if a, ok := parseIPv4(labels); ok {
		return a, true, nil
	}
	return netip.Addr{}, true, fmt.Errorf("url host %s is not a valid IPv4 address", host)
}

// isNumber reports whether a label reads as a number: decimal digits, or
// 0x and hexadecimal digits (none too).
func isNumber(label string) bool {
	if label == "" {
		return false
	}
	digits := label
	hex := len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')
	if hex {
		digits = label[2:]
	}
	for _, c := range digits {
		switch {
		case c >= '0' && c <= '9':
		case hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}

// parseIPv4 reads one to four parts as inet_aton does: each in decimal,
// octal (a leading 0) or hexadecimal (0x); the last part fills the bytes
// the others leave.
func parseIPv4(parts []string) (netip.Addr, bool) {
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, ok := parsePart(p)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, false
			}
			b[i] = byte(n)
			continue
		}
		rest := 4 - i // bytes the last part fills
		if n >= 1<<(8*rest) {
			return netip.Addr{}, false
		}
		for j := 3; j >= i; j-- {
			b[j] = byte(n)
			n >>= 8
		}
	}
	return netip.AddrFrom4(b), true
}

func parsePart(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" is 0, as inet_aton has it
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	case p == "":
		return 0, false
	}
	if strings.ContainsAny(p, "+-_") {
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 32)
	return n, err == nil
}

// URLRules are the checks of a webhook URL at registration.
type URLRules struct {
	// AllowPrivate accepts hosts on blocked addresses (the structural
	// checks still apply).
	AllowPrivate bool
	// LookupHost answers the addresses of a host name. Default: the hosts
	// file (HostsFile) alone, never DNS: a name's DNS answer may change
	// after registration anyway, and the client checks every address it
	// dials.
	LookupHost LookupFunc
}

// CheckURL validates a webhook target URL at registration time, with the
// default URLRules: see URLRules.Check.
func CheckURL(raw string, allowPrivate bool) error {
	return URLRules{AllowPrivate: allowPrivate}.Check(context.Background(), raw)
}

// Check validates a webhook target URL. The URL must be at most
// MaxURLLength bytes, absolute with scheme http or https, have an ASCII
// host of at most MaxHostLength characters, carry no userinfo or fragment,
// and have a path without dot segments, encoded slashes or backslashes
// (PathSegments). Unless r.AllowPrivate is set, a host that denotes a
// blocked address in any spelling (ParseHost), "localhost" or a name under
// it, or a name that LookupHost maps to a blocked address is refused.
// Errors are plain messages suitable for an API response.
func (r URLRules) Check(ctx context.Context, raw string) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("url is required")
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("url is longer than %d characters", MaxURLLength)
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
	host := u.Hostname() // brackets and port removed
	if len(host) > MaxHostLength {
		return fmt.Errorf("url host is longer than %d characters", MaxHostLength)
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return errors.New("url host must be ASCII: write an international name in its xn-- (punycode) form")
		}
	}
	addr, numeric, err := ParseHost(host)
	if err != nil {
		return err
	}
	if _, err := PathSegments(u); err != nil {
		return err
	}
	if r.AllowPrivate {
		return nil
	}

	if numeric {
		if !Blocked(addr) {
			return nil
		}
		if shown := addr.WithZone("").String(); shown != strings.Trim(host, "[]") {
			return fmt.Errorf("url host %s is %s, a private, loopback or otherwise non-public address (allowed only with %s)", host, shown, AllowSetting)
		}
		return fmt.Errorf("url host %s is a private, loopback or otherwise non-public address (allowed only with %s)", host, AllowSetting)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("url host %s is a loopback address (allowed only with %s)", host, AllowSetting)
	}
	lookup := r.LookupHost
	if lookup == nil {
		lookup = LookupHostsFile(HostsFile)
	}
	addrs, _ := lookup(ctx, name) // no answer: left to the dial-time check
	for _, a := range addrs {
		if Blocked(a) {
			return fmt.Errorf("url host %s resolves to %s, a private, loopback or otherwise non-public address (allowed only with %s)", host, a, AllowSetting)
		}
	}
	return nil
}

// PathSegments returns the segments of u's path, normalised so that two
// spellings of one path compare equal: escapes of unreserved characters
// decoded (%61 is a), other escapes in upper case, an empty path as "/".
// The first segment is the empty one before the leading slash. A path
// that a server could read as another path is an error: a dot segment
// ("." or "..", escaped in any case as %2e, or followed by ";" parameters),
// an encoded slash (%2F) or a backslash (raw or %5C).
func PathSegments(u *url.URL) ([]string, error) {
	if u.Opaque != "" {
		return nil, errors.New("url must include a host")
	}
	p := u.EscapedPath() // a raw backslash comes out as %5C
	if p == "" {
		p = "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		n, err := normaliseSegment(s)
		if err != nil {
			return nil, err
		}
		before, _, _ := strings.Cut(n, ";")
		if before == "." || before == ".." {
			return nil, errors.New("url path must not contain dot segments (. or .., escaped or not)")
		}
		if strings.Contains(n, "%2F") {
			return nil, errors.New("url path must not contain encoded slashes (%2F)")
		}
		if strings.Contains(n, "%5C") || strings.Contains(n, `\`) {
			return nil, errors.New("url path must not contain backslashes")
		}
		segs[i] = n
	}
	return segs, nil
}

// normaliseSegment decodes escapes of unreserved characters and upper-cases
// the rest.
func normaliseSegment(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", errors.New("url is not valid")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("url is not valid")
		}
		c := byte(v)
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(s[i+1:i+3]))
		}
		i += 2
	}
	return b.String(), nil
}

// LookupHostsFile returns a LookupFunc that answers from a hosts file
// (/etc/hosts' format) alone, read at each call, and never asks DNS. A name
// the file does not list has no addresses; an unreadable file is an error.
func LookupHostsFile(path string) LookupFunc {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		want := strings.TrimSuffix(strings.ToLower(host), ".")
		var out []netip.Addr
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			addr, err := netip.ParseAddr(fields[0])
			if err != nil {
				continue
			}
			for _, name := range fields[1:] {
				if strings.TrimSuffix(strings.ToLower(name), ".") == want {
					out = append(out, addr)
					break
				}
			}
		}
		return out, sc.Err()
	}
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
