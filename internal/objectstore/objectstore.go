// Package objectstore stores kiln's blobs (uploaded files, result chunks,
// output files) in S3-compatible storage or a local folder.
//
// Both implementations behave the same way, which the conformance suite in
// objectstoretest checks: keys are slash-separated paths, Put and Compose are
// atomic (a failed or cancelled write leaves the previous object, if any,
// untouched and nothing half-written behind), List walks keys in lexical byte
// order, and presigned URLs let clients move large objects without going
// through kiln's memory. Nothing here holds a whole object in memory.
//
// An S3 bucket presigns URLs to the S3 server itself. A folder has no server
// of its own, so kiln serves its presigned URLs with Handler, mounted at
// SignedPath under Options.PublicURL.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrNotExist is returned (wrapped) when an object does not exist. Test
	// for it with errors.Is.
	ErrNotExist = errors.New("objectstore: object does not exist")
	// ErrPresignUnsupported is returned (wrapped) by PresignPut and
	// PresignGet of a bucket that cannot make URLs: a folder opened without
	// Options.PublicURL.
	ErrPresignUnsupported = errors.New("objectstore: presigned URLs need Options.PublicURL")
)

const (
	// PresignMaxExpiry is the longest expiry of a presigned URL, S3's limit.
	// The shortest is one second.
	PresignMaxExpiry = 7 * 24 * time.Hour
	// MaxPutSize is the largest object a presigned PUT accepts, S3's limit
	// for one PUT. Larger objects go up in parts that Compose joins.
	MaxPutSize = 5 << 30
)

// MaxKeyLength is the longest key in bytes, S3's limit.
const MaxKeyLength = 1024

// Info describes a stored object.
type Info struct {
	// Key is the object's key, without any prefix the store was opened with.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
	// ETag changes whenever the object's content is replaced. It is opaque:
	// S3 gives an MD5 or a multipart hash, the filesystem a size and mtime
	// pair.
	ETag string
	// Metadata is the object's user metadata (S3's x-amz-meta-*, keys in
	// lower case without that prefix), from Stat on stores that keep it; the
	// folder store keeps none.
	Metadata map[string]string
}

// Locator is a store that receives bucket notifications: it maps a key of
// the server's, in a bucket, to its own key, or reports that the object is
// not its own.
type Locator interface {
	Locate(bucket, key string) (string, bool)
}

// Bucket stores objects under string keys.
//
// A key is one or more non-empty segments separated by "/", none of them "."
// or "..", valid UTF-8 without NUL, at most MaxKeyLength bytes. The same key
// may not be both an object and the parent of another (for example "a" and
// "a/b"): S3 allows it, a folder does not.
type Bucket interface {
	// Put streams r into key. size is the exact length, or -1 when unknown;
	// then the object is still streamed, never buffered whole. When size is
	// not -1 and r yields more or fewer bytes, Put fails.
	//
	// If r returns an error or ctx is cancelled, Put returns an error that
	// wraps it, no object (and no partial upload or temporary file) is left
	// behind, and any previous object at key is unchanged. Once r has been
	// read to its end, cancelling ctx no longer stops Put (for up to
	// PutDrainedGrace): it finishes storing the object, since S3 may have
	// committed it already and an error would wrongly say it had not. Put
	// never reads r after it returns.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)

	// Get opens the object at key for reading. The caller must close it.
	// A missing key gives an error that wraps ErrNotExist, here and in
	// GetRange and Stat.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// GetRange opens length bytes of the object at key from offset; length
	// -1 reads to the end. A range past the end of the object is cut short,
	// so an offset at or past the end yields an empty reader.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat describes the object at key.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes the object at key. Deleting a missing key is not an
	// error.
	Delete(ctx context.Context, key string) error

	// List calls fn for every object whose key starts with prefix, at any
	// depth, in lexical byte order of keys. An error from fn stops the walk
	// and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error

	// PresignPut returns a URL that accepts one HTTP PUT of the object's
	// bytes at key, with a Content-Length of at most MaxPutSize, until
	// expiry (from one second to PresignMaxExpiry) has passed. The URL may be
	// used more than once; each PUT replaces the object atomically, as Put
	// does. Anyone holding the URL can write key, so hand it out as a secret.
	PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error)

	// PresignGet returns a URL that serves the object at key, with HTTP
	// Range support, to GET until expiry (as in PresignPut) has passed. A
	// filename that is not empty is sent in a Content-Disposition:
	// attachment header. The object need not exist yet: the URL answers 404
	// while it does not.
	PresignGet(ctx context.Context, key string, expiry time.Duration, filename string) (string, error)

	// Compose writes the concatenation of the objects at srcs, in order, to
	// dst, and returns dst's Info. It works server-side where the store can
	// and otherwise streams, never holding a whole source in memory. dst is
	// written atomically, as by Put; srcs are left in place and may include
	// dst. No srcs give an empty object. A missing source gives an error
	// that wraps ErrNotExist, and nothing is written. Sources must not change
	// while Compose runs.
	Compose(ctx context.Context, dst string, srcs []string) (Info, error)

	// ComposeSources is Compose of sources whose sizes the caller may
	// know, so that the store need not ask for them: on S3, a source smaller
	// than MinMultipartPartSize of known size costs one request (a ranged
	// GET, several at once) instead of two. Sources of at least
	// MinMultipartPartSize are still copied server-side. A source whose
	// length is not the size given gives an error that wraps
	// ErrSizeMismatch, and nothing is written.
	ComposeSources(ctx context.Context, dst string, srcs []Source) (Info, error)

	// CreateMultipart starts a multipart upload to key; parts are presigned
	// with PresignPart and assembled with CompleteMultipart.
	CreateMultipart(ctx context.Context, key string) (uploadID string, err error)

	// PresignPart returns a URL for one HTTP PUT of part number n (1 to
	// MaxMultipartParts) of the multipart upload, valid until expiry (as in
	// PresignPut). A client may send Content-MD5 (base64) with the PUT; the
	// store rejects a part whose bytes do not match it. A later PUT of the
	// same part replaces it.
	PresignPart(ctx context.Context, key, uploadID string, n int, expiry time.Duration) (string, error)

	// CompleteMultipart assembles the parts received, in part-number order,
	// into key, and returns its Info. parts are the expected part numbers
	// and must be exactly 1..len(parts); a part not received gives an error
	// that wraps ErrNotExist, and nothing is written. On S3, parts other than
	// the last must be at least MinMultipartPartSize (ErrPartTooSmall). A
	// part larger than maxPartSize, when that is above 0, gives an error
	// that wraps ErrPartTooLarge, and nothing is written.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (Info, error)

	// AbortMultipart discards the upload and its parts. Aborting an upload
	// that no longer exists is not an error.
	AbortMultipart(ctx context.Context, key, uploadID string) error

	// Close releases the bucket's resources.
	Close() error
}

