package netguard

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBlocked(t *testing.T) {
	tests := []struct {
		addr    string
		blocked bool
	}{
		// Public.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		{"2606:4700::1", false},
		{"2001:4860:4860::8888", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"172.15.255.255", false},
		{"172.32.0.1", false},
		{"192.167.255.255", false},
		{"100.63.255.255", false},
		{"100.128.0.1", false},
		{"169.253.255.255", false},
		{"1.0.0.0", false},

		// Loopback.
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		// RFC 1918.
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.0.1", true},
		{"192.168.255.255", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:192.168.1.1", true},
		// IPv6 ULA, including AWS IPv6 metadata.
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"fd00:ec2::254", true},
		// Link-local and cloud metadata.
		{"169.254.0.1", true},
		{"169.254.169.254", true},
		{"::ffff:169.254.169.254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf::1", true},
		// Unspecified and this-network.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"::ffff:0.0.0.0", true},
		// Multicast and broadcast.
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff0e::1", true},
		{"ff01::1", true},
		{"255.255.255.255", true},
		// CGNAT.
		{"100.64.0.0", true},
		{"100.64.1.1", true},
		{"100.127.255.255", true},
		{"::ffff:100.64.1.1", true},
		// NAT64 of private addresses.
		{"64:ff9b::7f00:1", true},
		{"64:ff9b::a9fe:a9fe", true},
		// Reserved, benchmarking and documentation ranges.
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.20.0.1", false},
		{"198.17.255.255", false},
		{"240.0.0.1", true},
		{"255.255.255.254", true},
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"198.51.100.7", true},
		{"203.0.113.5", true},
		{"::ffff:198.18.0.1", true},
		// IPv4-compatible, 6to4, Teredo and other IPv6 forms.
		{"::127.0.0.1", true},
		{"::7f00:1", true},
		{"::8.8.8.8", true},
		{"2002:7f00:1::", true},
		{"2002:a00:1::1", true},
		{"2002:808:808::1", false},
		{"2001::1", true},
		{"64:ff9b:1::1", true},
		{"100::1", true},
		{"2001:db8::1", true},
		{"fec0::1", true},
	}
	for _, tt := range tests {
		addr := netip.MustParseAddr(tt.addr)
		if got := Blocked(addr); got != tt.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tt.addr, got, tt.blocked)
		}
	}
	if !Blocked(netip.Addr{}) {
		t.Error("Blocked(zero Addr) = false, want true")
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	err := &BlockedError{Addr: netip.MustParseAddr("10.0.0.1")}
	const want = "netguard: refusing to connect to private address 10.0.0.1"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		raw          string
		allowPrivate bool
		wantErr      string // substring; empty means no error
	}{
		{"https://example.com/hook", false, ""},
		{"http://example.com:8080/hook?x=1", false, ""},
		{"HTTPS://Example.COM/hook", false, ""},
		{"https://8.8.8.8/hook", false, ""},
		{"https://[2606:4700::1]:443/hook", false, ""},

		{"", false, "url is required"},
		{"ftp://example.com/file", false, "url must use http or https"},
		{"javascript:alert(1)", false, "url must use http or https"},
		{"//example.com/hook", false, "url must use http or https"},
		{"/relative/path", false, "url must use http or https"},
		{"http://", false, "url must include a host"},
		{"http:///path", false, "url must include a host"},
		{"http:example.com", false, "url must include a host"},
		{"https://:443/hook", false, "url must include a host"},
		{"http://user:pass@example.com/", false, "username or password"},
		{"http://user@example.com/", false, "username or password"},
		{"https://example.com/hook#frag", false, "fragment"},
		{"https://example.com/hook#", false, "fragment"},
		{"http://example.com:0/", false, "port"},
		{"http://example.com:70000/", false, "port"},
		{"http://example.com:abc/", false, "not valid"},
		{"http://exa mple.com/", false, "not valid"},

		{"http://127.0.0.1/", false, "127.0.0.1"},
		{"http://127.0.0.1:8080/hook", false, "127.0.0.1"},
		{"http://10.1.2.3/", false, "10.1.2.3"},
		{"http://169.254.169.254/latest/meta-data/", false, "169.254.169.254"},
		{"http://100.64.1.1/", false, "100.64.1.1"},
		{"http://0.0.0.0/", false, "0.0.0.0"},
		{"http://[::1]/", false, "::1"},
		{"http://[::1]:9000/", false, "::1"},
		{"http://[::ffff:127.0.0.1]/", false, "127.0.0.1"},
		{"http://[fe80::1%25eth0]/", false, "fe80::1"},
		{"http://[fd00::1]/", false, "fd00::1"},
		{"http://localhost:8080/", false, "loopback"},
		{"http://LOCALHOST/", false, "loopback"},
		{"http://localhost./", false, "loopback"},
		{"http://foo.localhost/", false, "loopback"},
		{"http://a.b.localhost:3000/", false, "loopback"},

		{"http://127.0.0.1/", true, ""},
		{"http://127.0.0.1:8080/hook", true, ""},
		{"http://10.1.2.3/", true, ""},
		{"http://169.254.169.254/", true, ""},
		{"http://[::1]/", true, ""},
		{"http://localhost:8080/", true, ""},
		{"http://foo.localhost/", true, ""},
		// Structural rules still apply with allowPrivate.
		{"ftp://127.0.0.1/", true, "url must use http or https"},
		{"http://user:pass@localhost/", true, "username or password"},
		{"http:///path", true, "url must include a host"},
	}
	for _, tt := range tests {
		err := CheckURL(tt.raw, tt.allowPrivate)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckURL(%q, %v) = %v, want nil", tt.raw, tt.allowPrivate, err)
		case tt.wantErr != "" && err == nil:
			t.Errorf("CheckURL(%q, %v) = nil, want error containing %q", tt.raw, tt.allowPrivate, tt.wantErr)
		case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
			t.Errorf("CheckURL(%q, %v) = %q, want error containing %q", tt.raw, tt.allowPrivate, err, tt.wantErr)
		}
	}
}

