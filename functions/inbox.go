package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/batch"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// InboxImportName is the inbox function's name.
const InboxImportName = "inbox_import"

// SidecarSuffix ends the name of an inbox object's sidecar: a small JSON
// document, beside the object, that asks for a batch.
const SidecarSuffix = ".batch.json"

// Metadata keys (S3 user metadata, x-amz-meta-kiln-…) that ask for a batch
// without a sidecar.
const (
	MetaEndpoint         = "kiln-endpoint"
	MetaModel            = "kiln-model"
	MetaCompletionWindow = "kiln-completion-window"
	MetaPriority         = "kiln-priority"
)

// Sidecar is what a sidecar (or the object's metadata) may say. Endpoint
// makes the file a batch; Model, when set, is the model every request must
// name.
type Sidecar struct {
	Endpoint         string            `json:"endpoint"`
	Model            string            `json:"model,omitempty"`
	CompletionWindow string            `json:"completion_window,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Priority         int64             `json:"priority,omitempty"`
}

// ObjectData is the data of an object.created event.
type ObjectData struct {
	Key  string `json:"key"`
	ETag string `json:"etag"`
	Size int64  `json:"size"`
}

// Inbox turns objects dropped under a prefix of the bucket into files, and
// into batches when a sidecar or the object's metadata names an endpoint.
// It learns of objects from bucket notifications (Notify) or by listing
// the prefix (Poll); both emit one object.created event per object
// version, and the inbox_import function does the rest.
type Inbox struct {
	Store *store.Store
	// Batches makes the files and batches.
	Batches *batch.Service
	Bucket  objectstore.Bucket
	// Prefix is the inbox, e.g. "inbox/". Empty turns the inbox off.
	Prefix string
	Log    *slog.Logger
}

// Function is the inbox_import function.
func (in *Inbox) Function() Function {
	return Function{Name: InboxImportName, Events: []string{store.EventObjectCreated}, Handle: in.importObject}
}

// inbox reports whether key is an inbox object (not a sidecar).
func (in *Inbox) inbox(key string) bool {
	return in.Prefix != "" && strings.HasPrefix(key, in.Prefix) && len(key) > len(in.Prefix) &&
		!strings.HasSuffix(key, SidecarSuffix)
}

// Seen emits object.created for an inbox object version, once however
// often it is seen. It reports whether the event is new.
func (in *Inbox) Seen(ctx context.Context, key, etag string, size int64) (bool, error) {
	_, created, _, err := in.SeenEvent(ctx, key, etag, size)
	return created, err
}

// SeenEvent is Seen that also returns the version's event: the new one, or
// the one emitted before. ok is false when there is none: key is no inbox
// object, or the sighting is stale (the version was imported and has left
// the inbox since).
func (in *Inbox) SeenEvent(ctx context.Context, key, etag string, size int64) (ev store.Event, created, ok bool, err error) {
	if !in.inbox(key) {
		return ev, false, false, nil
	}
	dedupe := ObjectDedupeKey(key, etag)
	// A version imported and released already is new only if it is in the
	// inbox again (the same bytes uploaded again), and then an object of
	// its own, with a key of its own; a listing or a notification from
	// before its removal is stale.
	rec, err := in.Store.InboxGet(ctx, key, etag)
	switch {
	case err == nil && rec.Released:
		cur, err := in.Bucket.Stat(ctx, key)
		if errors.Is(err, objectstore.ErrNotExist) || (err == nil && strings.Trim(cur.ETag, `"`) != etag) {
			return ev, false, false, nil
		}
		if err != nil {
			return ev, false, false, err
		}
		dedupe += fmt.Sprintf(" after %d", rec.ReleasedAt)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return ev, false, false, err
	}
	data, err := json.Marshal(ObjectData{Key: key, ETag: etag, Size: size})
	if err != nil {
		return ev, false, false, err
	}
	ev = store.Event{Type: store.EventObjectCreated, Data: data, DedupeKey: dedupe}
	created, err = in.Store.EventEmit(ctx, &ev)
	if err != nil || created {
		return ev, created, err == nil, err
	}
	ev, err = in.Store.EventByDedupeKey(ctx, dedupe)
	return ev, false, err == nil, err
}

// ObjectDedupeKey is the DedupeKey of an object version's object.created
// event, which makes Seen emit it once. The key is quoted, so that no key
// and ETag pair reads as another; no NUL separates them, since PostgreSQL's
// text cannot hold one.
func ObjectDedupeKey(key, etag string) string { return "object:" + strconv.Quote(key) + " " + etag }

// Poll lists the inbox once and reports every object in it.
func (in *Inbox) Poll(ctx context.Context) (int, error) {
	if in.Prefix == "" {
		return 0, nil
	}
	n := 0
	err := in.Bucket.List(ctx, in.Prefix, func(info objectstore.Info) error {
		created, err := in.Seen(ctx, info.Key, info.ETag, info.Size)
		if created {
			n++
		}
		return err
	})
	if err != nil {
		return n, fmt.Errorf("inbox: poll %s: %w", in.Prefix, err)
	}
	return n, nil
}

