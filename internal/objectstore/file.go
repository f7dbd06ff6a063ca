package objectstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// fileTempDir holds Put's temporary files, inside the root so that the
	// final rename never crosses filesystems. Keys may not start with it.
	fileTempDir = ".tmp"
	// TempMaxAge is how long a temporary file of a folder may go unwritten
	// before Open, or SweepTemp with it, removes it as the leftover of a
	// process killed in the middle of a write. A write in progress touches
	// its file with every block it writes.
	TempMaxAge = time.Hour

	fileDirMode  = 0o750
	fileFileMode = 0o640
)

// fileBucket stores each object as a file under root, named after its key.
type fileBucket struct {
	root string // absolute and clean
	tmp  string // root/.tmp

	publicURL   string // Options.PublicURL + SignedPath without its final "/"; "" when unset
	signingKey  []byte
	corsOrigins []string // Options.CORSOrigins, normalized
}

// parseFileURL returns the absolute folder that a file:// URL names.
func parseFileURL(u *url.URL) (string, error) {
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("objectstore: file URL %q: want file:///abs/path or file://./rel/path with no query", u.Redacted())
	}
	var p string
	switch u.Host {
	case "", "localhost":
		p = u.Path
	case ".", "..":
		p = u.Host + u.Path
	default:
		return "", fmt.Errorf("objectstore: file URL %q: host must be empty (file:///abs/path) or . (file://./rel/path)", u.Redacted())
	}
	if p == "" {
		return "", fmt.Errorf("objectstore: file URL %q has no path", u.Redacted())
	}
	root, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return "", fmt.Errorf("objectstore: file URL %q: %w", u.Redacted(), err)
	}
	return root, nil
}

func openFile(root string, o Options) (*fileBucket, error) {
	b := &fileBucket{
		root:       root,
		tmp:        filepath.Join(root, fileTempDir),
		signingKey: o.SigningKey,
	}
	if b.signingKey == nil {
		b.signingKey = processSigningKey()
	}
	var err error
	if b.corsOrigins, err = normalizeOrigins(o.CORSOrigins); err != nil {
		return nil, fmt.Errorf("objectstore: Options.CORSOrigins: %w", err)
	}
	if o.PublicURL != "" {
		b.publicURL = strings.TrimSuffix(o.PublicURL, "/") + strings.TrimSuffix(SignedPath, "/")
	}
	if err := os.MkdirAll(b.tmp, fileDirMode); err != nil {
		return nil, fmt.Errorf("objectstore: open %s: %w", root, err)
	}
	// Best effort: a file it cannot remove only wastes space, and the next
	// sweep tries again.
	_, _ = b.sweepTemp(context.Background(), time.Now().Add(-TempMaxAge))
	return b, nil
}

// SweepTemp removes the temporary files that writes to b left behind when
// their process was killed in the middle (a Put, a presigned PUT, a part
// of a multipart upload), those last written before before, and counts
// them; with before TempMaxAge ago it never takes a write in progress. A
// folder removes them when it is opened too; a process that runs for long
// calls SweepTemp from time to time. Only a folder keeps temporary files:
// for any other bucket SweepTemp does nothing.
func SweepTemp(ctx context.Context, b Bucket, before time.Time) (int, error) {
	fb, ok := b.(*fileBucket)
	if !ok {
		return 0, nil
	}
	n, err := fb.sweepTemp(ctx, before)
	if err != nil {
		return n, fmt.Errorf("objectstore: sweep temporary files: %w", err)
	}
	return n, nil
}

