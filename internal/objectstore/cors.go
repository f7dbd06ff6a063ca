package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/cors"
)

// Browsers may use presigned URLs from a page of another origin (a web app
// that sends its users' files straight to storage) only when the storage
// answers with CORS headers for that origin. A folder's Handler answers for
// Options.CORSOrigins; an S3 bucket answers by its CORS rules, which SetCORS
// sets.

// The CORS settings of presigned URLs, for a folder and for an S3 bucket's
// rule alike.
var (
	// CORSMethods are the methods a page may use on presigned URLs.
	CORSMethods = []string{http.MethodGet, http.MethodHead, http.MethodPut}
	// CORSAllowHeaders are the request headers a page may send: Content-MD5
	// has the store check a PUT's bytes, Range reads part of a download.
	CORSAllowHeaders = []string{"Content-MD5", "Content-Type", "Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}
	// CORSExposeHeaders are the response headers a page may read: ETag
	// above all, which S3 clients collect from each multipart part's PUT.
	CORSExposeHeaders = []string{"ETag", "Content-Length", "Content-Range", "Content-Disposition", "Accept-Ranges", "Last-Modified"}
)

const (
	// corsMaxAge is how long, in seconds, a browser may cache a preflight's
	// answer (Chromium keeps it at most two hours).
	corsMaxAge = 3600
	// corsRuleID names the CORS rule SetCORS keeps in an S3 bucket; rules
	// of other IDs are the owner's and are left alone.
	corsRuleID = "kiln-presigned-urls"
	// corsProbeKey is the object CheckCORS writes, through a presigned URL,
	// and removes.
	corsProbeKey = "kiln-cors-check"
)

// NormalizeOrigin returns origin as browsers send it in the Origin header:
// scheme://host[:port], lower case, without the scheme's default port. It
// fails on anything else (a path, a query, a wildcard, "null").
func NormalizeOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("origin %q: %w", origin, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.Contains(u.Host, "*") {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], as in https://app.example.com", origin)
	}
	if strings.HasSuffix(origin, "/") {
		return "", fmt.Errorf("origin %q: no trailing slash: browsers send https://app.example.com", origin)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

func normalizeOrigins(origins []string) ([]string, error) {
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// unwrapBucket returns the bucket under wrappers that have an Unwrap method
// (faultbucket's, a test's).
func unwrapBucket(b Bucket) Bucket {
	for {
		u, ok := b.(interface{ Unwrap() Bucket })
		if !ok {
			return b
		}
		b = u.Unwrap()
	}
}

// SetCORS makes browsers on origins able to use b's presigned URLs, and
// reports when it cannot. Call it at start, with the origins the folder was
// opened with (Options.CORSOrigins).
//
// A folder needs nothing set: Handler answers for Options.CORSOrigins, and
// SetCORS is CheckCORS. On S3, when the bucket's CORS rules do not already
// allow origins, SetCORS puts kiln's own rule (kiln-presigned-urls: the
// origins, CORSMethods, CORSAllowHeaders, CORSExposeHeaders), keeping the
// bucket's other rules. Where the store refuses (MinIO has no per-bucket
// CORS, and answers NotImplemented; a key without s3:PutBucketCORS gets
// AccessDenied), SetCORS checks what the server answers instead, as
// CheckCORS does, and returns nil when that is enough (MinIO's own
// MINIO_API_CORS_ALLOW_ORIGIN, say, allows the origins); otherwise it
// returns an error saying both. No origins: nothing to do.
func SetCORS(ctx context.Context, b Bucket, origins []string) error {
	origins, err := normalizeOrigins(origins)
	if err != nil {
		return fmt.Errorf("objectstore: set CORS: %w", err)
	}
	if len(origins) == 0 {
		return nil
	}
	s3b, ok := unwrapBucket(b).(*s3Bucket)
	if !ok {
		return CheckCORS(ctx, b, origins)
	}
	setErr := s3b.setCORS(ctx, origins)
	if setErr == nil {
		return nil
	}
	if checkErr := CheckCORS(ctx, b, origins); checkErr != nil {
		return fmt.Errorf("objectstore: set the CORS rules of bucket %s: %w; and the server does not allow the origins itself: %w", s3b.bucket, setErr, checkErr)
	}
	return nil
}

// setCORS puts kiln's rule for origins in the bucket's CORS configuration,
// unless the rules allow them already.
func (b *s3Bucket) setCORS(ctx context.Context, origins []string) error {
	current, err := b.client.GetBucketCors(ctx, b.bucket)
	if err != nil {
		return err
	}
	if current != nil && corsRulesAllow(current.CORSRules, origins) {
		return nil
	}
	return b.client.SetBucketCors(ctx, b.bucket, corsWithRule(current, origins))
}

// corsWithRule is config with kiln's rule for origins in place of any
// earlier one of kiln's; the other rules stay, in their order.
func corsWithRule(config *cors.Config, origins []string) *cors.Config {
	var rules []cors.Rule
	if config != nil {
		for _, r := range config.CORSRules {
			if r.ID != corsRuleID {
				rules = append(rules, r)
			}
		}
	}
	return cors.NewConfig(append(rules, cors.Rule{
		ID:            corsRuleID,
		AllowedOrigin: slices.Clone(origins),
		AllowedMethod: slices.Clone(CORSMethods),
		AllowedHeader: slices.Clone(CORSAllowHeaders),
		ExposeHeader:  slices.Clone(CORSExposeHeaders),
		MaxAgeSeconds: corsMaxAge,
	}))
}

// corsRulesAllow reports whether S3 CORS rules let every origin PUT and GET
// presigned URLs with CORSAllowHeaders, reading their ETag. S3 applies the
// first rule that matches a request's origin and method.
func corsRulesAllow(rules []cors.Rule, origins []string) bool {
	for _, origin := range origins {
		for _, method := range []string{http.MethodPut, http.MethodGet} {
			i := slices.IndexFunc(rules, func(r cors.Rule) bool {
				return slices.ContainsFunc(r.AllowedOrigin, func(p string) bool { return wildcardMatch(strings.ToLower(p), origin) }) &&
					slices.Contains(r.AllowedMethod, method)
			})
			if i < 0 {
				return false
			}
			r := rules[i]
			for _, h := range CORSAllowHeaders {
				if !slices.ContainsFunc(r.AllowedHeader, func(p string) bool { return wildcardMatch(strings.ToLower(p), strings.ToLower(h)) }) {
					return false
				}
			}
			if !slices.ContainsFunc(r.ExposeHeader, func(h string) bool { return strings.EqualFold(h, "ETag") }) {
				return false
			}
		}
	}
	return true
}

// wildcardMatch matches s against pattern, where S3 allows one "*" for any
// run of characters.
func wildcardMatch(pattern, s string) bool {
	before, after, ok := strings.Cut(pattern, "*")
	if !ok {
		return pattern == s
	}
	return len(s) >= len(before)+len(after) && strings.HasPrefix(s, before) && strings.HasSuffix(s, after)
}

// CheckCORS reports whether browsers on origins can use b's presigned URLs
// as a web app's upload does: a preflight for a PUT with Content-MD5, then
// the PUT, whose ETag the page must be able to read. The error names each
// origin that cannot, and why. It is what `kiln doctor` calls.
//
// A folder passes when it was opened with the origins in
// Options.CORSOrigins (Handler answers for them). On S3, CheckCORS asks the
// server: it presigns a PUT of a small object (kiln-cors-check), sends the
// preflight and the PUT from each origin, reads the CORS headers of the
// answers, and removes the object. No origins: nothing to check.
func CheckCORS(ctx context.Context, b Bucket, origins []string) error {
	origins, err := normalizeOrigins(origins)
	if err != nil {
		return fmt.Errorf("objectstore: check CORS: %w", err)
	}
	if len(origins) == 0 {
		return nil
	}
	var errs []error
	switch ub := unwrapBucket(b).(type) {
	case *fileBucket:
		for _, o := range origins {
			if !slices.Contains(ub.corsOrigins, o) {
				errs = append(errs, fmt.Errorf("origin %s: not among the folder store's CORS origins (KILN_CORS_ORIGINS)", o))
			}
		}
	default:
		defer func() { _ = b.Delete(context.WithoutCancel(ctx), corsProbeKey) }()
		for _, o := range origins {
			if err := probeCORS(ctx, b, o); err != nil {
				errs = append(errs, fmt.Errorf("origin %s: %w", o, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("objectstore: browsers cannot use presigned URLs: %w", err)
	}
	return nil
}

// probeCORS does what a browser on origin does to PUT a part: the
// preflight, then the PUT, and checks the CORS headers of both answers.
func probeCORS(ctx context.Context, b Bucket, origin string) error {
	u, err := b.PresignPut(ctx, corsProbeKey, time.Minute)
	if err != nil {
		return err
	}
	pre, err := corsRequest(ctx, http.MethodOptions, u, origin, nil, http.Header{
		"Access-Control-Request-Method":  {http.MethodPut},
		"Access-Control-Request-Headers": {"content-md5,content-type"},
	})
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	switch {
	case pre.StatusCode/100 != 2:
		return fmt.Errorf("preflight: the server answers %s", pre.Status)
	case !allowsOrigin(pre.Header, origin):
		return fmt.Errorf("preflight: the answer does not allow the origin (Access-Control-Allow-Origin: %q)", pre.Header.Get("Access-Control-Allow-Origin"))
	case !headerListHas(pre.Header, "Access-Control-Allow-Methods", http.MethodPut):
		return fmt.Errorf("preflight: the answer does not allow PUT (Access-Control-Allow-Methods: %q)", pre.Header.Get("Access-Control-Allow-Methods"))
	case !headerListHas(pre.Header, "Access-Control-Allow-Headers", "Content-MD5") || !headerListHas(pre.Header, "Access-Control-Allow-Headers", "Content-Type"):
		return fmt.Errorf("preflight: the answer does not allow the Content-MD5 and Content-Type headers (Access-Control-Allow-Headers: %q)", pre.Header.Get("Access-Control-Allow-Headers"))
	}
	const body = "kiln checks CORS\n"
	put, err := corsRequest(ctx, http.MethodPut, u, origin, strings.NewReader(body), http.Header{"Content-Type": {"text/plain"}})
	if err != nil {
		return fmt.Errorf("PUT: %w", err)
	}
	switch {
	case put.StatusCode/100 != 2:
		return fmt.Errorf("PUT: the server answers %s", put.Status)
	case !allowsOrigin(put.Header, origin):
		return fmt.Errorf("PUT: the answer does not allow the origin (Access-Control-Allow-Origin: %q)", put.Header.Get("Access-Control-Allow-Origin"))
	case !headerListHas(put.Header, "Access-Control-Expose-Headers", "ETag"):
		return fmt.Errorf("PUT: the answer does not expose ETag (Access-Control-Expose-Headers: %q)", put.Header.Get("Access-Control-Expose-Headers"))
	}
	return nil
}

// corsRequest sends one request as a browser on origin would, and returns
// the answer with its body read and closed.
func corsRequest(ctx context.Context, method, u, origin string, body *strings.Reader, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = body
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header = header
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp, nil
}

// allowsOrigin reports whether an answer's Access-Control-Allow-Origin
// lets a page on origin read it.
func allowsOrigin(h http.Header, origin string) bool {
	got := h.Get("Access-Control-Allow-Origin")
	return got == "*" || got == origin
}

// headerListHas reports whether the comma-separated list of header name
// holds want, case aside, or "*".
func headerListHas(h http.Header, name, want string) bool {
	for _, v := range h.Values(name) {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "*" || strings.EqualFold(item, want) {
				return true
			}
		}
	}
	return false
}

// cors adds the CORS headers of an answer to a request from a page on an
// allowed origin; for any other origin it adds none, and the browser keeps
// the answer from the page.
func (h fileHandler) cors(w http.ResponseWriter, r *http.Request) {
	if len(h.b.corsOrigins) == 0 {
		return
	}
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if !slices.Contains(h.b.corsOrigins, origin) {
		return
	}
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Expose-Headers", strings.Join(CORSExposeHeaders, ", "))
}

// preflight answers a CORS preflight: 200 with what the page may do when
// the origin, the method and the headers are allowed, else 403 without
// CORS headers, as S3 does. It does not look at the URL's signature: the
// request that follows must carry a valid one.
func (h fileHandler) preflight(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	ok := slices.Contains(h.b.corsOrigins, origin) && slices.Contains(CORSMethods, method)
	var headers []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			if !slices.ContainsFunc(CORSAllowHeaders, func(a string) bool { return strings.EqualFold(a, name) }) {
				ok = false
			}
			headers = append(headers, name)
		}
	}
	if !ok {
		writeS3Error(w, http.StatusForbidden, "AccessForbidden", "CORSResponse: This CORS request is not allowed: the origin, the method or a header is not among the allowed ones.")
		return
	}
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Allow-Methods", strings.Join(CORSMethods, ", "))
	if len(headers) > 0 {
		hdr.Set("Access-Control-Allow-Headers", strings.Join(headers, ", "))
	}
	hdr.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	w.WriteHeader(http.StatusOK)
}