// Watch polls the inbox every interval until ctx ends.
func (in *Inbox) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := in.Poll(ctx); err != nil && ctx.Err() == nil {
			in.Log.WarnContext(ctx, "inbox poll failed", "err", err)
		} else if n > 0 {
			in.Log.InfoContext(ctx, "inbox objects found by polling", "objects", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrNotNotifiable is Notify on a store that cannot map notification keys.
var ErrNotNotifiable = errors.New("inbox: the object store does not receive bucket notifications (use polling)")

// Notify takes an S3 event notification (AWS's, or MinIO's webhook target)
// and reports every created inbox object in it. It returns how many new
// object.created events it emitted.
func (in *Inbox) Notify(ctx context.Context, ev events.S3Event) (int, error) {
	loc, ok := in.Bucket.(objectstore.Locator)
	if !ok {
		return 0, ErrNotNotifiable
	}
	n := 0
	for _, r := range ev.Records {
		if !strings.Contains(r.EventName, "ObjectCreated:") {
			continue
		}
		key, mine := loc.Locate(r.S3.Bucket.Name, r.S3.Object.URLDecodedKey)
		if !mine {
			continue
		}
		created, err := in.Seen(ctx, key, strings.Trim(r.S3.Object.ETag, `"`), r.S3.Object.Size)
		if err != nil {
			return n, err
		}
		if created {
			n++
		}
	}
	return n, nil
}

// importObject makes an inbox object a file (and maybe a batch), then
// removes it from the inbox. It is idempotent: an object version imported
// before, or gone, or replaced by a newer version, is left alone.
func (in *Inbox) importObject(ctx context.Context, ev Event) error {
	var o ObjectData
	if err := json.Unmarshal(ev.Data, &o); err != nil {
		return Permanent(fmt.Errorf("event data: %w", err))
	}
	if rec, err := in.Store.InboxGet(ctx, o.Key, o.ETag); err == nil && !rec.Released {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	info, err := in.Bucket.Stat(ctx, o.Key)
	if errors.Is(err, objectstore.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if strings.Trim(info.ETag, `"`) != o.ETag {
		return nil // replaced: the new version has its own event
	}
	sc, hasSidecar, err := in.sidecar(ctx, o.Key, info)
	if err != nil {
		return err
	}
	var params *batch.CreateParams
	if sc.Endpoint != "" {
		params = &batch.CreateParams{Endpoint: sc.Endpoint, Model: sc.Model, CompletionWindow: sc.CompletionWindow,
			Metadata: sc.Metadata, Priority: sc.Priority}
	}
	imp, err := in.Batches.Import(ctx, o.Key, o.ETag, path.Base(o.Key), params)
	if e, ok := apierror.As(err); ok {
		// A request that breaks a rule never succeeds: no retry.
		var cause error = e
		if e.Cause != nil {
			cause = e.Cause
		}
		return Permanent(fmt.Errorf("inbox object %s asks for a batch: %w", o.Key, cause))
	}
	if err != nil {
		return fmt.Errorf("inbox: import %s: %w", o.Key, err)
	}
	if !imp.New {
		return nil // imported meanwhile by another run
	}
	rec, f := imp.InboxObject, imp.File
	in.Log.InfoContext(ctx, "inbox object imported", "key", o.Key, "file", rec.FileID, "batch", rec.BatchID, "bytes", f.Bytes)
	// The object is kiln's now; clear it from the inbox unless it changed
	// meanwhile.
	if cur, err := in.Bucket.Stat(ctx, o.Key); err == nil && strings.Trim(cur.ETag, `"`) == o.ETag {
		if err := in.Bucket.Delete(ctx, o.Key); err != nil {
			in.Log.WarnContext(ctx, "inbox: could not remove an imported object", "key", o.Key, "err", err)
			return nil
		}
		if hasSidecar {
			_ = in.Bucket.Delete(ctx, o.Key+SidecarSuffix)
		}
		// Gone from the inbox: the same bytes uploaded again are new.
		if err := in.Store.InboxRelease(ctx, o.Key, o.ETag); err != nil {
			in.Log.WarnContext(ctx, "inbox: could not release an imported object", "key", o.Key, "err", err)
		}
	}
	return nil
}

// sidecar reads the object's sidecar, or its metadata when it has none.
func (in *Inbox) sidecar(ctx context.Context, key string, info objectstore.Info) (Sidecar, bool, error) {
	var sc Sidecar
	rc, err := in.Bucket.Get(ctx, key+SidecarSuffix)
	switch {
	case errors.Is(err, objectstore.ErrNotExist):
		md := info.Metadata
		sc.Endpoint, sc.Model, sc.CompletionWindow = md[MetaEndpoint], md[MetaModel], md[MetaCompletionWindow]
		if p := md[MetaPriority]; p != "" {
			v, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				return sc, false, Permanent(fmt.Errorf("inbox object %s: metadata %s: %q is not an integer", key, MetaPriority, p))
			}
			sc.Priority = v
		}
		return sc, false, nil
	case err != nil:
		return sc, false, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return sc, true, err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return sc, true, Permanent(fmt.Errorf("inbox sidecar %s: %w", key+SidecarSuffix, err))
	}
	return sc, true, nil
}