func TestCheckURLErrorsAreUserReadable(t *testing.T) {
	err := CheckURL("ftp://example.com/", false)
	if got, want := err.Error(), "url must use http or https"; got != want {
		t.Errorf("CheckURL error = %q, want %q", got, want)
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if ap := netip.MustParseAddrPort(srv.Listener.Addr().String()); !ap.Addr().IsLoopback() {
		t.Fatalf("test server listens on %s, want loopback", ap)
	}
	return srv
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
}

func TestClientRefusesLoopback(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	client := NewClient(Options{})

	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("Get succeeded, want refusal")
	}
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) does not wrap *BlockedError", err, err)
	}
	if !be.Addr.IsLoopback() {
		t.Errorf("BlockedError.Addr = %s, want loopback", be.Addr)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %T is not a *url.Error", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %v does not wrap *net.OpError", err)
	}
	if !strings.Contains(err.Error(), "netguard: refusing to connect to private address") {
		t.Errorf("error message %q lacks the netguard refusal", err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

// TestClientChecksResolvedAddress dials a hostname rather than an IP literal:
// the guard must apply to the address the name resolves to.
func TestClientChecksResolvedAddress(t *testing.T) {
	srv := newServer(t, okHandler())
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(Options{})
	resp, err := client.Get("http://localhost:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("Get via localhost succeeded, want refusal")
	}
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("error %v does not wrap *BlockedError", err)
	}
}

func TestClientAllowPrivate(t *testing.T) {
	srv := newServer(t, okHandler())
	client := NewClient(Options{AllowPrivate: true})

	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer resp.Body.Close()
	body, truncated, err := ReadLimited(resp.Body, Options{}.ResponseLimit())
	if err != nil {
		t.Fatalf("ReadLimited: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" || truncated {
		t.Errorf("got %d %q truncated=%v, want 200 \"ok\" false", resp.StatusCode, body, truncated)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	client := NewClient(Options{AllowPrivate: true})

	resp, err := client.Post(srv.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want 302", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Location"), target.URL+"/elsewhere"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target saw %d requests, want 0", n)
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	// Registered after newServer's srv.Close, so it runs first and lets the
	// handler return before Close waits for it.
	t.Cleanup(func() { close(release) })

	client := NewClient(Options{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("Get succeeded, want timeout")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v is not a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("timeout took %v, want about 200ms", elapsed)
	}
}

func TestNewClientConfig(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")

	c := NewClient(Options{})
	if c.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %v, want %v", c.Timeout, DefaultTimeout)
	}
	if c.CheckRedirect == nil || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Error("CheckRedirect does not return http.ErrUseLastResponse")
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *http.Transport", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set; proxies must not be used")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Error("TLS minimum version is below 1.2")
	}
	if tr.TLSClientConfig.RootCAs != nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS does not use verified system roots")
	}
	if tr.ResponseHeaderTimeout != DefaultTimeout || tr.TLSHandshakeTimeout <= 0 {
		t.Errorf("ResponseHeaderTimeout = %v, TLSHandshakeTimeout = %v", tr.ResponseHeaderTimeout, tr.TLSHandshakeTimeout)
	}
	if tr.MaxIdleConnsPerHost < 2 {
		t.Errorf("MaxIdleConnsPerHost = %d, want pooling", tr.MaxIdleConnsPerHost)
	}

	c = NewClient(Options{Timeout: 3 * time.Second})
	if c.Timeout != 3*time.Second {
		t.Errorf("Timeout = %v, want 3s", c.Timeout)
	}
}

func TestOptionsDefaults(t *testing.T) {
	var o Options
	if o.RequestTimeout() != 10*time.Second {
		t.Errorf("RequestTimeout() = %v, want 10s", o.RequestTimeout())
	}
	if o.ResponseLimit() != 64<<10 {
		t.Errorf("ResponseLimit() = %d, want 65536", o.ResponseLimit())
	}
	o = Options{Timeout: time.Second, MaxResponseBytes: 100}
	if o.RequestTimeout() != time.Second || o.ResponseLimit() != 100 {
		t.Errorf("explicit options not used: %v %d", o.RequestTimeout(), o.ResponseLimit())
	}
}

func TestReadLimited(t *testing.T) {
	tests := []struct {
		in        string
		n         int64
		want      string
		truncated bool
	}{
		{"", 0, "", false},
		{"", 10, "", false},
		{"a", 0, "", true},
		{"hello", 10, "hello", false},
		{"hello", 5, "hello", false},
		{"hello!", 5, "hello", true},
		{"hello, world", 5, "hello", true},
		{"hello", -1, "", true},
	}
	for _, tt := range tests {
		// OneByteReader makes sure short reads are handled.
		body, truncated, err := ReadLimited(iotest.OneByteReader(strings.NewReader(tt.in)), tt.n)
		if err != nil {
			t.Errorf("ReadLimited(%q, %d): %v", tt.in, tt.n, err)
			continue
		}
		if string(body) != tt.want || truncated != tt.truncated {
			t.Errorf("ReadLimited(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, body, truncated, tt.want, tt.truncated)
		}
	}
}

func TestReadLimitedDoesNotOverread(t *testing.T) {
	r := bytes.NewReader(make([]byte, 1000))
	body, truncated, err := ReadLimited(r, 10)
	if err != nil || len(body) != 10 || !truncated {
		t.Fatalf("got len %d truncated=%v err=%v", len(body), truncated, err)
	}
	if r.Len() != 1000-11 {
		t.Errorf("read %d bytes from the source, want 11", 1000-r.Len())
	}
}

func TestReadLimitedMaxInt(t *testing.T) {
	body, truncated, err := ReadLimited(strings.NewReader("abc"), 1<<63-1)
	if err != nil || string(body) != "abc" || truncated {
		t.Errorf("got %q truncated=%v err=%v", body, truncated, err)
	}
}

func TestReadLimitedError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom))
	body, _, err := ReadLimited(r, 10)
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if string(body) != "ab" {
		t.Errorf("body = %q, want the bytes read before the error", body)
	}
}

