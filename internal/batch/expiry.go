package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/store"
)

// Expiring files, as OpenAI's expires_after: a file gets an expires_at
// when it is made, from its client's expires_after (a file, an upload's
// file, a batch's output and error files) or else from the operator's
// retention for its purpose (Limits.FileRetention). ExpireFiles, run by
// the files_expire job, deletes each file once its expires_at has passed,
// object and row, and announces it with a file.expired event. The input
// file of a batch that has not ended is kept until the batch ends: taking
// it away would fail the batch, and DeleteFile refuses the same.

// AnchorCreatedAt is the one anchor of an expiration policy: the file's
// created_at.
const AnchorCreatedAt = "created_at"

// The bounds of ExpiresAfter.Seconds, as OpenAI's: an hour to 30 days.
const (
	ExpiresAfterMinSeconds = 3600
	ExpiresAfterMaxSeconds = 2592000
)

// ExpiresAfter is OpenAI's expiration policy of a file: it expires Seconds
// after its Anchor.
type ExpiresAfter struct {
	Anchor  string
	Seconds int64
}

// check is the rule on a policy, naming param (expires_after,
// output_expires_after) and the field at fault. A nil policy is none.
func (e *ExpiresAfter) check(param string) error {
	switch {
	case e == nil:
		return nil
	case e.Anchor == "":
		return apierror.Invalid(param+".anchor", fmt.Sprintf("Missing required parameter: '%s.anchor'.", param))
	case e.Anchor != AnchorCreatedAt:
		return apierror.InvalidCode(param+".anchor", "invalid_value",
			fmt.Sprintf("Invalid '%s.anchor': '%s'. Supported values are: '%s'.", param, e.Anchor, AnchorCreatedAt))
	case e.Seconds < ExpiresAfterMinSeconds:
		return apierror.InvalidCode(param+".seconds", "integer_below_min_value",
			fmt.Sprintf("Invalid '%s.seconds': integer below minimum value. Expected a value >= %d, but got %d instead.", param, ExpiresAfterMinSeconds, e.Seconds))
	case e.Seconds > ExpiresAfterMaxSeconds:
		return apierror.InvalidCode(param+".seconds", "integer_above_max_value",
			fmt.Sprintf("Invalid '%s.seconds': integer above maximum value. Expected a value <= %d, but got %d instead.", param, ExpiresAfterMaxSeconds, e.Seconds))
	}
	return nil
}

// seconds is the policy's delay, 0 for none.
func (e *ExpiresAfter) seconds() int64 {
	if e == nil {
		return 0
	}
	return e.Seconds
}

// setExpiry gives f its expires_at: after seconds past its creation when
// a client asked for it, else the retention of its purpose, else none.
// Curation's exports are curation's to keep.
func (s *Service) setExpiry(f *store.File, after int64) {
	if f.Owner != store.FileOwnerAPI {
		return
	}
	if after <= 0 {
		r, ok := s.limits.FileRetention[f.Purpose]
		if !ok {
			r = s.limits.FileRetention[config.FileRetentionAny]
		}
		after = int64(r.Seconds())
	}
	if after <= 0 {
		f.ExpiresAt = nil
		return
	}
	at := f.CreatedAt + after
	f.ExpiresAt = &at
}

// expireFilesPage is how many due files ExpireFiles reads at a time.
const expireFilesPage = 100

// ExpireFiles deletes every file whose expires_at has passed by the
// service's clock: its row, with its file.expired event, then its object
// (an object whose removal fails is the objects sweep's). The inputs of
// batches that have not ended wait for their batch. It returns how many
// files it deleted, and carries on past a file that fails.
func (s *Service) ExpireFiles(ctx context.Context) (int, error) {
	now := s.now().Unix()
	n := 0
	var errs []error
	for {
		due, err := s.store.FileListExpired(ctx, now, expireFilesPage)
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		progressed := false
		for _, f := range due {
			_, err := s.store.FileExpire(ctx, f.ID, now)
			switch {
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrFileInUse):
				continue // deleted, or made a batch's input, meanwhile
			case err != nil:
				errs = append(errs, err)
				continue
			}
			s.deleteObject(ctx, f.ObjectKey)
			s.log.InfoContext(ctx, "file expired", "file", f.ID, "purpose", f.Purpose, "expires_at", *f.ExpiresAt)
			n++
			progressed = true
		}
		if len(due) < expireFilesPage || !progressed {
			return n, errors.Join(errs...)
		}
	}
}
