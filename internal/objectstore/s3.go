package objectstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"golang.org/x/sync/errgroup"
)

const (
	// s3EndpointDefault is the endpoint when the URL names none.
	s3EndpointDefault = "s3.amazonaws.com"
	// s3PartSize is the multipart part size. minio-go holds one part in
	// memory per upload of unknown size, so this bounds a Put's memory.
	s3PartSize = 16 << 20
	// s3SmallPutSize is how much of a reader of unknown size Put reads ahead:
	// an object that ends within it goes up as one PUT instead of a
	// three-request multipart upload.
	s3SmallPutSize = 1 << 20
	// s3StatConcurrency is how many sources Compose stats at once.
	s3StatConcurrency = 16
	// s3ComposeParts is how many parts of its upload Compose sends at once.
	s3ComposeParts = 4
	// s3ComposeFetchAhead is how many small sources each streamed part of a
	// Compose fetches at once (see concatReader).
	s3ComposeFetchAhead = 16
)

// s3Config is what an s3:// URL says.
type s3Config struct {
	bucket    string
	endpoint  string
	region    string
	secure    bool
	prefix    string // "" or ends with "/"
	accessKey string // with secretKey; both empty means from the environment
	secretKey string
}

func parseS3URL(u *url.URL) (s3Config, error) {
	fail := func(format string, args ...any) (s3Config, error) {
		return s3Config{}, fmt.Errorf("objectstore: s3 URL %q: %s", u.Redacted(), fmt.Sprintf(format, args...))
	}
	cfg := s3Config{bucket: u.Host, endpoint: s3EndpointDefault, secure: true}
	if u.Opaque != "" || cfg.bucket == "" {
		return fail("want s3://bucket?endpoint=host:port")
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.bucket); err != nil {
		return fail("%v", err)
	}
	if u.Path != "" && u.Path != "/" {
		return fail("has a path; put keys under a prefix with ?prefix=%s", strings.Trim(u.Path, "/"))
	}
	if u.Fragment != "" {
		return fail("has a fragment")
	}
	if u.User != nil {
		secret, ok := u.User.Password()
		if u.User.Username() == "" || !ok || secret == "" {
			return fail("userinfo must be ACCESS_KEY:SECRET_KEY")
		}
		cfg.accessKey, cfg.secretKey = u.User.Username(), secret
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	for name, values := range q {
		if len(values) != 1 {
			return fail("parameter %s given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "endpoint":
			if v == "" || strings.Contains(v, "/") {
				return fail("endpoint must be host or host:port, got %q", v)
			}
			cfg.endpoint = v
		case "region":
			cfg.region = v
		case "secure":
			if cfg.secure, err = strconv.ParseBool(v); err != nil {
				return fail("secure: %v", err)
			}
		case "prefix":
			p := strings.Trim(v, "/")
			if p != "" {
				if err := validateKey(p); err != nil {
					return fail("prefix: %v", err)
				}
				cfg.prefix = p + "/"
			}
		default:
			return fail("unknown parameter %q (want endpoint, region, secure, prefix)", name)
		}
	}
	return cfg, nil
}

// s3Bucket stores objects in an S3 bucket, under an optional key prefix.
type s3Bucket struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"

	// composeHook, when set by a test, runs before each part of a Compose
	// upload; an error fails the Compose.
	composeHook func(part int) error
	// composeParts and fetchAhead are s3ComposeParts and
	// s3ComposeFetchAhead, unless a benchmark sets them for a baseline.
	composeParts, fetchAhead int
}

func openS3(ctx context.Context, cfg s3Config) (*s3Bucket, error) {
	// Credentials in the URL, else the AWS SDK's default chain.
	var creds *credentials.Credentials
	if cfg.accessKey != "" {
		creds = credentials.NewStaticV4(cfg.accessKey, cfg.secretKey, "")
	} else {
		var err error
		if creds, err = newSDKCredentials(ctx, cfg.region); err != nil {
			return nil, fmt.Errorf("objectstore: open s3://%s: %w", cfg.bucket, err)
		}
	}
	client, err := minio.New(cfg.endpoint, &minio.Options{
		Creds:  creds,
		Secure: cfg.secure,
		Region: cfg.region,
	})
	if err != nil {
		return nil, fmt.Errorf("objectstore: open s3://%s: %w", cfg.bucket, err)
	}
	b := &s3Bucket{client: client, bucket: cfg.bucket, prefix: cfg.prefix,
		composeParts: s3ComposeParts, fetchAhead: s3ComposeFetchAhead}
	if err := b.ensureBucket(ctx, cfg.region); err != nil {
		return nil, fmt.Errorf("objectstore: open s3://%s at %s: %w", cfg.bucket, cfg.endpoint, err)
	}
	return b, nil
}

func (b *s3Bucket) ensureBucket(ctx context.Context, region string) error {
	exists, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil || exists {
		return err
	}
	err = b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: region})
	if err == nil || s3Code(err) == minio.BucketAlreadyOwnedByYou {
		return nil
	}
	// Someone else may have created it since BucketExists.
	if exists, existsErr := b.client.BucketExists(ctx, b.bucket); existsErr == nil && exists {
		return nil
	}
	return err
}