// TestBlockedRanges: every range's first and last address is blocked, in
// its IPv4-mapped form too, so that registration and the dialer, which
// both ask Blocked, agree on the whole list.
func TestBlockedRanges(t *testing.T) {
	t.Parallel()
	for _, p := range BlockedRanges() {
		for _, a := range []netip.Addr{p.Addr(), lastOf(p)} {
			require.True(t, Blocked(a), "%s of %s", a, p)
			if a.Is4() {
				require.True(t, Blocked(netip.AddrFrom16(a.As16())), "::ffff:%s of %s", a, p)
			}
		}
	}
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestParseHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host    string
		want    string // "" for a name
		wantErr bool
	}{
		{"127.0.0.1", "127.0.0.1", false},
		{"127.0.0.1.", "127.0.0.1", false},
		{"2130706433", "127.0.0.1", false},
		{"0x7f000001", "127.0.0.1", false},
		{"0X7F000001", "127.0.0.1", false},
		{"0x7f.0.0.1", "127.0.0.1", false},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1", false},
		{"0177.0.0.1", "127.0.0.1", false},
		{"0177.0000.0000.0001", "127.0.0.1", false},
		{"017700000001", "127.0.0.1", false},
		{"127.1", "127.0.0.1", false},
		{"127.0.1", "127.0.0.1", false},
		{"127.65535", "127.0.255.255", false},
		{"10.1", "10.0.0.1", false},
		{"0", "0.0.0.0", false},
		{"0x", "0.0.0.0", false},
		{"3232235521", "192.168.0.1", false},
		{"134744072", "8.8.8.8", false},
		{"::1", "::1", false},
		{"::ffff:7f00:1", "::ffff:127.0.0.1", false},
		{"::127.0.0.1", "::7f00:1", false},

		{"example.com", "", false},
		{"example.com.", "", false},
		{"localhost", "", false},
		{"0x7f.example", "", false},
		{"1.2.3.a", "", false},
		{"deadbeef", "", false},

		{"1.2.3.999", "", true},
		{"256.0.0.1", "", true},
		{"4294967296", "", true},
		{"127.16777216", "", true},
		{"1.2.3.4.5", "", true},
		{"08.0.0.1", "", true},
		{"0x1g.0.0.1", "", true},
		{"127..1", "", true},
		{"example.123", "", true},
		{"example.0x1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			addr, numeric, err := ParseHost(tt.host)
			if tt.wantErr {
				require.Error(t, err)
				require.Contains(t, err.Error(), "not a valid IPv4 address")
				return
			}
			require.NoError(t, err)
			if tt.want == "" {
				require.False(t, numeric, "a name")
				return
			}
			require.True(t, numeric)
			require.Equal(t, netip.MustParseAddr(tt.want), addr)
		})
	}
}

