// Package batch is the lifecycle of kiln's batches, files and uploads: every
// transition, its rules, the follow-up jobs it enqueues and the object keys
// it names, in one place. The HTTP API, the inbox, the job workers, the GPU
// agent and curation exports are transports: they call this package and
// never build a batch, a file or an object key themselves. The store only
// persists what this package decides.
//
// The lifecycle, as OpenAI's Batch API has it:
//
//	validating ─► in_progress ─► finalizing ─► completed
//	    │              │
//	    ▼              ├─► cancelling ─► cancelled   (Cancel)
//	  failed           └─► expired                   (Expire, at expires_at)
//
// Each arrow is one store transaction that also enqueues the job that
// follows it (validate, finalize), so that no state is left without its
// job.
package batch

import (
	"cmp"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/objectstore"
	"github.com/kilnhq/kiln/internal/store"
)

// Limits bound what clients may ask of the lifecycle.
type Limits struct {
	// MaxFileBytes is the largest file. Default: config.MaxFileBytesDefault.
	MaxFileBytes int64
	// MaxPartBytes is the largest upload part. Default: config.MaxPartBytesDefault.
	MaxPartBytes int64
	// MaxLineBytes is the longest batch input line. Default:
	// config.MaxLineBytesDefault.
	MaxLineBytes int
	// MaxRequests is the most requests per batch. Default:
	// config.MaxRequestsDefault.
	MaxRequests int
	// ShardSize is the most requests per shard, the unit agents claim.
	// Default: config.ShardSizeDefault.
	ShardSize int
	// UploadTTL is how long an upload takes parts. Default:
	// config.UploadTTLDefault.
	UploadTTL time.Duration
	// MaxPendingUploads is the most uploads in progress at once; negative
	// is no cap. Default: config.MaxPendingUploadsDefault.
	MaxPendingUploads int
	// MaxPendingUploadBytes is the most bytes the uploads in progress may
	// declare in all; negative is no cap. Default:
	// config.MaxPendingUploadBytesDefault.
	MaxPendingUploadBytes int64
	// WebhookAllowPrivate accepts batch webhook URLs on private addresses.
	// Default: false.
	WebhookAllowPrivate bool
	// FileRetention is how long after they are made files expire, by
	// purpose (config.ParseFileRetention): config.FileRetentionAny stands
	// for the purposes not listed, and 0 keeps a purpose's files. A
	// client's expires_after comes first. Default: none (files are kept
	// until deleted).
	FileRetention map[string]time.Duration
	// Models are the models batches may name besides those of the store's
	// catalogue, which agents fill (config.Config.Models, plus the models
	// of an agent in this process). Default: none.
	Models []string
	// AcceptAnyModel turns the catalogue's check off: a batch may name any
	// model. Default: false.
	AcceptAnyModel bool
}

// WithDefaults fills the unset limits.
func (l Limits) WithDefaults() Limits {
	l.MaxFileBytes = cmp.Or(l.MaxFileBytes, config.MaxFileBytesDefault)
	l.MaxPartBytes = cmp.Or(l.MaxPartBytes, config.MaxPartBytesDefault)
	l.MaxLineBytes = cmp.Or(l.MaxLineBytes, config.MaxLineBytesDefault)
	l.MaxRequests = cmp.Or(l.MaxRequests, config.MaxRequestsDefault)
	l.ShardSize = cmp.Or(l.ShardSize, config.ShardSizeDefault)
	l.UploadTTL = cmp.Or(l.UploadTTL, config.UploadTTLDefault)
	l.MaxPendingUploads = cmp.Or(l.MaxPendingUploads, config.MaxPendingUploadsDefault)
	l.MaxPendingUploadBytes = cmp.Or(l.MaxPendingUploadBytes, config.MaxPendingUploadBytesDefault)
	return l
}

// Service runs the lifecycle on a store and an object store. It is safe
// for concurrent use.
type Service struct {
	store  *store.Store
	bucket objectstore.Bucket
	log    *slog.Logger
	limits Limits
	clock  atomic.Pointer[func() time.Time]
	// chunkPage is how many chunks the finalizer reads from the store at
	// once: chunkPageDefault, less in tests.
	chunkPage int
	// pieceBytes is the output a piece gathers at least:
	// PieceBytesDefault, less in tests.
	pieceBytes int64
}

// chunkPageDefault is how many chunks the finalizer reads from the store
// and composes at once: about a megabyte of memory, whatever the batch's
// size.
const chunkPageDefault = 1000

// New is the lifecycle on st and bucket.
func New(st *store.Store, bucket objectstore.Bucket, limits Limits, log *slog.Logger) *Service {
	s := &Service{store: st, bucket: bucket, log: log, limits: limits.WithDefaults(), chunkPage: chunkPageDefault,
		pieceBytes: PieceBytesDefault}
	s.SetClock(time.Now)
	return s
}

// SetClock makes now the service's clock, by which it dates what it makes
// and decides what is due (uploads, files). It is a test hook: a test
// moves the clock forward instead of waiting. It is safe to call while the
// service runs.
func (s *Service) SetClock(now func() time.Time) { s.clock.Store(&now) }

func (s *Service) now() time.Time { return (*s.clock.Load())() }

// Limits are the service's limits, defaults filled.
func (s *Service) Limits() Limits { return s.limits }

// Store is the store the service persists to, for reads that need no
// rule (lists, lookups).
func (s *Service) Store() *store.Store { return s.store }

// Bucket is the object store the service writes to.
func (s *Service) Bucket() objectstore.Bucket { return s.bucket }
