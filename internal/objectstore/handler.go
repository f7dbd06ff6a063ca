package objectstore

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignedPath is where kiln serves Handler: a folder's presigned URLs are
// Options.PublicURL + SignedPath + the escaped key + a signed query.
const SignedPath = "/objects/"

// The query parameters of a folder's presigned URLs.
const (
	paramMethod    = "X-Kiln-Method"
	paramExpires   = "X-Kiln-Expires"
	paramFilename  = "X-Kiln-Filename"
	paramPart      = "X-Kiln-Part" // uploadID/n of a multipart part
	paramSignature = "X-Kiln-Signature"
)

// processSigningKey is the default Options.SigningKey.
var processSigningKey = sync.OnceValue(func() []byte {
	key := make([]byte, signingKeyMinLength)
	_, _ = rand.Read(key) // never fails
	return key
})

func (b *fileBucket) PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error) {
	u, err := b.presign(http.MethodPut, key, expiry, "")
	if err != nil {
		return "", fmt.Errorf("objectstore: presign put %q: %w", key, err)
	}
	return u, nil
}

func (b *fileBucket) PresignGet(ctx context.Context, key string, expiry time.Duration, filename string) (string, error) {
	u, err := b.presign(http.MethodGet, key, expiry, filename)
	if err != nil {
		return "", fmt.Errorf("objectstore: presign get %q: %w", key, err)
	}
	return u, nil
}

func (b *fileBucket) presign(method, key string, expiry time.Duration, filename string) (string, error) {
	return b.presignWith(method, key, expiry, filename, "")
}

func (b *fileBucket) presignWith(method, key string, expiry time.Duration, filename, part string) (string, error) {
	if _, err := b.path(key); err != nil {
		return "", err
	}
	if err := validateExpiry(expiry); err != nil {
		return "", err
	}
	if b.publicURL == "" {
		return "", ErrPresignUnsupported
	}
	// Round up, so that the URL lives at least expiry.
	at := time.Now().Add(expiry)
	expires := at.Unix()
	if at.After(time.Unix(expires, 0)) {
		expires++
	}

	var u strings.Builder
	u.WriteString(b.publicURL)
	for seg := range strings.SplitSeq(key, "/") {
		u.WriteString("/")
		u.WriteString(url.PathEscape(seg))
	}
	fmt.Fprintf(&u, "?%s=%s&%s=%d", paramMethod, method, paramExpires, expires)
	if filename != "" {
		fmt.Fprintf(&u, "&%s=%s", paramFilename, url.QueryEscape(filename))
	}
	if part != "" {
		fmt.Fprintf(&u, "&%s=%s", paramPart, url.QueryEscape(part))
	}
	sig := base64.RawURLEncoding.EncodeToString(b.sign(method, key, expires, filename, part))
	fmt.Fprintf(&u, "&%s=%s", paramSignature, sig)
	return u.String(), nil
}

// sign returns the signature of a presigned URL. Escaping the key and the
// filename keeps newlines out of them, so that no two URLs sign the same
// message.
func (b *fileBucket) sign(method, key string, expires int64, filename, part string) []byte {
	mac := hmac.New(sha256.New, b.signingKey)
	fmt.Fprintf(mac, "%s\n%s\n%d\n%s", method, url.QueryEscape(key), expires, url.QueryEscape(filename))
	if part != "" {
		fmt.Fprintf(mac, "\n%s", url.QueryEscape(part))
	}
	return mac.Sum(nil)
}

// verify checks a request's presigned URL: signed by b, for this method and
// key, and not expired. It returns the signed filename and, when it fails,
// a message for the client.
func (b *fileBucket) verify(method, key string, q url.Values) (filename, part, problem string) {
	const bad = "The request signature does not match, or the URL is not presigned."
	expires, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil || q.Get(paramMethod) != method {
		return "", "", bad
	}
	got, err := base64.RawURLEncoding.DecodeString(q.Get(paramSignature))
	if err != nil {
		return "", "", bad
	}
	filename, part = q.Get(paramFilename), q.Get(paramPart)
	if !hmac.Equal(got, b.sign(method, key, expires, filename, part)) {
		return "", "", bad
	}
	if !time.Now().Before(time.Unix(expires, 0)) {
		return "", "", "Request has expired."
	}
	return filename, part, ""
}

// Handler serves the presigned URLs of a folder bucket b: PUT streams the
// body into the object (atomically, as Put; Content-Length required, at most
// MaxPutSize), GET and HEAD serve it with Range support. A bad, tampered or
// expired URL, or one used with another method than it was signed for, gets
// 403; a missing object 404. Errors have S3's XML form. For pages on
// Options.CORSOrigins, it answers CORS preflights (OPTIONS) and adds CORS
// headers to every answer (see CORSMethods, CORSAllowHeaders,
// CORSExposeHeaders); other origins get none, and browsers refuse them.
//
// Mount it at SignedPath without stripping the path, as in
// mux.Handle(objectstore.SignedPath, objectstore.Handler(b)); when
// Options.PublicURL has a path, whatever serves it must strip that path.
// For any other bucket, Handler answers 404 to everything: S3 serves its
// own URLs.
func Handler(b Bucket) http.Handler { return HandlerWith(b, nil) }