// Source is an object that ComposeSources reads.
type Source struct {
	// Key is the object's key.
	Key string
	// Size is the object's length in bytes, or -1 when the caller does not
	// know it.
	Size int64
}

// ErrSizeMismatch is returned (wrapped) by ComposeSources when a source's
// length is not the size given, and by Compose when a source changes
// while it runs.
var ErrSizeMismatch = errors.New("objectstore: a source's length is not the size given")

// unsized is keys as Sources of unknown size.
func unsized(keys []string) []Source {
	srcs := make([]Source, len(keys))
	for i, k := range keys {
		srcs[i] = Source{Key: k, Size: -1}
	}
	return srcs
}

// validateSources checks srcs' keys and sizes.
func validateSources(srcs []Source) error {
	for _, src := range srcs {
		if err := validateKey(src.Key); err != nil {
			return fmt.Errorf("source %q: %w", src.Key, err)
		}
		if src.Size < -1 {
			return fmt.Errorf("source %q: invalid size %d", src.Key, src.Size)
		}
	}
	return nil
}

const (
	// MaxMultipartParts is the most parts a multipart upload may have.
	MaxMultipartParts = 10000
	// MinMultipartPartSize is the smallest part but the last that S3
	// accepts in a multipart upload. A folder has no such limit.
	MinMultipartPartSize = 5 << 20
)

// ErrPartTooLarge is returned (wrapped) by CompleteMultipart when a part is
// larger than the caller allows.
var ErrPartTooLarge = errors.New("objectstore: a multipart part is larger than allowed")

// ErrPartTooSmall is returned (wrapped) by CompleteMultipart when a part other
// than the last is smaller than MinMultipartPartSize on S3.
var ErrPartTooSmall = errors.New("objectstore: a multipart part other than the last is smaller than 5 MiB")

// checkPartNumbers checks that parts are exactly 1..len(parts), in order.
func checkPartNumbers(parts []int) error {
	if len(parts) == 0 || len(parts) > MaxMultipartParts {
		return fmt.Errorf("want 1 to %d parts, got %d", MaxMultipartParts, len(parts))
	}
	for i, n := range parts {
		if n != i+1 {
			return fmt.Errorf("parts must be numbered 1..%d in order; parts[%d] is %d", len(parts), i, n)
		}
	}
	return nil
}

func validatePartNumber(n int) error {
	if n < 1 || n > MaxMultipartParts {
		return fmt.Errorf("part number %d out of range [1, %d]", n, MaxMultipartParts)
	}
	return nil
}

