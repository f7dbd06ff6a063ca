package batch

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batchline"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/store"
)

// MetadataRetryOf is the metadata key of a retry: the batch whose failed
// lines it retries.
const MetadataRetryOf = "retry_of"

// RetryParams ask for a retry of a batch's failed lines.
type RetryParams struct {
	// Codes keep the error lines that match one of them: an error code of
	// a request that never got an answer (batch_expired, batch_cancelled,
	// request_timeout...), an HTTP status (429) or class (5xx, 4xx), or the
	// code or type of the answer's error (model_not_found). None: every
	// error line.
	Codes []string
	// CompletionWindow of the retry. Default: the batch's.
	CompletionWindow string
	// Metadata of the retry. Default: the batch's. Either way it gains
	// retry_of.
	Metadata map[string]string
}

// Retry makes a new batch of the requests of an ended batch's error lines
// that match p.Codes: the original request lines, copied from the batch's
// input file, so nothing is rebuilt by hand. The new batch's metadata names
// the batch in retry_of. A batch is retried at most once, so that a batch's
// retries form one chain (Lineage); retry the retry to go on. Nothing to
// retry is a 400 saying why.
func (s *Service) Retry(ctx context.Context, id string, p RetryParams) (store.Batch, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return store.Batch{}, err
	}
	if !b.Terminal() {
		return store.Batch{}, apierror.Conflict("batch_not_retryable", fmt.Sprintf(
			"Batch %s is %s; a batch can be retried once it has ended.", id, b.Status))
	}
	if prev, err := s.store.BatchRetry(ctx, id); err == nil {
		return store.Batch{}, apierror.Conflict("batch_already_retried", fmt.Sprintf(
			"Batch %s was retried already, as batch %s; retry that one to go on.", id, prev.ID))
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, err
	}
	if b.ErrorFileID == nil {
		why := fmt.Sprintf("No request of batch %s failed: it has no error file.", id)
		if b.Status == store.BatchFailed {
			why = fmt.Sprintf("Batch %s failed validation, so none of its requests ran: fix its input file (the batch's errors say what is wrong) and create a new batch.", id)
		}
		return store.Batch{}, apierror.InvalidCode("batch_id", "nothing_to_retry", why)
	}
	match, err := codeMatcher(p.Codes)
	if err != nil {
		return store.Batch{}, err
	}
	errFile, err := s.store.FileGet(ctx, *b.ErrorFileID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, apierror.InvalidCode("batch_id", "nothing_to_retry", fmt.Sprintf(
			"The error file %s of batch %s has been deleted, so kiln cannot tell which requests failed.", *b.ErrorFileID, id))
	}
	if err != nil {
		return store.Batch{}, err
	}
	retry, seen, err := s.failedIDs(ctx, errFile, match)
	if err != nil {
		return store.Batch{}, err
	}
	if len(retry) == 0 {
		return store.Batch{}, apierror.InvalidCode("codes", "nothing_to_retry", fmt.Sprintf(
			"No error line of batch %s matches %s; its error lines have: %s.", id, strings.Join(p.Codes, ", "), seen))
	}
	meta := maps.Clone(b.Metadata)
	if p.Metadata != nil {
		meta = maps.Clone(p.Metadata)
	}
	if meta == nil {
		meta = map[string]string{}
	}
	meta[MetadataRetryOf] = id
	nb, jobs, err := s.newBatch(ctx, CreateParams{
		Endpoint: b.Endpoint, CompletionWindow: cmp.Or(p.CompletionWindow, b.CompletionWindow), Metadata: meta,
		Priority: b.Priority, Model: b.Model,
	})
	if err != nil {
		return store.Batch{}, err
	}
	in, err := s.store.FileGet(ctx, b.InputFileID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Batch{}, apierror.InvalidCode("batch_id", "nothing_to_retry", fmt.Sprintf(
			"The input file %s of batch %s has been deleted, so kiln cannot copy the requests to retry.", b.InputFileID, id))
	}
	if err != nil {
		return store.Batch{}, err
	}
	f := NewFile(PurposeBatch, retryFilename(in.Filename))
	f.ProjectID = b.ProjectID
	s.setExpiry(&f, 0)
	copied, want := 0, len(retry)
	f.Bytes, err = writeObject(ctx, s.bucket, f.ObjectKey, func(w io.Writer) error {
		copied, err = s.copyRequests(ctx, in, b.Endpoint, retry, w)
		return err
	})
	if err != nil {
		s.deleteObject(ctx, f.ObjectKey)
		return store.Batch{}, fmt.Errorf("retry batch %s: %w", id, err)
	}
	if copied != want {
		s.deleteObject(ctx, f.ObjectKey)
		return store.Batch{}, fmt.Errorf("retry batch %s: found %d of the %d failed requests in input file %s", id, copied, want, in.ID)
	}
	nb.InputFileID, nb.RetryOf = f.ID, id
	if err := s.store.BatchCreateWithInput(ctx, f, nb, jobs...); err != nil {
		s.deleteObject(ctx, f.ObjectKey)
		if errors.Is(err, store.ErrConflict) {
			return store.Batch{}, apierror.Conflict("batch_already_retried", fmt.Sprintf("Batch %s was retried already; retry that retry to go on.", id))
		}
		return store.Batch{}, err
	}
	s.log.InfoContext(ctx, "batch retried", "batch", id, "retry", nb.ID, "requests", copied)
	return nb, nil
}