// HandlerOpts are the settings of HandlerWith; nil means none.
type HandlerOpts struct {
	// Authorize, when set, is asked about every request whose URL is
	// valid (signed, unexpired, for its method; HEAD asks as GET), before
	// it is served: whoever handed the URLs out may revoke them, which a
	// signature alone cannot. An error that wraps a *DeniedError refuses
	// the request with 403 AccessDenied and the error's reason; any other
	// error is a 500, logged. Default: every valid URL is served until it
	// expires.
	Authorize func(ctx context.Context, method, key string) error
}

// DeniedError is HandlerOpts.Authorize refusing a request; Reason is what
// the client is told.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return "objectstore: access denied: " + e.Reason }

// HandlerWith is Handler with opts.
func HandlerWith(b Bucket, opts *HandlerOpts) http.Handler {
	fb, ok := b.(*fileBucket)
	if !ok {
		return http.NotFoundHandler()
	}
	h := fileHandler{b: fb}
	if opts != nil {
		h.authorize = opts.Authorize
	}
	return h
}

type fileHandler struct {
	b         *fileBucket
	authorize func(ctx context.Context, method, key string) error
}

func (h fileHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, SignedPath)
	if !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if r.Method == http.MethodOptions && len(h.b.corsOrigins) > 0 && r.Header.Get("Origin") != "" {
		h.preflight(w, r)
		return
	}
	h.cors(w, r) // on every answer, errors included, so a page can read them
	method := r.Method
	switch method {
	case http.MethodHead:
		method = http.MethodGet
	case http.MethodGet, http.MethodPut:
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed.")
		return
	}
	filename, part, problem := h.b.verify(method, key, r.URL.Query())
	if problem != "" {
		writeS3Error(w, http.StatusForbidden, "AccessDenied", problem)
		return
	}
	if h.authorize != nil {
		var denied *DeniedError
		switch err := h.authorize(r.Context(), method, key); {
		case errors.As(err, &denied):
			writeS3Error(w, http.StatusForbidden, "AccessDenied", denied.Reason)
			return
		case err != nil:
			internalError(w, r, err)
			return
		}
	}
	if method == http.MethodPut {
		h.put(w, r, key, part)
		return
	}
	if part != "" {
		writeS3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed.")
		return
	}
	h.get(w, r, key, filename)
}

func (h fileHandler) get(w http.ResponseWriter, r *http.Request, key, filename string) {
	f, fi, err := h.b.open(r.Context(), "get", key)
	if errors.Is(err, ErrNotExist) {
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if err != nil {
		internalError(w, r, err)
		return
	}
	defer f.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream") // what S3 stores for kiln's Puts
	hdr.Set("ETag", strconv.Quote(fileETag(fi)))
	if filename != "" {
		hdr.Set("Content-Disposition", contentDisposition(filename))
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (h fileHandler) put(w http.ResponseWriter, r *http.Request, key, part string) {
	var wantMD5 []byte
	if v := r.Header.Get("Content-MD5"); v != "" {
		sum, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(sum) != md5.Size {
			writeS3Error(w, http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid.")
			return
		}
		wantMD5 = sum
	}
	switch {
	case r.ContentLength < 0:
		writeS3Error(w, http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
		return
	case r.ContentLength > MaxPutSize:
		writeS3Error(w, http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
		return
	}
	body := &errReader{r: r.Body}
	if part != "" {
		h.putPart(w, r, part, body, wantMD5)
		return
	}
	var info Info
	var err error
	if wantMD5 != nil {
		// Check the digest before the object replaces the previous one.
		hr := &hashReader{r: body, h: md5.New()}
		info, err = h.b.putChecked(r.Context(), key, hr, r.ContentLength, func() error {
			if !bytes.Equal(hr.h.Sum(nil), wantMD5) {
				return errBadDigest
			}
			return nil
		})
	} else {
		info, err = h.b.Put(r.Context(), key, body, r.ContentLength)
	}
	switch {
	case errors.Is(err, errBadDigest):
		writeS3Error(w, http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what was received.")
	case err == nil:
		w.Header().Set("ETag", strconv.Quote(info.ETag))
		w.WriteHeader(http.StatusOK)
	case body.err != nil || errors.Is(err, errSize) || r.Context().Err() != nil:
		writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	default:
		internalError(w, r, err)
	}
}

func (h fileHandler) putPart(w http.ResponseWriter, r *http.Request, part string, body *errReader, wantMD5 []byte) {
	uploadID, ns, _ := strings.Cut(part, "/")
	n, err := strconv.Atoi(ns)
	var etag string
	if err == nil {
		etag, err = h.b.putPart(r.Context(), uploadID, n, body, r.ContentLength, wantMD5)
	}
	switch {
	case err == nil:
		w.Header().Set("ETag", strconv.Quote(etag))
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, errBadDigest):
		writeS3Error(w, http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what was received.")
	case errors.Is(err, ErrNotExist):
		writeS3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified multipart upload does not exist.")
	case body.err != nil || errors.Is(err, errSize) || r.Context().Err() != nil:
		writeS3Error(w, http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	default:
		internalError(w, r, err)
	}
}

// hashReader hashes what it reads.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// errReader remembers the error its reader returned, other than EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// internalError logs err, which the client does not get to see.
func internalError(w http.ResponseWriter, r *http.Request, err error) {
	slog.Default().ErrorContext(r.Context(), "objectstore: serving a presigned URL", "method", r.Method, "path", r.URL.Path, "error", err)
	writeS3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
}

func writeS3Error(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
		Message string
	}{Code: code, Message: message})
}