// loopbackForms are spellings of a refused address in a URL's host (with
// a port: %s) that a resolver or a browser reads as that address without
// a DNS lookup, each with what the error names.
var loopbackForms = []struct {
	name, url, wantErr string
}{
	{"decimal", "http://2130706433:%s/", "127.0.0.1"},
	{"hex", "http://0x7f000001:%s/", "127.0.0.1"},
	{"hex-dotted", "http://0x7f.0.0.1:%s/", "127.0.0.1"},
	{"octal", "http://0177.0.0.1:%s/", "127.0.0.1"},
	{"short-2", "http://127.1:%s/", "127.0.0.1"},
	{"short-3", "http://127.0.1:%s/", "127.0.0.1"},
	{"trailing-dot", "http://127.0.0.1.:%s/", "127.0.0.1"},
	{"mapped", "http://[::ffff:127.0.0.1]:%s/", "127.0.0.1"},
	{"mapped-hex", "http://[::ffff:7f00:1]:%s/", "127.0.0.1"},
	{"compatible", "http://[::127.0.0.1]:%s/", "::7f00:1"},
	{"nat64", "http://[64:ff9b::7f00:1]:%s/", "64:ff9b::7f00:1"},
	{"6to4", "http://[2002:7f00:1::]:%s/", "2002:7f00:1::"},
	{"ipv6-loopback", "http://[::1]:%s/", "::1"},
	{"unspecified", "http://0.0.0.0:%s/", "0.0.0.0"},
	{"this-network-short", "http://0:%s/", "0.0.0.0"},
	{"benchmarking", "http://198.18.0.1:%s/", "198.18.0.1"},
	{"reserved", "http://240.0.0.1:%s/", "240.0.0.1"},
	{"cgnat", "http://100.64.0.1:%s/", "100.64.0.1"},
	{"private-decimal", "http://3232235521:%s/", "192.168.0.1"},
	{"metadata-hex", "http://0xa9fea9fe:%s/", "169.254.169.254"},
}

// TestCheckURLRefusesEveryLoopbackForm: each spelling is refused at
// registration, naming the address it denotes, and accepted when private
// addresses are allowed.
func TestCheckURLRefusesEveryLoopbackForm(t *testing.T) {
	t.Parallel()
	for _, tt := range loopbackForms {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := fmt.Sprintf(tt.url, "8080")
			err := CheckURL(raw, false)
			require.Error(t, err, raw)
			require.Contains(t, err.Error(), tt.wantErr)
			require.Contains(t, err.Error(), AllowSetting, "the message says how to allow it")
			require.NoError(t, CheckURL(raw, true))
		})
	}
}

