package objectstore

import (
	"context"

	"github.com/minio/minio-go/v7"
)

// FileTempDir is where the filesystem store keeps Put's temporary files.
const FileTempDir = fileTempDir

// IncompleteUploads returns the keys, under the bucket's prefix, of
// unfinished multipart uploads for key in an S3 bucket.
func IncompleteUploads(ctx context.Context, b Bucket, key string) ([]string, error) {
	sb := b.(*s3Bucket)
	var keys []string
	for up := range sb.client.ListIncompleteUploads(ctx, sb.bucket, sb.prefix+key, true) {
		if up.Err != nil {
			return nil, up.Err
		}
		keys = append(keys, up.Key)
	}
	return keys, nil
}

// StartUpload begins a multipart upload of key in an S3 bucket and leaves it
// unfinished, to show that IncompleteUploads sees such uploads.
func StartUpload(ctx context.Context, b Bucket, key string) (abort func() error, err error) {
	sb := b.(*s3Bucket)
	core := minio.Core{Client: sb.client}
	id, err := core.NewMultipartUpload(ctx, sb.bucket, sb.prefix+key, minio.PutObjectOptions{})
	if err != nil {
		return nil, err
	}
	return func() error { return core.AbortMultipartUpload(ctx, sb.bucket, sb.prefix+key, id) }, nil
}

// SetComposeHook makes an S3 bucket's Compose call hook before each part of
// its upload; an error from hook fails the Compose.
func SetComposeHook(b Bucket, hook func(part int) error) {
	b.(*s3Bucket).composeHook = hook
}

// ComposeOneByOne makes Compose work as it did before it fetched small
// sources ahead and sent parts at once, a baseline for benchmarks: one part
// at a time on S3, each source read in turn through kiln on both stores.
func ComposeOneByOne(b Bucket) Bucket {
	switch b := b.(type) {
	case *s3Bucket:
		b.composeParts, b.fetchAhead = 1, 0
		return b
	case *fileBucket:
		return streamedFileBucket{b}
	}
	panic("unknown bucket")
}

// streamedFileBucket composes through a concatReader, not file to file.
type streamedFileBucket struct{ *fileBucket }

func (b streamedFileBucket) Compose(ctx context.Context, dst string, srcs []string) (Info, error) {
	ranges := make([]srcRange, len(srcs))
	var total int64
	for i, key := range srcs {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return Info{}, err
		}
		ranges[i] = srcRange{key, 0, info.Size}
		total += info.Size
	}
	r := newConcatReader(ctx, b.fileBucket, ranges, nil, 0)
	defer r.Close()
	return b.put(ctx, dst, r, total)
}

// CORSWithRule and CORSRulesAllow are SetCORS's handling of an S3 bucket's
// CORS rules.
var (
	CORSWithRule   = corsWithRule
	CORSRulesAllow = corsRulesAllow
)

// CORSProbeKey is the object CheckCORS writes and removes on S3.
const CORSProbeKey = corsProbeKey