var s3SmallPutPool = sync.Pool{New: func() any { return new([s3SmallPutSize]byte) }}

func (b *s3Bucket) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	info, err := b.put(ctx, key, r, size)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: put %q: %w", key, err)
	}
	return info, nil
}

func (b *s3Bucket) put(ctx context.Context, key string, r io.Reader, size int64) (_ Info, err error) {
	if err := validateKey(key); err != nil {
		return Info{}, err
	}
	if size < -1 {
		return Info{}, fmt.Errorf("invalid size %d", size)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}

	pr := newPutReader(ctx, r, size)
	var body io.Reader = pr
	switch {
	case size == 0:
		// minio-go may not read an empty body at all; check here that the
		// reader is empty.
		if _, err := pr.Read(nil); err != io.EOF {
			return Info{}, err
		}
		body = bytes.NewReader(nil)
	case size < 0:
		buf := s3SmallPutPool.Get().(*[s3SmallPutSize]byte)
		// Reuse buf only after a success: after a failure the HTTP
		// transport may still be reading it.
		defer func() {
			if err == nil {
				s3SmallPutPool.Put(buf)
			}
		}()
		n, err := io.ReadFull(pr, buf[:])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			// A bytes.Reader also lets minio-go retry the request.
			body, size = bytes.NewReader(buf[:n]), int64(n)
		case err != nil:
			return Info{}, err
		default:
			// Size -1 makes minio-go stream a multipart upload, one
			// s3PartSize buffer at a time, and abort it if anything fails.
			body = io.MultiReader(bytes.NewReader(buf[:]), pr)
		}
	}

	reqCtx, stop := pr.requestContext()
	defer stop()
	up, err := b.client.PutObject(reqCtx, b.bucket, b.prefix+key, body, size, minio.PutObjectOptions{
		PartSize: s3PartSize,
	})
	if err != nil {
		// Report the caller's error (a failing reader, a wrong size, a
		// cancelled ctx) rather than what the HTTP transport made of it.
		return Info{}, cmp.Or(pr.cause(), err)
	}
	return Info{
		Key:  key,
		Size: up.Size,
		// Only multipart completion reports the time; a single PUT's
		// response has none, and a HEAD to find out would cost a request.
		ModTime: cmp.Or(up.LastModified, time.Now()).UTC(),
		ETag:    up.ETag,
	}, nil
}