// TestCheckURLHostsFile: a name that the hosts file maps to a refused
// address is refused; registration reads the file through the lookup seam
// and never asks DNS.
func TestCheckURLHostsFile(t *testing.T) {
	t.Parallel()
	hosts := filepath.Join(t.TempDir(), "hosts")
	require.NoError(t, os.WriteFile(hosts, []byte(`# a comment
127.0.0.1	localhost loopback.test
::1	ip6-loopback.test  # trailing comment
10.1.2.3 Intranet.Test
203.0.113.9 docs.test
8.8.4.4 public.test
bogus line
`), 0o600))
	rules := URLRules{LookupHost: LookupHostsFile(hosts)}
	for host, want := range map[string]string{
		"loopback.test":      "127.0.0.1",
		"LOOPBACK.test.":     "127.0.0.1",
		"ip6-loopback.test":  "::1",
		"intranet.test":      "10.1.2.3",
		"docs.test":          "203.0.113.9",
		"public.test":        "",
		"not-in-hosts.test":  "",
		"example.com":        "",
		"sub.loopback.test":  "",
		"loopback.test.evil": "",
	} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			err := rules.Check(context.Background(), "https://"+host+"/hook")
			if want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "resolves to "+want)
			require.NoError(t, URLRules{AllowPrivate: true, LookupHost: rules.LookupHost}.Check(context.Background(), "https://"+host+"/hook"))
		})
	}

	t.Run("Seam", func(t *testing.T) {
		t.Parallel()
		var asked []string
		r := URLRules{LookupHost: func(_ context.Context, host string) ([]netip.Addr, error) {
			asked = append(asked, host)
			return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")}, nil
		}}
		err := r.Check(context.Background(), "https://Rebind.Example./x")
		require.ErrorContains(t, err, "resolves to 127.0.0.1")
		require.Equal(t, []string{"rebind.example"}, asked)
		require.NoError(t, r.Check(context.Background(), "https://8.8.8.8/x"), "an address is not looked up")
		require.Len(t, asked, 1)

		failing := URLRules{LookupHost: func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no answer") }}
		require.NoError(t, failing.Check(context.Background(), "https://example.com/x"), "no answer: left to the dial-time check")
	})

	t.Run("UnreadableFile", func(t *testing.T) {
		t.Parallel()
		none := LookupHostsFile(filepath.Join(t.TempDir(), "none"))
		_, err := none(context.Background(), "x")
		require.Error(t, err)
		require.NoError(t, URLRules{LookupHost: none}.Check(context.Background(), "https://example.com/x"))
	})
}

func TestCheckURLLimits(t *testing.T) {
	t.Parallel()
	label := strings.Repeat("a", 63)
	host253 := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".")
	require.Len(t, host253, 253)
	require.NoError(t, CheckURL("https://"+host253+"/x", false))
	err := CheckURL("https://"+host253+"c/x", false)
	require.ErrorContains(t, err, "url host is longer than 253 characters")

	base := "https://example.com/"
	require.NoError(t, CheckURL(base+strings.Repeat("p", MaxURLLength-len(base)), false))
	err = CheckURL(base+strings.Repeat("p", MaxURLLength-len(base)+1), false)
	require.ErrorContains(t, err, "url is longer than 2048 characters")
	require.ErrorContains(t, CheckURL(base+strings.Repeat("p", 1<<20), true), "longer than", "with private addresses allowed too")

	require.ErrorContains(t, CheckURL("https://bücher.example/x", false), "xn--")
	require.ErrorContains(t, CheckURL("http://１２７.０.０.１/x", true), "ASCII", "full-width digits that IDNA would map to 127.0.0.1")
	require.NoError(t, CheckURL("https://xn--bcher-kva.example/x", false))
	require.ErrorContains(t, CheckURL("https://1.2.3.999/x", true), "not a valid IPv4 address")
}

func TestPathSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    []string
		wantErr string
	}{
		{"https://h", []string{"", ""}, ""},
		{"https://h/", []string{"", ""}, ""},
		{"https://h/hooks/a", []string{"", "hooks", "a"}, ""},
		{"https://h/hooks/a/", []string{"", "hooks", "a", ""}, ""},
		{"https://h/hooks/%61", []string{"", "hooks", "a"}, ""},
		{"https://h/hooks/%7e.x-y_z", []string{"", "hooks", "~.x-y_z"}, ""},
		{"https://h/hooks/a%3fb", []string{"", "hooks", "a%3Fb"}, ""},
		{"https://h/hooks/a%20b", []string{"", "hooks", "a%20b"}, ""},
		{"https://h/hooks/...", []string{"", "hooks", "..."}, ""},
		{"https://h/hooks/..a", []string{"", "hooks", "..a"}, ""},
		{"https://h/hooks/a?x=../y", []string{"", "hooks", "a"}, ""},

		{"https://h/hooks/a/../b", nil, "dot segments"},
		{"https://h/hooks/a/./b", nil, "dot segments"},
		{"https://h/hooks/a/..", nil, "dot segments"},
		{"https://h/..", nil, "dot segments"},
		{"https://h/hooks/a/%2e%2e/b", nil, "dot segments"},
		{"https://h/hooks/a/%2E%2E/b", nil, "dot segments"},
		{"https://h/hooks/a/%2e%2E/b", nil, "dot segments"},
		{"https://h/hooks/a/.%2e/b", nil, "dot segments"},
		{"https://h/hooks/a/%2e./b", nil, "dot segments"},
		{"https://h/hooks/a/%2e/b", nil, "dot segments"},
		{"https://h/hooks/a/..;/b", nil, "dot segments"},
		{"https://h/hooks/a/..;x=1/b", nil, "dot segments"},
		{"https://h/hooks/a%2f..%2fb", nil, "encoded slashes"},
		{"https://h/hooks/a%2Fb", nil, "encoded slashes"},
		{"https://h/hooks/a%5c..%5cb", nil, "backslashes"},
		{`https://h/hooks/a\..\b`, nil, "backslashes"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(tt.url)
			require.NoError(t, err)
			got, err := PathSegments(u)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, CheckURL(tt.url, true), tt.wantErr, "registration refuses it too")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestClientRefusesEveryLoopbackForm: the dial-time guard refuses what
// registration refuses: each spelling of a loopback address, and a name
// the lookup seam (a hosts file here, never DNS) maps to loopback. Allowed,
// the IPv4 spellings reach the loopback server, so the client reads them
// as registration does.
func TestClientRefusesEveryLoopbackForm(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	hosts := filepath.Join(t.TempDir(), "hosts")
	require.NoError(t, os.WriteFile(hosts, []byte("127.0.0.1 loopback.test\n10.9.9.9 intranet.test\n"), 0o600))
	lookup := LookupHostsFile(hosts)
	guarded := NewClient(Options{LookupHost: lookup})

	urls := []string{fmt.Sprintf("http://loopback.test:%s/", port), fmt.Sprintf("http://intranet.test:%s/", port)}
	for _, f := range loopbackForms {
		urls = append(urls, fmt.Sprintf(f.url, port))
	}
	for _, u := range urls {
		resp, err := guarded.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		var be *BlockedError
		require.ErrorAs(t, err, &be, u)
		require.Error(t, URLRules{LookupHost: lookup}.Check(context.Background(), u), "registration refuses %s too", u)
	}
	require.Zero(t, hits.Load(), "nothing reached the server")

	allowed := NewClient(Options{AllowPrivate: true, LookupHost: lookup})
	for _, f := range loopbackForms {
		u := fmt.Sprintf(f.url, port)
		if f.wantErr != "127.0.0.1" || strings.Contains(u, "[") {
			continue // only spellings of 127.0.0.1 the IPv4 stack reaches
		}
		resp, err := allowed.Get(u)
		require.NoError(t, err, u)
		resp.Body.Close()
	}
	resp, err := allowed.Get(fmt.Sprintf("http://loopback.test:%s/", port))
	require.NoError(t, err)
	resp.Body.Close()
	require.Positive(t, hits.Load())

	_, err = allowed.Get(fmt.Sprintf("http://1.2.3.999:%s/", port))
	require.ErrorContains(t, err, "not a valid IPv4 address")
	_, err = allowed.Get(fmt.Sprintf("http://nowhere.test:%s/", port))
	require.ErrorContains(t, err, "no such host", "the seam's silence is not a fall back to DNS")
}
