// Package objectstore stores kiln's blobs (uploaded files, result chunks,
// output files) in S3-compatible storage or a local folder.
//
// Both implementations behave the same way, which the conformance suite in
// objectstoretest checks: keys are slash-separated paths, Put is atomic (a
// failed or cancelled Put leaves the previous object, if any, untouched and
// nothing half-written behind), and List walks keys in lexical byte order.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotExist is returned (wrapped) when an object does not exist. Test for
// it with errors.Is.
var ErrNotExist = errors.New("objectstore: object does not exist")

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

	// Close releases the bucket's resources.
	Close() error
}

// Open opens the store that rawURL names:
//
//	file:///abs/path      a local folder, created if missing
//	file://./rel/path     a local folder relative to the working directory
//	s3://bucket?endpoint=host:port&region=us-east-1&secure=false&prefix=p/
//
// For s3, endpoint defaults to s3.amazonaws.com, secure to true, and region
// is detected when empty. Credentials come from the URL's userinfo
// (s3://ACCESS:SECRET@bucket) or else from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. With prefix, every key lives
// under that prefix inside the bucket, so several users can share a bucket.
// The bucket is created if it does not exist.
func Open(ctx context.Context, rawURL string) (Bucket, error) {
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
		return openFile(root)
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

func validateRange(offset, length int64) error {
	if offset < 0 {
		return fmt.Errorf("negative offset %d", offset)
	}
	if length < -1 {
		return fmt.Errorf("invalid length %d", length)
	}
	return nil
}
