package objectstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// fileMultipartDir, under fileTempDir, holds a folder per multipart upload
// with a file per part received, named after its number.
const fileMultipartDir = "multipart"

// errBadDigest reports a part whose bytes do not match its Content-MD5.
var errBadDigest = errors.New("the Content-MD5 you specified did not match what was received")

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// uploadDir is the folder of a multipart upload's parts.
func (b *fileBucket) uploadDir(uploadID string) (string, error) {
	if !validUploadID(uploadID) {
		return "", fmt.Errorf("invalid upload ID %q", uploadID)
	}
	return filepath.Join(b.tmp, fileMultipartDir, uploadID), nil
}

func (b *fileBucket) CreateMultipart(ctx context.Context, key string) (string, error) {
	if _, err := b.path(key); err != nil {
		return "", fmt.Errorf("objectstore: create multipart %q: %w", key, err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	dir, _ := b.uploadDir(id)
	// removeUploadDir may remove the parent folder between MkdirAll's
	// steps; try again then.
	var err error
	for range 5 {
		if err = os.MkdirAll(dir, fileDirMode); !isMissing(err) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("objectstore: create multipart %q: %w", key, err)
	}
	return id, nil
}

func (b *fileBucket) PresignPart(ctx context.Context, key, uploadID string, n int, expiry time.Duration) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("objectstore: presign part %d of %q: %w", n, key, err)
	}
	if err := validatePartNumber(n); err != nil {
		return fail(err)
	}
	if !validUploadID(uploadID) {
		return fail(fmt.Errorf("invalid upload ID %q", uploadID))
	}
	u, err := b.presignWith(http.MethodPut, key, expiry, "", uploadID+"/"+strconv.Itoa(n))
	if err != nil {
		return fail(err)
	}
	return u, nil
}

func (b *fileBucket) CompleteMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (Info, error) {
	info, err := b.completeMultipart(ctx, key, uploadID, parts, maxPartSize)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: complete multipart %q: %w", key, err)
	}
	return info, nil
}

func (b *fileBucket) completeMultipart(ctx context.Context, key, uploadID string, parts []int, maxPartSize int64) (Info, error) {
	if _, err := b.path(key); err != nil {
		return Info{}, err
	}
	if err := checkPartNumbers(parts); err != nil {
		return Info{}, err
	}
	dir, err := b.uploadDir(uploadID)
	if err != nil {
		return Info{}, err
	}
	if _, err := os.Stat(dir); isMissing(err) {
		return Info{}, fmt.Errorf("upload %s: %w", uploadID, ErrNotExist)
	}
	paths := make([]string, len(parts))
	var total int64
	for i, n := range parts {
		paths[i] = filepath.Join(dir, strconv.Itoa(n))
		fi, err := os.Stat(paths[i])
		if isMissing(err) {
			return Info{}, fmt.Errorf("part %d was never uploaded: %w", n, ErrNotExist)
		}
		if err != nil {
			return Info{}, err
		}
		if maxPartSize > 0 && fi.Size() > maxPartSize {
			return Info{}, fmt.Errorf("part %d is %d bytes: %w", n, fi.Size(), ErrPartTooLarge)
		}
		total += fi.Size()
	}
	r := &filesReader{paths: paths}
	defer r.Close()
	info, err := b.put(ctx, key, r, total)
	if err != nil {
		return Info{}, err
	}
	_ = removeUploadDir(dir)
	return info, nil
}

func (b *fileBucket) AbortMultipart(ctx context.Context, key, uploadID string) error {
	dir, err := b.uploadDir(uploadID)
	if err != nil {
		return fmt.Errorf("objectstore: abort multipart %q: %w", key, err)
	}
	if err := removeUploadDir(dir); err != nil {
		return fmt.Errorf("objectstore: abort multipart %q: %w", key, err)
	}
	return nil
}

// removeUploadDir removes an upload's folder and, when it is the last, the
// folder of uploads.
func removeUploadDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	_ = os.Remove(filepath.Dir(dir)) // fails while other uploads remain
	return nil
}

// putPart stores the body of a presigned part PUT as part n of the upload,
// atomically, after checking it against wantMD5 when that is not nil, and
// returns the part's ETag: its MD5 in hex, as S3's.
func (b *fileBucket) putPart(ctx context.Context, uploadID string, n int, r io.Reader, size int64, wantMD5 []byte) (string, error) {
	dir, err := b.uploadDir(uploadID)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("upload %s: %w", uploadID, ErrNotExist)
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		if isMissing(err) {
			return "", fmt.Errorf("upload %s: %w", uploadID, ErrNotExist)
		}
		return "", err
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	var h hash.Hash = md5.New()
	pr := newPutReader(ctx, r, size)
	if _, err := io.Copy(io.MultiWriter(f, h), pr); err != nil {
		return "", cmp.Or(pr.cause(), err)
	}
	if wantMD5 != nil && !bytes.Equal(h.Sum(nil), wantMD5) {
		return "", errBadDigest
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(n))); err != nil {
		if isMissing(err) {
			return "", fmt.Errorf("upload %s: %w", uploadID, ErrNotExist)
		}
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tempPattern is the name of a temporary file of putPart (and of Put).
const tempPattern = "put-*"

// sweepMultipartTemp removes the temporary files of part PUTs, in every
// multipart upload's folder, last written before before.
func (b *fileBucket) sweepMultipartTemp(ctx context.Context, before time.Time) (int, error) {
	root := filepath.Join(b.tmp, fileMultipartDir)
	uploads, err := os.ReadDir(root)
	if isMissing(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, u := range uploads {
		if !u.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		dir := filepath.Join(root, u.Name())
		entries, err := os.ReadDir(dir)
		if isMissing(err) {
			continue // completed or aborted meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if ok, _ := filepath.Match(tempPattern, e.Name()); !ok {
				continue // a part received, which its upload still needs
			}
			removed, err := removeIfStale(filepath.Join(dir, e.Name()), e, before)
			if removed {
				n++
			}
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// filesReader reads files one after another, opening each only when it gets
// to it.
type filesReader struct {
	paths []string
	cur   *os.File
}

func (r *filesReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.paths) == 0 {
				return 0, io.EOF
			}
			f, err := os.Open(r.paths[0])
			if err != nil {
				return 0, err
			}
			r.cur, r.paths = f, r.paths[1:]
		}
		n, err := r.cur.Read(p)
		if err == io.EOF {
			_ = r.cur.Close()
			r.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *filesReader) Close() error {
	if r.cur == nil {
		return nil
	}
	err := r.cur.Close()
	r.cur = nil
	return err
}
