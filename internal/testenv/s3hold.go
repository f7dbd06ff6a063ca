package testenv

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// S3Hold is a reverse proxy on loopback in front of an S3 server that can
// hold the requests for one object, so that a test catches kiln in the
// middle of working on it: to kill it there, or to see what it does while
// it waits. Requests keep their Host header, so S3 signatures made for the
// proxy's address stay valid.
type S3Hold struct {
	// URL is the s3:// URL of the bucket through the proxy.
	URL string

	mu      sync.Mutex
	key     string        // the object whose requests are held ("": none)
	hit     chan struct{} // closed at the first held request
	release chan struct{} // closed by Release
}

// HoldS3 starts a proxy in front of the server of s3URL (an s3:// URL with
// an endpoint, as S3URL returns) until t ends.
func HoldS3(t testing.TB, s3URL string) *S3Hold {
	t.Helper()
	u, err := url.Parse(s3URL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	q := u.Query()
	scheme := "https"
	if q.Get("secure") == "false" {
		scheme = "http"
	}
	target := &url.URL{Scheme: scheme, Host: q.Get("endpoint")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	h := &S3Hold{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed
	}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait := h.held(r); wait != nil {
			select {
			case <-wait:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		h.Release()
		_ = srv.Close()
	})
	q.Set("endpoint", ln.Addr().String())
	u.RawQuery = q.Encode()
	h.URL = u.String()
	return h
}

// Hold holds every request for the object key (of the bucket's own keys,
// after any prefix of the URL) from now until Release. The channel it
// returns is closed at the first such request.
func (h *S3Hold) Hold(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key, h.hit, h.release = key, make(chan struct{}), make(chan struct{})
	return h.hit
}

// Release lets the held requests, and every later one, through.
func (h *S3Hold) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.key != "" {
		close(h.release)
		h.key = ""
	}
}

// held returns what a request for the held object waits on, or nil.
func (h *S3Hold) held(r *http.Request) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Path style: /bucket/key.
	if h.key == "" || !strings.HasSuffix(r.URL.Path, "/"+h.key) {
		return nil
	}
	select {
	case <-h.hit:
	default:
		close(h.hit)
	}
	return h.release
}