// sweepTemp removes what Put and putPart left in the folder of temporary
// files: Put's temporary files, and those of the parts of multipart
// uploads, never the parts themselves, which live until their upload is
// completed or aborted.
func (b *fileBucket) sweepTemp(ctx context.Context, before time.Time) (int, error) {
	entries, err := os.ReadDir(b.tmp)
	if isMissing(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if e.Name() == fileMultipartDir && e.IsDir() {
			m, err := b.sweepMultipartTemp(ctx, before)
			n += m
			errs = append(errs, err)
			continue
		}
		removed, err := removeIfStale(filepath.Join(b.tmp, e.Name()), e, before)
		if removed {
			n++
		}
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// removeIfStale removes the file at path, whose entry is e, if it was last
// written before before. A file gone meanwhile is no error.
func removeIfStale(path string, e fs.DirEntry, before time.Time) (bool, error) {
	if e.IsDir() {
		return false, nil
	}
	info, err := e.Info()
	if isMissing(err) {
		return false, nil
	}
	if err != nil || !info.ModTime().Before(before) {
		return false, err
	}
	if err := os.Remove(path); err != nil {
		if isMissing(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// path returns the file that holds key, after checking key.
func (b *fileBucket) path(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	if key == fileTempDir || strings.HasPrefix(key, fileTempDir+"/") {
		return "", fmt.Errorf("keys under %q are reserved by the filesystem store", fileTempDir)
	}
	rel := filepath.FromSlash(key)
	if (filepath.Separator != '/' && strings.ContainsRune(key, filepath.Separator)) || !filepath.IsLocal(rel) {
		return "", errors.New("key is not a local path")
	}
	return filepath.Join(b.root, rel), nil
}

func (b *fileBucket) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	info, err := b.put(ctx, key, r, size)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: put %q: %w", key, err)
	}
	return info, nil
}

func (b *fileBucket) put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	return b.putChecked(ctx, key, r, size, nil)
}

// putChecked is put, which calls check, when not nil, once r has been read
// and fails without replacing the object if check does.
func (b *fileBucket) putChecked(ctx context.Context, key string, r io.Reader, size int64, check func() error) (Info, error) {
	if size < -1 {
		return Info{}, fmt.Errorf("invalid size %d", size)
	}
	// Once io.Copy has read r to the end, the Put goes on even if ctx is
	// cancelled, as an S3 Put does.
	return b.putFile(ctx, key, func(f *os.File) error {
		pr := newPutReader(ctx, r, size)
		if _, err := io.Copy(f, pr); err != nil {
			return cmp.Or(pr.cause(), err)
		}
		if check != nil {
			return check()
		}
		return nil
	})
}

// putFile stores what write writes to a temporary file at key, atomically:
// if write fails, nothing is stored.
func (b *fileBucket) putFile(ctx context.Context, key string, write func(f *os.File) error) (Info, error) {
	path, err := b.path(key)
	if err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}

	f, err := os.CreateTemp(b.tmp, tempPattern)
	if isMissing(err) { // someone removed it; make it again
		if err = os.MkdirAll(b.tmp, fileDirMode); err == nil {
			f, err = os.CreateTemp(b.tmp, tempPattern)
		}
	}
	if err != nil {
		return Info{}, err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return Info{}, err
	}
	if err := f.Chmod(fileFileMode); err != nil {
		return Info{}, err
	}
	if err := f.Sync(); err != nil {
		return Info{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	if err := f.Close(); err != nil {
		return Info{}, err
	}

	// A concurrent Delete may remove the parent folder between MkdirAll and
	// Rename when it empties it; try again then.
	dir := filepath.Dir(path)
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, fileDirMode); err != nil {
			return Info{}, err
		}
		err = os.Rename(f.Name(), path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			return Info{}, err
		}
	}
	renamed = true
	syncDir(dir)
	return fileInfo(key, fi), nil
}

// syncDir makes a rename in dir durable. Best effort: not every filesystem
// supports syncing a folder.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func fileInfo(key string, fi fs.FileInfo) Info {
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), ETag: fileETag(fi)}
}

// fileETag identifies a file's content without reading it. Put always writes
// a new file, so the inode changes with every write even when the size and a
// coarse mtime do not.
func fileETag(fi fs.FileInfo) string {
	tag := strconv.FormatInt(fi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		tag = strconv.FormatUint(uint64(st.Ino), 16) + "-" + tag
	}
	return tag
}

// isMissing reports whether err means that a path, or one of its parents,
// does not exist as the kind of file asked for.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// open opens key's file and checks that it is a regular file: a folder that
// holds other keys is not an object.
func (b *fileBucket) open(ctx context.Context, op, key string) (*os.File, fs.FileInfo, error) {
	path, err := b.path(key)
	if err != nil {
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	f, err := os.Open(path)
	if isMissing(err) {
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, ErrNotExist)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, fmt.Errorf("objectstore: %s %q: %w", op, key, ErrNotExist)
	}
	return f, fi, nil
}

