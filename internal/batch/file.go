package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/dbtext"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// File purposes kiln gives files itself.
const (
	// PurposeBatch is a batch's input.
	PurposeBatch = "batch"
	// PurposeBatchOutput is a batch's output or error file.
	PurposeBatchOutput = "batch_output"
	// PurposeFineTune is a curation export.
	PurposeFineTune = "fine-tune"
)

// UploadPurposes are the purposes a client may upload a file with, as
// OpenAI's.
var UploadPurposes = []string{"assistants", PurposeBatch, PurposeFineTune, "vision", "user_data", "evals"}

// NewFile is a new file, not yet stored: its ID and the key its bytes go
// to. It is the one way a file is made.
func NewFile(purpose, filename string) store.File {
	id := ids.New(ids.File)
	return store.File{ID: id, Purpose: purpose, Filename: filename, ObjectKey: FileKey(id),
		Status: store.FileProcessed, CreatedAt: time.Now().Unix()}
}

// GetFile is one of the API's files, or a 404: curation's exports are
// not the API's to see.
func (s *Service) GetFile(ctx context.Context, id string) (store.File, error) {
	f, err := s.store.FileGet(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (f.Owner != store.FileOwnerAPI || !visible(ctx, f.ProjectID))) {
		return store.File{}, apierror.NotFound("file", id)
	}
	return f, err
}

// CreateFile stores r as a new file and records it. It is PutFile and
// Commit in one.
func (s *Service) CreateFile(ctx context.Context, purpose, filename string, r io.Reader) (store.File, error) {
	d, err := s.PutFile(ctx, filename, r, "file")
	if err != nil {
		return store.File{}, err
	}
	return d.Commit(ctx, purpose, nil)
}

// Draft is a file whose bytes are stored and whose row is not written yet:
// a client may name the purpose after the bytes. Commit records it;
// Discard removes the bytes.
type Draft struct {
	// File is the file as it will be recorded.
	File  store.File
	s     *Service
	sniff *jsonlSniffer
}

// PutFile streams r into a new file's object, up to the file size limit
// (413 file_too_large, naming param). It never holds the file whole: on
// the way through it checks only whether it looks like JSONL, for a batch
// file. Whatever fails, no object is left.
func (s *Service) PutFile(ctx context.Context, filename string, r io.Reader, param string) (*Draft, error) {
	if filename == "" {
		filename = "file"
	}
	if err := checkFilename(param, filename); err != nil {
		return nil, err
	}
	d := &Draft{File: NewFile("", filename), s: s, sniff: &jsonlSniffer{max: s.limits.MaxLineBytes}}
	d.File.ProjectID = auth.Project(ctx)
	size, err := s.putLimited(ctx, d.File.ObjectKey, io.TeeReader(r, d.sniff), s.limits.MaxFileBytes, param, "file_too_large",
		fmt.Sprintf("The file is larger than the limit of %d bytes.", s.limits.MaxFileBytes))
	if err != nil {
		return nil, err
	}
	d.File.Bytes = size
	return d, nil
}

// MaxFilenameBytes bounds a file's name, as common file systems do.
const MaxFilenameBytes = 255

// checkFilename is the rule on a file's name: storable text, at most
// MaxFilenameBytes, naming param when it breaks it.
func checkFilename(param, name string) error {
	if err := dbtext.Check(name); err != nil {
		return apierror.Invalid(param, "The filename "+err.Error()+".")
	}
	if len(name) > MaxFilenameBytes {
		return apierror.Invalid(param, fmt.Sprintf("The filename is %d bytes long; the most is %d.", len(name), MaxFilenameBytes))
	}
	return nil
}

// Commit records the draft as a file of purpose, one of UploadPurposes,
// which expires as expiresAfter says (nil: as the purpose's retention). A
// batch file must look like JSONL (400 invalid_file_format). On any
// failure the bytes are removed.
func (d *Draft) Commit(ctx context.Context, purpose string, expiresAfter *ExpiresAfter) (store.File, error) {
	if err := expiresAfter.check("expires_after"); err != nil {
		d.Discard(ctx)
		return store.File{}, err
	}
	switch {
	case purpose == "":
		d.Discard(ctx)
		return store.File{}, apierror.Invalid("purpose", "Missing required parameter: 'purpose'.")
	case !slices.Contains(UploadPurposes, purpose):
		d.Discard(ctx)
		return store.File{}, apierror.Invalid("purpose", fmt.Sprintf("'%s' is not one of %s - 'purpose'", purpose, strings.Join(UploadPurposes, ", ")))
	case purpose == PurposeBatch:
		if err := d.sniff.verdict(); err != nil {
			d.Discard(ctx)
			return store.File{}, apierror.InvalidCode("file", "invalid_file_format", "Invalid file format for Batch API. Must be .jsonl: "+err.Error())
		}
	}
	d.File.Purpose = purpose
	d.s.setExpiry(&d.File, expiresAfter.seconds())
	if err := d.s.store.FileCreate(ctx, d.File); err != nil {
		d.Discard(ctx)
		return store.File{}, err
	}
	return d.File, nil
}