// Options are the settings of OpenWith beyond the URL.
type Options struct {
	// PublicURL is kiln's base URL as clients reach it, like
	// http://localhost:4080 or https://kiln.example.com/prefix. A folder's
	// presigned URLs point at PublicURL + SignedPath, where kiln must serve
	// Handler. S3 ignores it: its URLs point at the S3 endpoint. Default:
	// none, and a folder's PresignPut and PresignGet fail with
	// ErrPresignUnsupported.
	PublicURL string

	// SigningKey signs a folder's presigned URLs with HMAC-SHA256; at least
	// 32 bytes. Every kiln process that serves a folder's URLs must share it.
	// S3 ignores it: its URLs are signed with the S3 credentials. Default: a
	// random key made once per process, so the URLs die with the process.
	SigningKey []byte

	// CORSOrigins are the origins (scheme://host[:port]) of web pages that
	// may use presigned URLs from a browser: a folder's Handler answers
	// their CORS preflights and adds CORS headers to its answers. S3
	// ignores it: SetCORS sets the bucket's CORS rules. Default: none, no
	// CORS headers.
	CORSOrigins []string
}

// signingKeyMinLength is the shortest Options.SigningKey.
const signingKeyMinLength = 32

func (o Options) validate() error {
	if o.SigningKey != nil && len(o.SigningKey) < signingKeyMinLength {
		return fmt.Errorf("objectstore: Options.SigningKey: want at least %d bytes, got %d", signingKeyMinLength, len(o.SigningKey))
	}
	if _, err := normalizeOrigins(o.CORSOrigins); err != nil {
		return fmt.Errorf("objectstore: Options.CORSOrigins: %w", err)
	}
	if o.PublicURL == "" {
		return nil
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil {
		return fmt.Errorf("objectstore: Options.PublicURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("objectstore: Options.PublicURL %q: want http[s]://host[:port][/path] with no query", o.PublicURL)
	}
	return nil
}

// Open opens the store that rawURL names:
//
//	file:///abs/path      a local folder, created if missing
//	file://./rel/path     a local folder relative to the working directory
//	s3://bucket?endpoint=host:port&region=us-east-1&secure=false&prefix=p/
//
// For s3, endpoint defaults to s3.amazonaws.com, secure to true, and region
// is detected when empty. Credentials come from the URL's userinfo
// (s3://ACCESS:SECRET@bucket) or else from the AWS SDK's default chain:
// the environment (AWS_ACCESS_KEY_ID, ...), shared config and SSO, web
// identity, ECS container credentials and the EC2 instance profile. With prefix, every key lives
// under that prefix inside the bucket, so several users can share a bucket.
// The bucket is created if it does not exist.
//
// Open is OpenWith with no Options, so a folder cannot presign URLs.
func Open(ctx context.Context, rawURL string) (Bucket, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith opens the store that rawURL names, as Open does, with options.
func OpenWith(ctx context.Context, rawURL string, o Options) (Bucket, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("objectstore: parse URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		root, err := parseFileURL(u)
		if err != nil {
			return nil, err
		}
		return openFile(root, o)
	case "s3":
		cfg, err := parseS3URL(u)
		if err != nil {
			return nil, err
		}
		return openS3(ctx, cfg)
	case "":
		return nil, errors.New("objectstore: URL has no scheme, want file:// or s3://")
	default:
		return nil, fmt.Errorf("objectstore: unsupported URL scheme %q, want file or s3", u.Scheme)
	}
}

// validateKey enforces the key rules of Bucket so that both implementations
// accept exactly the same keys.
func validateKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case len(key) > MaxKeyLength:
		return fmt.Errorf("key longer than %d bytes", MaxKeyLength)
	case !utf8.ValidString(key):
		return errors.New("key is not valid UTF-8")
	case strings.IndexByte(key, 0) >= 0:
		return errors.New("key contains NUL")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return errors.New("key has an empty segment (leading, trailing or double slash)")
		case ".", "..":
			return fmt.Errorf("key has a %q segment", seg)
		}
	}
	return nil
}

func validatePrefix(prefix string) error {
	if !utf8.ValidString(prefix) {
		return errors.New("prefix is not valid UTF-8")
	}
	return nil
}

func validateExpiry(expiry time.Duration) error {
	if expiry < time.Second || expiry > PresignMaxExpiry {
		return fmt.Errorf("expiry %v out of range [1s, %v]", expiry, PresignMaxExpiry)
	}
	return nil
}

// contentDisposition is the Content-Disposition header that makes a download
// save as filename. FormatMediaType quotes or RFC 2231-encodes the name as
// needed, control characters and non-ASCII included, so any name is safe.
func contentDisposition(filename string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": filename})
}

func validateRange(offset, length int64) error {
	if offset < 0 {
		return fmt.Errorf("negative offset %d", offset)
	}
	if length < -1 {
		return fmt.Errorf("invalid length %d", length)
	}
	return nil
}