func retryFilename(name string) string {
	base := strings.TrimSuffix(name, ".jsonl")
	if len(base) > MaxFilenameBytes-len("_retry.jsonl") {
		base = base[:MaxFilenameBytes-len("_retry.jsonl")]
	}
	return base + "_retry.jsonl"
}

// codeMatcher is the filter of Retry's codes over error lines.
func codeMatcher(codes []string) (func(errorLine) bool, error) {
	type rule struct {
		status, class int
		code          string
	}
	var rules []rule
	for _, c := range codes {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
			return nil, apierror.Invalid("codes", "An empty code matches no error line.")
		case len(c) == 3 && c[1:] == "xx" && c[0] >= '1' && c[0] <= '5':
			rules = append(rules, rule{class: int(c[0] - '0')})
		case len(c) == 3 && c[0] >= '1' && c[0] <= '5':
			n, err := strconv.Atoi(c)
			if err != nil {
				return nil, apierror.Invalid("codes", fmt.Sprintf("%q is neither an HTTP status, a class such as 5xx, nor an error code.", c))
			}
			rules = append(rules, rule{status: n})
		default:
			rules = append(rules, rule{code: c})
		}
	}
	return func(l errorLine) bool {
		if len(rules) == 0 {
			return true
		}
		for _, r := range rules {
			switch {
			case r.class != 0 && l.status/100 == r.class,
				r.status != 0 && l.status == r.status,
				r.code != "" && (r.code == l.code || r.code == l.bodyCode || r.code == l.bodyType):
				return true
			}
		}
		return false
	}, nil
}

// errorLine is what Retry reads of an error line.
type errorLine struct {
	customID           string
	code               string // the line's error.code, for a request without an answer
	status             int    // the answer's status_code
	bodyCode, bodyType string
}

// name names an error line as a user would filter it.
func (l errorLine) name() string {
	switch {
	case l.code != "":
		return l.code
	case l.bodyCode != "":
		return fmt.Sprintf("%d %s", l.status, l.bodyCode)
	default:
		return strconv.Itoa(l.status)
	}
}