// s3Code returns the S3 error code in err's chain, or "".
func s3Code(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

func isNoSuchKey(err error) bool { return s3Code(err) == minio.NoSuchKey }

func (b *s3Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.get(ctx, "get", key, minio.GetObjectOptions{})
}

func (b *s3Bucket) get(ctx context.Context, op, key string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	if err := validateKey(key); err != nil {
		return nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	// Core's GetObject sends the request now, so a missing key fails here
	// rather than at the first Read, and the body streams unbuffered.
	rc, _, _, err := minio.Core{Client: b.client}.GetObject(ctx, b.bucket, b.prefix+key, opts)
	if isNoSuchKey(err) {
		return nil, fmt.Errorf("objectstore: %s %q: %w", op, key, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	return rc, nil
}

func (b *s3Bucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := validateRange(offset, length); err != nil {
		return nil, fmt.Errorf("objectstore: get range %q: %w", key, err)
	}
	var opts minio.GetObjectOptions
	switch {
	case length == 0:
		// HTTP cannot ask for zero bytes; check that the object exists.
		if _, err := b.stat(ctx, "get range", key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	case length < 0 && offset == 0:
		// The whole object: no Range header.
	case length < 0:
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, fmt.Errorf("objectstore: get range %q: %w", key, err)
		}
	default:
		if err := opts.SetRange(offset, offset+length-1); err != nil {
			return nil, fmt.Errorf("objectstore: get range %q: %w", key, err)
		}
	}
	rc, err := b.get(ctx, "get range", key, opts)
	// 416 means the object exists and the range starts at or past its end.
	if s3Code(err) == minio.InvalidRange {
		return io.NopCloser(strings.NewReader("")), nil
	}
	return rc, err
}

func (b *s3Bucket) Stat(ctx context.Context, key string) (Info, error) {
	return b.stat(ctx, "stat", key)
}

func (b *s3Bucket) stat(ctx context.Context, op, key string) (Info, error) {
	if err := validateKey(key); err != nil {
		return Info{}, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	oi, err := b.client.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
	if isNoSuchKey(err) {
		return Info{}, fmt.Errorf("objectstore: %s %q: %w", op, key, ErrNotExist)
	}
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	return b.info(oi), nil
}

func (b *s3Bucket) info(oi minio.ObjectInfo) Info {
	info := Info{
		Key:     strings.TrimPrefix(oi.Key, b.prefix),
		Size:    oi.Size,
		ModTime: oi.LastModified,
		ETag:    oi.ETag,
	}
	for k, v := range oi.Metadata {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "x-amz-meta-"); ok && len(v) > 0 {
			if info.Metadata == nil {
				info.Metadata = map[string]string{}
			}
			info.Metadata[name] = v[0]
		}
	}
	return info
}

// Locate maps a key of the S3 server (as bucket notifications name it) to
// this store's key, or reports that the object is not this store's.
func (b *s3Bucket) Locate(bucket, key string) (string, bool) {
	if bucket != b.bucket || !strings.HasPrefix(key, b.prefix) {
		return "", false
	}
	return strings.TrimPrefix(key, b.prefix), true
}

func (b *s3Bucket) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	err := b.client.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	return nil
}

func (b *s3Bucket) List(ctx context.Context, prefix string, fn func(Info) error) error {
	if err := validatePrefix(prefix); err != nil {
		return fmt.Errorf("objectstore: list %q: %w", prefix, err)
	}
	// Cancelling stops minio-go's listing when fn ends the walk early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{
		Prefix:    b.prefix + prefix,
		Recursive: true,
	}) {
		if oi.Err != nil {
			return fmt.Errorf("objectstore: list %q: %w", prefix, oi.Err)
		}
		info := b.info(oi)
		if validateKey(info.Key) != nil {
			continue // a folder marker or such, written by another tool
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (b *s3Bucket) PresignPut(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := validateKey(key); err != nil {
		return "", fmt.Errorf("objectstore: presign put %q: %w", key, err)
	}
	if err := validateExpiry(expiry); err != nil {
		return "", fmt.Errorf("objectstore: presign put %q: %w", key, err)
	}
	u, err := b.client.PresignedPutObject(ctx, b.bucket, b.prefix+key, expiry)
	if err != nil {
		return "", fmt.Errorf("objectstore: presign put %q: %w", key, err)
	}
	return u.String(), nil
}

func (b *s3Bucket) PresignGet(ctx context.Context, key string, expiry time.Duration, filename string) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("objectstore: presign get %q: %w", key, err)
	}
	if err := validateKey(key); err != nil {
		return fail(err)
	}
	if err := validateExpiry(expiry); err != nil {
		return fail(err)
	}
	var params url.Values
	if filename != "" {
		params = url.Values{"response-content-disposition": {contentDisposition(filename)}}
	}
	u, err := b.client.PresignedGetObject(ctx, b.bucket, b.prefix+key, expiry, params)
	if err != nil {
		return fail(err)
	}
	return u.String(), nil
}

func (b *s3Bucket) Compose(ctx context.Context, dst string, srcs []string) (Info, error) {
	return b.ComposeSources(ctx, dst, unsized(srcs))
}

func (b *s3Bucket) ComposeSources(ctx context.Context, dst string, srcs []Source) (Info, error) {
	info, err := b.compose(ctx, dst, srcs)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: compose %q: %w", dst, err)
	}
	return info, nil
}

func (b *s3Bucket) compose(ctx context.Context, dst string, srcs []Source) (Info, error) {
	if err := validateKey(dst); err != nil {
		return Info{}, err
	}
	if err := validateSources(srcs); err != nil {
		return Info{}, err
	}
	// Stat the sources of unknown size, and those that will be copied
	// server-side, whose length a ranged copy could not check. A streamed
	// source of known size is checked as it is read: it must end there.
	keys := make([]string, len(srcs))
	sizes := make([]int64, len(srcs))
	var stat []int
	ends := map[string]int64{}
	for i, src := range srcs {
		keys[i], sizes[i] = src.Key, src.Size
		if src.Size < 1 || src.Size >= s3ComposeLimits.minPart {
			stat = append(stat, i)
			continue
		}
		if size, ok := ends[src.Key]; ok && size != src.Size {
			return Info{}, fmt.Errorf("source %q given as %d and %d bytes: %w", src.Key, size, src.Size, ErrSizeMismatch)
		}
		ends[src.Key] = src.Size
	}
	statKeys := make([]string, len(stat))
	for j, i := range stat {
		statKeys[j] = keys[i]
	}
	statSizes, err := b.sizes(ctx, statKeys)
	if err != nil {
		return Info{}, err
	}
	for j, i := range stat {
		if given := sizes[i]; given != -1 && given != statSizes[j] {
			return Info{}, fmt.Errorf("source %q is %d bytes, not %d: %w", keys[i], statSizes[j], given, ErrSizeMismatch)
		}
		if size, ok := ends[keys[i]]; ok && size != statSizes[j] {
			return Info{}, fmt.Errorf("source %q is %d bytes, not %d: %w", keys[i], statSizes[j], size, ErrSizeMismatch)
		}
		sizes[i] = statSizes[j]
	}
	var total int64
	for _, size := range sizes {
		total += size
	}
	if total == 0 {
		// An upload needs a part, and a part of nothing is an odd request
		// that some servers may refuse.
		return b.put(ctx, dst, strings.NewReader(""), 0)
	}
	parts, err := composePlan(keys, sizes, s3ComposeLimits)
	if err != nil {
		return Info{}, err
	}
	return b.composeUpload(ctx, dst, parts, total, ends)
}

// sizes stats keys, several at a time, and returns their sizes. It reports
// the failure of the first key, in order, that failed.
func (b *s3Bucket) sizes(ctx context.Context, keys []string) ([]int64, error) {
	sizes := make([]int64, len(keys))
	errs := make([]error, len(keys))
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, s3StatConcurrency)
		mu     sync.Mutex
		failed bool
	)
	for i, key := range keys {
		if err := validateKey(key); err != nil {
			errs[i] = fmt.Errorf("source %q: %w", key, err)
			break
		}
		sem <- struct{}{}
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			info, err := b.Stat(ctx, key)
			sizes[i], errs[i] = info.Size, err
			if err != nil {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// composeUpload makes dst a multipart upload of parts, b.composeParts at a
// time, and aborts it if anything fails. ends are as in concatReader.
func (b *s3Bucket) composeUpload(ctx context.Context, dst string, parts []composePart, total int64, ends map[string]int64) (_ Info, err error) {
	core := minio.Core{Client: b.client}
	object := b.prefix + dst
	id, err := core.NewMultipartUpload(ctx, b.bucket, object, minio.PutObjectOptions{})
	if err != nil {
		return Info{}, err
	}
	defer func() {
		if err != nil {
			// Even when ctx is cancelled: the parts must not linger.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), PutDrainedGrace)
			defer cancel()
			if abortErr := core.AbortMultipartUpload(ctx, b.bucket, object, id); abortErr != nil {
				err = fmt.Errorf("%w (and abort upload %s: %v)", err, id, abortErr)
			}
		}
	}()

	done := make([]minio.CompletePart, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.composeParts)
	for i, p := range parts {
		n := i + 1
		if gctx.Err() != nil {
			break // a part failed
		}
		if b.composeHook != nil {
			if err := b.composeHook(n); err != nil {
				_ = g.Wait()
				return Info{}, err
			}
		}
		g.Go(func() error {
			part, err := b.composePart(gctx, core, object, id, n, p, ends)
			done[i] = part
			return err
		})
	}
	if err := g.Wait(); err != nil {
		// A cancelled ctx is the cause of whatever minio-go made of it.
		return Info{}, cmp.Or(ctx.Err(), err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	// All parts are up: finish even if ctx is cancelled now, as Put does,
	// rather than risk an error for an upload the server completed.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), PutDrainedGrace)
	defer cancel()
	up, err := core.CompleteMultipartUpload(finishCtx, b.bucket, object, id, done, minio.PutObjectOptions{})
	if err != nil {
		return Info{}, err
	}
	return Info{
		Key:     dst,
		Size:    total,
		ModTime: cmp.Or(up.LastModified, time.Now()).UTC(),
		ETag:    up.ETag,
	}, nil
}

// composePart uploads part number n of upload id: a server-side copy, or the
// streamed ranges, b.fetchAhead small ones fetched at a time.
func (b *s3Bucket) composePart(ctx context.Context, core minio.Core, object, id string, n int, p composePart, ends map[string]int64) (minio.CompletePart, error) {
	if p.copy {
		r := p.ranges[0]
		part, err := core.CopyObjectPart(ctx, b.bucket, b.prefix+r.key, b.bucket, object, id, n, r.offset, r.length, nil)
		if isNoSuchKey(err) {
			return part, fmt.Errorf("source %q: %w", r.key, ErrNotExist)
		}
		return part, err
	}
	cr := newConcatReader(ctx, b, p.ranges, ends, b.fetchAhead)
	// putReader enforces the size and, in cause, waits for a read that the
	// HTTP transport may still be making when the request fails.
	pr := newPutReader(ctx, cr, p.size)
	part, err := core.PutObjectPart(ctx, b.bucket, object, id, n, pr, p.size, minio.PutObjectPartOptions{})
	if cause := pr.cause(); cause != nil {
		err = cause
	}
	_ = cr.Close()
	if err != nil {
		return minio.CompletePart{}, err
	}
	return minio.CompletePart{
		PartNumber:        n,
		ETag:              part.ETag,
		ChecksumCRC32:     part.ChecksumCRC32,
		ChecksumCRC32C:    part.ChecksumCRC32C,
		ChecksumSHA1:      part.ChecksumSHA1,
		ChecksumSHA256:    part.ChecksumSHA256,
		ChecksumCRC64NVME: part.ChecksumCRC64NVME,
	}, nil
}

func (b *s3Bucket) Close() error { return nil }

func (b *s3Bucket) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", fmt.Errorf("objectstore: create multipart %q: %w", key, err)
	}
	id, err := minio.Core{Client: b.client}.NewMultipartUpload(ctx, b.bucket, b.prefix+key, minio.PutObjectOptions{})
	if err != nil {
		return "", fmt.Errorf("objectstore: create multipart %q: %w", key, err)
	}
	return id, nil
}

func (b *s3Bucket) PresignPart(ctx context.Context, key, uploadID string, n int, expiry time.Duration) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("objectstore: presign part %d of %q: %w", n, key, err)
	}
	if err := validateKey(key); err != nil {
		return fail(err)
	}
	if err := validatePartNumber(n); err != nil {
		return fail(err)
	}
	if err := validateExpiry(expiry); err != nil {
		return fail(err)
	}
	if uploadID == "" {
		return fail(errors.New("empty upload ID"))
	}
	u, err := b.client.Presign(ctx, http.MethodPut, b.bucket, b.prefix+key, expiry,
		url.Values{"partNumber": {strconv.Itoa(n)}, "uploadId": {uploadID}})
	if err != nil {
		return fail(err)
	}
	return u.String(), nil
}