func (b *fileBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := b.open(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (b *fileBucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := validateRange(offset, length); err != nil {
		return nil, fmt.Errorf("objectstore: get range %q: %w", key, err)
	}
	f, fi, err := b.open(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	// Put replaces files rather than writing into them, so the open file
	// keeps the size it had at open.
	n := max(fi.Size()-offset, 0)
	if length >= 0 {
		n = min(n, length)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, n), f}, nil
}

func (b *fileBucket) Stat(ctx context.Context, key string) (Info, error) {
	f, fi, err := b.open(ctx, "stat", key)
	if err != nil {
		return Info{}, err
	}
	_ = f.Close()
	return fileInfo(key, fi), nil
}

func (b *fileBucket) Delete(ctx context.Context, key string) error {
	path, err := b.path(key)
	if err != nil {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	fi, err := os.Lstat(path)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a folder of other keys, not an object
	}
	if err := os.Remove(path); err != nil && !isMissing(err) {
		return fmt.Errorf("objectstore: delete %q: %w", key, err)
	}
	// Remove the folders this emptied, so they do not pile up. Removing a
	// folder that is not empty fails, which ends the climb.
	for dir := filepath.Dir(path); dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func (b *fileBucket) List(ctx context.Context, prefix string, fn func(Info) error) error {
	if err := validatePrefix(prefix); err != nil {
		return fmt.Errorf("objectstore: list %q: %w", prefix, err)
	}
	// Start in the deepest folder that holds every key with this prefix.
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
	}
	if dirKey != "" && validateKey(dirKey) != nil {
		return nil // no valid key can have this prefix
	}
	err := b.walk(ctx, dirKey, prefix, fn)
	var fnErr listFnError
	if errors.As(err, &fnErr) {
		return fnErr.err
	}
	if err != nil {
		return fmt.Errorf("objectstore: list %q: %w", prefix, err)
	}
	return nil
}

// listFnError carries an error from List's callback out of the walk
// unwrapped.
type listFnError struct{ err error }

func (e listFnError) Error() string { return e.err.Error() }

// walk lists the folder of dirKey in key order. Sorting a folder's entries
// by name, with "/" appended to folders, gives the lexical order of the full
// keys: "a-b" < "a/c" < "ab" although the folder "a" sorts before "a-b".
func (b *fileBucket) walk(ctx context.Context, dirKey, prefix string, fn func(Info) error) error {
	dir := b.root
	if dirKey != "" {
		dir = filepath.Join(b.root, filepath.FromSlash(dirKey))
	}
	entries, err := os.ReadDir(dir)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(x, y fs.DirEntry) int { return strings.Compare(sortName(x), sortName(y)) })

	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if dirKey == "" && e.Name() == fileTempDir {
			continue
		}
		key := e.Name()
		if dirKey != "" {
			key = dirKey + "/" + key
		}
		if validateKey(key) != nil {
			continue // not something Put could have written
		}
		switch {
		case e.IsDir():
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := b.walk(ctx, key, prefix, fn); err != nil {
					return err
				}
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			fi, err := e.Info()
			if isMissing(err) {
				continue // deleted since ReadDir
			}
			if err != nil {
				return err
			}
			if err := fn(fileInfo(key, fi)); err != nil {
				return listFnError{err}
			}
		}
	}
	return nil
}

func (b *fileBucket) Compose(ctx context.Context, dst string, srcs []string) (Info, error) {
	return b.ComposeSources(ctx, dst, unsized(srcs))
}

func (b *fileBucket) ComposeSources(ctx context.Context, dst string, srcs []Source) (Info, error) {
	info, err := b.compose(ctx, dst, srcs)
	if err != nil {
		return Info{}, fmt.Errorf("objectstore: compose %q: %w", dst, err)
	}
	return info, nil
}

// compose copies the sources' files into dst's, file to file: io.Copy
// between two *os.File is copy_file_range on Linux, so the bytes stay in
// the kernel (or are shared, on a filesystem that reflinks). Every source is
// stat'd first, so a missing one fails before anything is written.
func (b *fileBucket) compose(ctx context.Context, dst string, srcs []Source) (Info, error) {
	if _, err := b.path(dst); err != nil {
		return Info{}, err
	}
	if err := validateSources(srcs); err != nil {
		return Info{}, err
	}
	paths := make([]string, len(srcs))
	sizes := make([]int64, len(srcs))
	for i, src := range srcs {
		info, err := b.Stat(ctx, src.Key)
		if err != nil {
			return Info{}, err
		}
		if src.Size != -1 && src.Size != info.Size {
			return Info{}, fmt.Errorf("source %q is %d bytes, not %d: %w", src.Key, info.Size, src.Size, ErrSizeMismatch)
		}
		paths[i], sizes[i] = filepath.Join(b.root, filepath.FromSlash(src.Key)), info.Size
	}
	return b.putFile(ctx, dst, func(f *os.File) error {
		for i, path := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := copyFile(f, path, sizes[i]); err != nil {
				return fmt.Errorf("source %q: %w", srcs[i].Key, err)
			}
		}
		return nil
	})
}

// copyFile appends the file at path, which must be size bytes long, to f.
func copyFile(f *os.File, path string, size int64) error {
	src, err := os.Open(path)
	if isMissing(err) {
		return ErrNotExist
	}
	if err != nil {
		return err
	}
	defer src.Close()
	// One byte more than size, to see that the source has not grown.
	n, err := io.Copy(f, io.LimitReader(src, size+1))
	switch {
	case err != nil:
		return err
	case n < size:
		return errSourceChanged
	case n > size:
		return errSourceLonger
	}
	return nil
}

func (b *fileBucket) Close() error { return nil }