// failedIDs reads an error file and returns the custom_ids of the lines
// that match, and a summary of what the lines hold, for an error.
func (s *Service) failedIDs(ctx context.Context, f store.File, match func(errorLine) bool) (map[string]bool, string, error) {
	rc, err := s.bucket.Get(ctx, f.ObjectKey)
	if err != nil {
		return nil, "", fmt.Errorf("error file %s: %w", f.ID, err)
	}
	defer rc.Close()
	ids := map[string]bool{}
	kinds := map[string]int{}
	sc := batchline.NewScanner(rc, MaxResultLineBytes)
	for sc.Next() {
		if batchline.Blank(sc.Bytes()) {
			continue
		}
		var out struct {
			CustomID string `json:"custom_id"`
			Response *struct {
				StatusCode int `json:"status_code"`
				Body       struct {
					Error struct {
						Code json.RawMessage `json:"code"`
						Type string          `json:"type"`
					} `json:"error"`
				} `json:"body"`
			} `json:"response"`
			Error *batchline.LineError `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &out); err != nil {
			return nil, "", fmt.Errorf("error file %s, line %d: %w", f.ID, sc.Line(), err)
		}
		l := errorLine{customID: out.CustomID}
		if out.Error != nil {
			l.code = out.Error.Code
		}
		if out.Response != nil {
			l.status = out.Response.StatusCode
			l.bodyType = out.Response.Body.Error.Type
			// vLLM's error code is a number, OpenAI's a string.
			var code string
			if json.Unmarshal(out.Response.Body.Error.Code, &code) == nil {
				l.bodyCode = code
			}
		}
		kinds[l.name()]++
		if match(l) {
			ids[l.customID] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("error file %s: %w", f.ID, err)
	}
	var seen []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		seen = append(seen, fmt.Sprintf("%s (%d)", k, kinds[k]))
	}
	if len(seen) == 0 {
		seen = []string{"nothing"}
	}
	return ids, strings.Join(seen, ", "), nil
}

// MaxResultLineBytes bounds a line of an output or error file: an answer
// of the largest size the agent keeps by default, plus room for its
// envelope.
const MaxResultLineBytes = config.MaxResponseBytesDefault + 16<<20

// copyRequests writes the lines of input file in whose custom_id is in ids
// to w, as they are, and counts them.
func (s *Service) copyRequests(ctx context.Context, in store.File, endpoint string, ids map[string]bool, w io.Writer) (int, error) {
	rc, err := s.bucket.Get(ctx, in.ObjectKey)
	if err != nil {
		return 0, fmt.Errorf("input file %s: %w", in.ID, err)
	}
	defer rc.Close()
	bw := bufio.NewWriterSize(w, 256<<10)
	n := 0
	sc := batchline.NewScanner(rc, s.limits.MaxLineBytes)
	for sc.Next() {
		if sc.TooLong() || batchline.Blank(sc.Bytes()) {
			continue
		}
		req, _, p := batchline.ParseInput(sc.Bytes(), endpoint)
		if p != nil || !ids[req.CustomID] {
			continue
		}
		delete(ids, req.CustomID) // each once, should the file repeat one
		if _, err := bw.Write(sc.Bytes()); err != nil {
			return n, err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Lineage is a batch's chain of retries, from the first batch to the
// newest retry, with counts over the chain: each request counts once, by
// its newest attempt.
type Lineage struct {
	Batches []store.Batch
	// Total is the first batch's requests; Completed those that succeeded
	// in some batch of the chain; Failed those whose newest attempt failed
	// and that no batch retries now.
	Total, Completed, Failed int64
}

// maxLineage bounds the walk of a chain of retries.
const maxLineage = 1000

// Lineage is the chain of retries that batch id belongs to.
func (s *Service) Lineage(ctx context.Context, id string) (Lineage, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return Lineage{}, err
	}
	for range maxLineage {
		if b.RetryOf == "" {
			break
		}
		if b, err = s.store.BatchGet(ctx, b.RetryOf); err != nil {
			return Lineage{}, fmt.Errorf("lineage of batch %s: %w", id, err)
		}
	}
	l := Lineage{Batches: []store.Batch{b}, Total: b.Total}
	for range maxLineage {
		next, err := s.store.BatchRetry(ctx, b.ID)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return Lineage{}, err
		}
		l.Batches = append(l.Batches, next)
		b = next
	}
	for i, b := range l.Batches {
		l.Completed += b.Completed
		l.Failed += b.Failed
		if i+1 < len(l.Batches) {
			l.Failed -= l.Batches[i+1].Total // retried: counted by the retry
		}
	}
	l.Failed = max(l.Failed, 0) // a retry still validating has no total yet
	return l, nil
}