func (b *s3Bucket) CompleteMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (Info, error) {
	info, err := b.completeMultipart(ctx, key, uploadID, parts, maxPartSize)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: complete multipart %q: %w", key, err)
	}
	return info, nil
}

func (b *s3Bucket) completeMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (Info, error) {
	if err := validateKey(key); err != nil {
		return Info{}, err
	}
	if err := checkPartNumbers(parts); err != nil {
		return Info{}, err
	}
	core := minio.Core{Client: b.client}
	object := b.prefix + key
	got := make(map[int]minio.ObjectPart, len(parts))
	marker := 0
	for {
		res, err := core.ListObjectParts(ctx, b.bucket, object, uploadID, marker, 1000)
		if err != nil {
			if s3Code(err) == "NoSuchUpload" {
				return Info{}, fmt.Errorf("upload %s: %w", uploadID, ErrNotExist)
			}
			return Info{}, err
		}
		for _, p := range res.ObjectParts {
			got[p.PartNumber] = p
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			break
		}
		marker = res.NextPartNumberMarker
	}
	done := make([]minio.CompletePart, len(parts))
	for i, n := range parts {
		p, ok := got[n]
		if !ok {
			return Info{}, fmt.Errorf("part %d was never uploaded: %w", n, ErrNotExist)
		}
		if maxPartSize > 0 && p.Size > maxPartSize {
			return Info{}, fmt.Errorf("part %d is %d bytes: %w", n, p.Size, ErrPartTooLarge)
		}
		if i < len(parts)-1 && p.Size < MinMultipartPartSize {
			return Info{}, fmt.Errorf("part %d is %d bytes: %w", n, p.Size, ErrPartTooSmall)
		}
		done[i] = minio.CompletePart{PartNumber: n, ETag: p.ETag}
	}
	if _, err := core.CompleteMultipartUpload(ctx, b.bucket, object, uploadID, done, minio.PutObjectOptions{}); err != nil {
		if s3Code(err) == "EntityTooSmall" {
			return Info{}, fmt.Errorf("%w: %w", ErrPartTooSmall, err)
		}
		return Info{}, err
	}
	return b.stat(ctx, "stat", key)
}

func (b *s3Bucket) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("objectstore: abort multipart %q: %w", key, err)
	}
	err := minio.Core{Client: b.client}.AbortMultipartUpload(ctx, b.bucket, b.prefix+key, uploadID)
	if err != nil && s3Code(err) != "NoSuchUpload" {
		return fmt.Errorf("objectstore: abort multipart %q: %w", key, err)
	}
	return nil
}