// Discard removes the draft's bytes.
func (d *Draft) Discard(ctx context.Context) { d.s.deleteObject(ctx, d.File.ObjectKey) }

// DeleteFile deletes a file and its bytes. A file a batch still needs, the
// input of a batch that has not ended, cannot be deleted: 409
// file_in_use. Deleting it would stall the batch, and every batch of its
// model behind it.
func (s *Service) DeleteFile(ctx context.Context, id string) (store.File, error) {
	if _, err := s.GetFile(ctx, id); err != nil {
		return store.File{}, err
	}
	f, err := s.store.FileDelete(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return f, apierror.NotFound("file", id)
	case errors.Is(err, store.ErrFileInUse):
		return f, apierror.Conflict("file_in_use", fmt.Sprintf(
			"File %s is the input of a batch that has not ended; cancel the batch, or wait for it to end, before deleting the file.", id))
	case err != nil:
		return f, err
	}
	s.deleteObject(ctx, f.ObjectKey)
	return f, nil
}

// statusClientClosed is the status of a request whose client went away
// (nginx's 499): nobody reads it, but logs and metrics do.
const statusClientClosed = 499

// errTooLarge is a source that went past its limit.
var errTooLarge = errors.New("too large")

// putLimited streams r into key, refusing more than limit bytes with a 413
// (code and param name it) and a client's broken body with a 400. If it
// fails, no object is left.
func (s *Service) putLimited(ctx context.Context, key string, r io.Reader, limit int64, param, code, tooLarge string) (int64, error) {
	lr := &limitReader{r: r, left: limit}
	info, err := s.bucket.Put(ctx, key, lr, -1)
	switch {
	case err == nil:
		return info.Size, nil
	case errors.Is(err, errTooLarge):
		return 0, apierror.TooLarge(code, param, tooLarge)
	case lr.srcErr != nil: // the client's body broke off, stalled or is malformed
		// (First: a failed read also ends the request's context.)
		return 0, apierror.BodyError(param, lr.srcErr)
	case ctx.Err() != nil:
		return 0, apierror.New(statusClientClosed, "", "", "The client closed the request.")
	}
	return 0, fmt.Errorf("store %s: %w", key, err)
}

// limitReader fails with errTooLarge once more than left bytes were read, so
// the object store aborts the upload. It remembers the source's own error,
// which tells a broken request from a storage failure.
type limitReader struct {
	r      io.Reader
	left   int64
	srcErr error
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		l.srcErr = err
	}
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// writeObject streams what write produces into key, never holding it whole.
// If write fails, no object is left.
func writeObject(ctx context.Context, b objectstore.Bucket, key string, write func(w io.Writer) error) (int64, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	info, err := b.Put(ctx, key, pr, -1)
	_ = pr.CloseWithError(err) // unblocks write if Put gave up early
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return info.Size, nil
}

// jsonlSniffer checks, as a file streams by, that it looks like JSONL: not
// empty, and its first non-blank line is a JSON object. Later lines are the
// batch validator's business, which reports them with line numbers. It
// keeps at most one line of max bytes.
type jsonlSniffer struct {
	max     int
	line    []byte
	decided bool
	err     error
	seen    bool
}

func (s *jsonlSniffer) Write(p []byte) (int, error) {
	n := len(p)
	for !s.decided && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end = i
		}
		if len(s.line)+end > s.max {
			s.decided = true // too long to judge here; validation will
			s.line = nil
			break
		}
		s.line = append(s.line, p[:end]...)
		if i < 0 {
			break
		}
		p = p[i+1:]
		s.judge()
	}
	return n, nil
}

func (s *jsonlSniffer) judge() {
	t := bytes.TrimSpace(s.line)
	s.line = s.line[:0]
	if len(t) == 0 {
		return
	}
	s.seen, s.decided = true, true
	if t[0] != '{' || !json.Valid(t) {
		s.err = errors.New("its first line is not a JSON object")
	}
}

func (s *jsonlSniffer) verdict() error {
	if !s.decided && len(bytes.TrimSpace(s.line)) > 0 {
		s.judge()
	}
	if !s.decided && !s.seen {
		return errors.New("the file is empty")
	}
	return s.err
}
