// Package config holds kiln's configuration: one struct, filled from flags and
// KILN_* environment variables, with documented defaults, passed down explicitly.
package config

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Defaults of Config's fields, in field order: each default is defined here
// once. WithDefaults fills the fields from them, and the kong tags read them
// through KongVars, so the flags, the environment and a Config built in code
// agree; gpuagent uses them for the same settings of its agent.
const (
	AddrDefault                = ":4080"
	DatabaseURLDefault         = "sqlite://./data/kiln.db"
	ObjectStoreDefault         = "file://./data/objects"
	AgentDefault               = "auto"
	AgentConcurrencyDefault    = 256 // vLLM's max_num_seqs default
	ShardSizeDefault           = 500
	LeaseTTLDefault            = 30 * time.Second
	StarvationBoundDefault     = 10 * time.Minute
	MetricsAddrDefault         = ":9464"
	MaxResponseBytesDefault    = 64 << 20 // 64 MiB
	RequestTimeoutDefault      = 10 * time.Minute
	ChunkLinesDefault          = 256
	ChunkIntervalDefault       = time.Second
	MaxFileBytesDefault        = 2 << 30  // 2 GiB
	MaxPartBytesDefault        = 64 << 20 // 64 MiB, OpenAI's
	UploadTTLDefault           = time.Hour
	MaxLineBytesDefault        = 10 << 20 // 10 MiB
	MaxRequestsDefault         = 1_000_000
	PollIntervalDefault        = 50 * time.Millisecond
	ShutdownTimeoutDefault     = 30 * time.Second
	WebhookTimeoutDefault      = 10 * time.Second
	WebhookMaxAgeDefault       = 24 * time.Hour
	RetryBaseDefault           = time.Second
	RetryMaxDefault            = time.Hour
	FunctionMaxAttemptsDefault = 25
	FunctionMaxAgeDefault      = 24 * time.Hour
	InboxPollIntervalDefault   = 10 * time.Second
	EventRetentionDefault      = 30 * 24 * time.Hour // 720h
	LogLevelDefault            = "info"
)

// Defaults of the caps on uploads in progress (MaxPendingUploads,
// MaxPendingUploadBytes).
const (
	MaxPendingUploadsDefault     = 1000
	MaxPendingUploadBytesDefault = 100 << 30 // 100 GiB: fifty uploads of MaxFileBytesDefault
)

// KeyRotationGraceDefault is the default of KeyRotationGrace.
const KeyRotationGraceDefault = 24 * time.Hour

// Defaults of the guard on slow request bodies (BodyIdleTimeout,
// BodyMinRate).
const (
	BodyIdleTimeoutDefault = 20 * time.Second
	BodyMinRateDefault     = 1024 // bytes per second
)

// Default of the SQS inbox's concurrency (InboxSQSConcurrency): the most
// messages one ReceiveMessage returns.
const InboxSQSConcurrencyDefault = 10

// KongVars are the defaults as kong variables, for the ${xxx_default}
// interpolations in Config's default tags. Every kong parser of a Config
// needs them: kong.New fails on an undefined variable.
func KongVars() kong.Vars {
	return kong.Vars{
		"addr_default":                  AddrDefault,
		"database_url_default":          DatabaseURLDefault,
		"object_store_default":          ObjectStoreDefault,
		"agent_default":                 AgentDefault,
		"agent_concurrency_default":     strconv.Itoa(AgentConcurrencyDefault),
		"shard_size_default":            strconv.Itoa(ShardSizeDefault),
		"lease_ttl_default":             LeaseTTLDefault.String(),
		"starvation_bound_default":      StarvationBoundDefault.String(),
		"metrics_addr_default":          MetricsAddrDefault,
		"max_response_bytes_default":    strconv.FormatInt(MaxResponseBytesDefault, 10),
		"request_timeout_default":       RequestTimeoutDefault.String(),
		"chunk_lines_default":           strconv.Itoa(ChunkLinesDefault),
		"chunk_interval_default":        ChunkIntervalDefault.String(),
		"max_file_bytes_default":        strconv.FormatInt(MaxFileBytesDefault, 10),
		"max_part_bytes_default":        strconv.FormatInt(MaxPartBytesDefault, 10),
		"upload_ttl_default":            UploadTTLDefault.String(),
		"max_pending_uploads_default":   strconv.Itoa(MaxPendingUploadsDefault),
		"max_pending_bytes_default":     strconv.FormatInt(MaxPendingUploadBytesDefault, 10),
		"max_line_bytes_default":        strconv.Itoa(MaxLineBytesDefault),
		"max_requests_default":          strconv.Itoa(MaxRequestsDefault),
		"poll_interval_default":         PollIntervalDefault.String(),
		"shutdown_timeout_default":      ShutdownTimeoutDefault.String(),
		"body_idle_timeout_default":     BodyIdleTimeoutDefault.String(),
		"key_rotation_grace_default":    KeyRotationGraceDefault.String(),
		"body_min_rate_default":         strconv.Itoa(BodyMinRateDefault),
		"webhook_timeout_default":       WebhookTimeoutDefault.String(),
		"webhook_max_age_default":       WebhookMaxAgeDefault.String(),
		"retry_base_default":            RetryBaseDefault.String(),
		"retry_max_default":             RetryMaxDefault.String(),
		"function_max_attempts_default": strconv.Itoa(FunctionMaxAttemptsDefault),
		"function_max_age_default":      FunctionMaxAgeDefault.String(),
		"inbox_poll_interval_default":   InboxPollIntervalDefault.String(),
		"event_retention_default":       EventRetentionDefault.String(),
		"inbox_sqs_concurrency_default": strconv.Itoa(InboxSQSConcurrencyDefault),
		"log_level_default":             LogLevelDefault,
	}
}

// Config is kiln's configuration. The zero value plus WithDefaults is the
// embedded default: SQLite and a local folder under ./data, and the built-in
// LLM simulator. A zero field means its default, whether the Config comes
// from kong or is built in code; where a field can be turned off, a negative
// value does it.
type Config struct {
	// Addr is the API's listen address. Default: ":4080".
	Addr string `name:"addr" env:"KILN_ADDR" default:"${addr_default}" help:"API listen address."`

	// DatabaseURL selects the store: postgres://... or sqlite:///path.
	// Default: "sqlite://./data/kiln.db".
	DatabaseURL string `name:"database-url" env:"KILN_DATABASE_URL" default:"${database_url_default}" help:"postgres://... or sqlite:///path."`

	// ObjectStore selects the object store: s3://bucket?endpoint=host:port&region=...&secure=false
	// or file:///path. Default: "file://./data/objects".
	ObjectStore string `name:"object-store" env:"KILN_OBJECT_STORE" default:"${object_store_default}" help:"s3://bucket?endpoint=host:port or file:///path."`

	// LLMURL is the OpenAI-compatible base URL of the LLM backend (vLLM), for
	// example http://127.0.0.1:8000/v1. When empty, the built-in simulator runs
	// in-process and outputs are synthetic. Default: "" (simulator).
	LLMURL string `name:"llm-url" env:"KILN_LLM_URL" help:"OpenAI-compatible base URL of vLLM; empty runs the built-in simulator."`

	// APIKey, when set, is accepted as an API key in addition to the keys in
	// the store, and suppresses the creation of a first key. Default: "".
	APIKey string `name:"api-key" env:"KILN_API_KEY" help:"An API key to accept (no first key is generated when set)."`

	// AdminKey, when set, is accepted as an admin key in addition to the
	// admin keys in the store: it opens the Administration API
	// (/v1/organization/...) and nothing else. Default: "".
	AdminKey string `name:"admin-key" env:"KILN_ADMIN_KEY" help:"An admin key to accept for /v1/organization/... (besides kiln admin-keys create's)."`

	// Agent runs the GPU agent inside kiln serve: "auto" (on for SQLite, off
	// for Postgres), "on" or "off". Default: "auto".
	Agent string `name:"agent" env:"KILN_AGENT" default:"${agent_default}" enum:"auto,on,off" help:"Run the GPU agent in-process: auto, on or off."`

	// Endpoints attach the agent to one OpenAI-compatible endpoint per
	// model, as model=url (KILN_ENDPOINTS is comma-separated). Default: none.
	Endpoints []string `name:"endpoint" env:"KILN_ENDPOINTS" help:"model=url: the engine serving a model (repeatable)."`

	// EngineCommand makes the agent manage its engine: it starts this
	// command (a template with {{.Model}}, {{.Host}}, {{.Port}},
	// {{.MaxNumSeqs}}) for the model it loads, waits for /health, restarts
	// it when it dies, and stops it to switch models. "vllm" is short for
	// vLLM's default command line. Default: "" (attach to KILN_LLM_URL or
	// --endpoint).
	EngineCommand string `name:"engine-command" env:"KILN_ENGINE_COMMAND" help:"Manage the engine: command template, or 'vllm' for vllm serve."`

	// EngineModels are the models a managed engine may load
	// (comma-separated). Default: none.
	EngineModels []string `name:"engine-models" env:"KILN_ENGINE_MODELS" help:"Models the managed engine may load."`

	// Models are models batches may name besides those agents have
	// declared (comma-separated): models of agents that have yet to start.
	// A batch naming a model in neither fails validation with
	// model_not_found. Default: none.
	Models []string `name:"models" env:"KILN_MODELS" help:"Models batches may name besides those agents have declared."`

	// AcceptAnyModel lets batches name any model, as kiln did before it
	// kept a catalogue: a batch for a model no agent serves waits, with a
	// status message, until one does or it expires. Default: false.
	AcceptAnyModel bool `name:"accept-any-model" env:"KILN_ACCEPT_ANY_MODEL" help:"Accept batches for models no agent has declared (they wait for one)."`

	// EngineSleepMode switches models of a managed engine with vLLM's sleep
	// mode (/sleep, /wake_up) instead of a restart. Default: false.
	EngineSleepMode bool `name:"engine-sleep-mode" env:"KILN_ENGINE_SLEEP_MODE" help:"Switch models with vLLM sleep mode."`

	// AgentConcurrency is the most requests the agent keeps in flight: the
	// engine's capacity (its max_num_seqs). Adaptive concurrency stays at or
	// below it. Default: 256 (vLLM's max_num_seqs default).
	AgentConcurrency int `name:"agent-concurrency" env:"KILN_AGENT_CONCURRENCY" default:"${agent_concurrency_default}" help:"Most requests in flight per agent (the engine's max_num_seqs)."`

	// ShardSize is the most requests in one shard, the unit agents claim.
	// Default: 500.
	ShardSize int `name:"shard-size" env:"KILN_SHARD_SIZE" default:"${shard_size_default}" help:"Most requests per shard."`

	// LeaseTTL is how long a shard's lease lasts unrenewed: a dead agent's
	// shards return to the queue after it. Default: 30s.
	LeaseTTL time.Duration `name:"lease-ttl" env:"KILN_LEASE_TTL" default:"${lease_ttl_default}" help:"Shard lease; a dead agent's shards return after it."`

	// StarvationBound is how long work for another model may wait while the
	// loaded model still has work. Default: 10m.
	StarvationBound time.Duration `name:"starvation-bound" env:"KILN_STARVATION_BOUND" default:"${starvation_bound_default}" help:"Longest wait of another model's work before a switch."`

	// MetricsAddr is where kiln agent serves /metrics and /healthz (kiln
	// serve serves them on Addr). Default: ":9464".
	MetricsAddr string `name:"metrics-addr" env:"KILN_METRICS_ADDR" default:"${metrics_addr_default}" help:"kiln agent's /metrics address."`

	// PprofAddr, when set, is where kiln serves Go's profiles
	// (/debug/pprof/: CPU, heap, allocations, goroutines, execution
	// trace), for kiln serve and kiln agent alike. They have no
	// authentication: bind a loopback address. Default: none, off.
	PprofAddr string `name:"pprof-addr" env:"KILN_PPROF_ADDR" help:"Address of Go's /debug/pprof profiles (default: none, off; no authentication: bind loopback)."`

	// MetricsToken, when set, is the bearer token /metrics requires (on
	// KILN_ADDR and KILN_METRICS_ADDR): Prometheus sends it with
	// authorization: {credentials: …}. Default: none, /metrics is open, as
	// Prometheus exporters are.
	MetricsToken string `name:"metrics-token" env:"KILN_METRICS_TOKEN" help:"Bearer token that /metrics requires (default: none, open)."`

	// MaxResponseBytes bounds one answer of the LLM backend; a larger one
	// becomes an error line (response_too_large). Default: 64 MiB.
	MaxResponseBytes int64 `name:"max-response-bytes" env:"KILN_MAX_RESPONSE_BYTES" default:"${max_response_bytes_default}" help:"Largest accepted answer of the LLM backend, in bytes."`

	// RequestTimeout bounds one request to the LLM backend. Default: 10m.
	RequestTimeout time.Duration `name:"request-timeout" env:"KILN_REQUEST_TIMEOUT" default:"${request_timeout_default}" help:"Timeout of one LLM request."`

	// ChunkLines flushes a result chunk to the object store after this many
	// results. Default: 256.
	ChunkLines int `name:"chunk-lines" env:"KILN_CHUNK_LINES" default:"${chunk_lines_default}" help:"Results per durable chunk."`

	// ChunkInterval flushes a result chunk at least this often, which is also
	// how often request_counts move. Default: 1s.
	ChunkInterval time.Duration `name:"chunk-interval" env:"KILN_CHUNK_INTERVAL" default:"${chunk_interval_default}" help:"Longest time between chunk flushes."`

	// MaxFileBytes is the largest file accepted by POST /v1/files.
	// Default: 2 GiB.
	MaxFileBytes int64 `name:"max-file-bytes" env:"KILN_MAX_FILE_BYTES" default:"${max_file_bytes_default}" help:"Largest accepted upload, in bytes."`

	// DownloadRedirect answers GET /v1/files/{id}/content with a 307 to a
	// presigned URL of the object store, so bytes skip kiln; ?redirect=true
	// asks for it per request. Default: false.
	DownloadRedirect bool `name:"download-redirect" env:"KILN_DOWNLOAD_REDIRECT" help:"Redirect downloads to presigned URLs."`

	// PublicURL is kiln's base URL as clients reach it; the folder object
	// store's presigned URLs point at it. Default: http://localhost plus
	// the port kiln serve listens on.
	PublicURL string `name:"public-url" env:"KILN_PUBLIC_URL" help:"kiln's base URL as clients reach it (for presigned URLs of the folder store)."`

	// SigningKey signs the folder object store's presigned URLs (at least
	// 32 bytes); set the same key on every kiln process that serves one
	// folder. Default: random per process, so URLs die with it.
	SigningKey string `name:"signing-key" env:"KILN_SIGNING_KEY" help:"Key for the folder store's presigned URLs (32+ bytes)."`

	// CORSOrigins are the origins (scheme://host[:port], exactly as
	// browsers send them) of web apps whose pages may use presigned URLs:
	// the folder store answers their CORS requests at /objects/, and kiln
	// serve sets an S3 bucket's CORS rules for them at start, or warns that
	// it cannot. Default: none, no CORS.
	CORSOrigins []string `name:"cors-origins" env:"KILN_CORS_ORIGINS" help:"Origins of web pages that may PUT and GET presigned URLs (comma-separated, e.g. https://app.example.com)."`

	// MaxPartBytes is the largest upload part. Default: 64 MiB (OpenAI's).
	MaxPartBytes int64 `name:"max-part-bytes" env:"KILN_MAX_PART_BYTES" default:"${max_part_bytes_default}" help:"Largest upload part, in bytes."`

	// UploadTTL is how long an upload takes parts before it expires and its
	// parts are removed. Default: 1h.
	UploadTTL time.Duration `name:"upload-ttl" env:"KILN_UPLOAD_TTL" default:"${upload_ttl_default}" help:"Uploads expire after this."`

	// MaxPendingUploads is the most uploads in progress (pending, or
	// completing) at once; POST /v1/uploads past it is a 429
	// too_many_pending_uploads. A negative value is no cap. Default: 1000.
	MaxPendingUploads int `name:"max-pending-uploads" env:"KILN_MAX_PENDING_UPLOADS" default:"${max_pending_uploads_default}" help:"Most uploads in progress at once (negative: no cap)."`

	// MaxPendingUploadBytes is the most bytes the uploads in progress may
	// declare in all; an upload past it is a 429 too_many_pending_uploads.
	// A negative value is no cap. Default: 100 GiB.
	MaxPendingUploadBytes int64 `name:"max-pending-upload-bytes" env:"KILN_MAX_PENDING_UPLOAD_BYTES" default:"${max_pending_bytes_default}" help:"Most bytes the uploads in progress may declare in all (negative: no cap)."`

	// MaxLineBytes is the longest accepted batch input line. Default: 10 MiB.
	MaxLineBytes int `name:"max-line-bytes" env:"KILN_MAX_LINE_BYTES" default:"${max_line_bytes_default}" help:"Longest accepted batch input line, in bytes."`

	// MaxRequests is the most requests one batch may hold. Default: 1000000.
	MaxRequests int `name:"max-requests" env:"KILN_MAX_REQUESTS" default:"${max_requests_default}" help:"Most requests per batch."`

	// PollInterval is how often job workers poll for work where the database
	// cannot notify them (SQLite). Default: 50ms.
	PollInterval time.Duration `name:"poll-interval" env:"KILN_POLL_INTERVAL" default:"${poll_interval_default}" help:"Job poll interval where the database cannot notify."`

	// ShutdownTimeout is how long a graceful stop waits for work in flight.
	// Default: 30s.
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"KILN_SHUTDOWN_TIMEOUT" default:"${shutdown_timeout_default}" help:"Grace period on shutdown."`

	// KeyRotationGrace is how long a rotated API key keeps working beside
	// its successor. Default: 24h.
	KeyRotationGrace time.Duration `name:"key-rotation-grace" env:"KILN_KEY_ROTATION_GRACE" default:"${key_rotation_grace_default}" help:"How long a rotated API key keeps working."`

	// BodyIdleTimeout is how long a request body may send nothing before
	// the request fails with 408. JSON bodies are read whole within 5s
	// besides. Default: 20s.
	BodyIdleTimeout time.Duration `name:"body-idle-timeout" env:"KILN_BODY_IDLE_TIMEOUT" default:"${body_idle_timeout_default}" help:"Longest pause of a request body before 408."`

	// BodyMinRate is the slowest a request body may arrive, in bytes per
	// second on average, once it has taken BodyIdleTimeout; slower is a
	// 408. Default: 1024.
	BodyMinRate int `name:"body-min-rate" env:"KILN_BODY_MIN_RATE" default:"${body_min_rate_default}" help:"Slowest average rate of a request body, bytes/s, before 408."`

	// WebhookTimeout bounds one webhook delivery attempt. Default: 10s.
	WebhookTimeout time.Duration `name:"webhook-timeout" env:"KILN_WEBHOOK_TIMEOUT" default:"${webhook_timeout_default}" help:"Timeout of one webhook delivery attempt."`

	// WebhookMaxAge is how long kiln keeps retrying a webhook delivery
	// before it is marked failed. Default: 24h.
	WebhookMaxAge time.Duration `name:"webhook-max-age" env:"KILN_WEBHOOK_MAX_AGE" default:"${webhook_max_age_default}" help:"How long a webhook delivery is retried."`

	// WebhookAllowPrivate lets webhooks reach loopback, private and
	// link-local addresses, which are otherwise refused (SSRF guard).
	// Default: false.
	WebhookAllowPrivate bool `name:"webhook-allow-private" env:"KILN_WEBHOOK_ALLOW_PRIVATE" help:"Allow webhooks to private, loopback and link-local addresses."`

	// RetryBase is the first retry delay of functions and webhook
	// deliveries; each retry doubles it, up to RetryMax, with jitter.
	// Default: 1s.
	RetryBase time.Duration `name:"retry-base" env:"KILN_RETRY_BASE" default:"${retry_base_default}" help:"First retry delay of functions and webhooks."`

	// RetryMax caps the retry delay. Default: 1h.
	RetryMax time.Duration `name:"retry-max" env:"KILN_RETRY_MAX" default:"${retry_max_default}" help:"Longest retry delay of functions and webhooks."`

	// FunctionMaxAttempts is how many times a function runs for one event
	// before the invocation becomes a dead letter. Default: 25.
	FunctionMaxAttempts int `name:"function-max-attempts" env:"KILN_FUNCTION_MAX_ATTEMPTS" default:"${function_max_attempts_default}" help:"Attempts of a function before its dead letter."`

	// FunctionMaxAge is how long after an event a failing function is still
	// retried. Default: 24h.
	FunctionMaxAge time.Duration `name:"function-max-age" env:"KILN_FUNCTION_MAX_AGE" default:"${function_max_age_default}" help:"How long a failing function is retried."`

	// InboxPrefix is the bucket prefix whose objects become files (and
	// batches, with a sidecar), such as "inbox/". Default: "" (no inbox).
	InboxPrefix string `name:"inbox-prefix" env:"KILN_INBOX_PREFIX" help:"Bucket prefix whose objects become files, e.g. inbox/."`

	// InboxPollInterval is how often the inbox is listed, for stores that
	// send no notifications. A negative value (-1s) turns listing off and
	// relies on notifications alone; 0, as in every field, is the default,
	// so that a Config built in code polls as the CLI does. Default: 10s.
	InboxPollInterval time.Duration `name:"inbox-poll-interval" env:"KILN_INBOX_POLL_INTERVAL" default:"${inbox_poll_interval_default}" help:"How often the inbox is listed (negative: notifications only)."`

	// InboxSQSURL is an SQS queue of the bucket's S3 event notifications
	// (sent directly or through SNS), such as
	// https://sqs.us-east-1.amazonaws.com/123456789012/kiln-inbox, from
	// which kiln serve learns of new inbox objects. Credentials come from
	// the AWS SDK's default chain. Default: "" (no queue).
	InboxSQSURL string `name:"inbox-sqs-url" env:"KILN_INBOX_SQS_URL" help:"SQS queue of the bucket's S3 notifications for the inbox."`

	// InboxSQSConcurrency is how many SQS messages kiln serve handles at
	// once. Default: 10.
	InboxSQSConcurrency int `name:"inbox-sqs-concurrency" env:"KILN_INBOX_SQS_CONCURRENCY" default:"${inbox_sqs_concurrency_default}" help:"SQS inbox messages handled at once."`

	// AWSRegion is the region of kiln's SQS and Lambda clients. Default:
	// "" (the region in the queue URL or function ARN, else the AWS SDK's:
	// AWS_REGION, AWS_DEFAULT_REGION, the profile's).
	AWSRegion string `name:"aws-region" env:"KILN_AWS_REGION" help:"Region of kiln's SQS and Lambda clients."`

	// RemoteFunctions run functions as AWS Lambda functions, as
	// name=function (KILN_REMOTE_FUNCTIONS is comma-separated), such as
	// inbox_import=arn:aws:lambda:us-east-1:123456789012:function:kiln: kiln
	// invokes the Lambda function for each of the function's invocations.
	// Default: none (every function runs in-process).
	RemoteFunctions []string `name:"remote-function" env:"KILN_REMOTE_FUNCTIONS" help:"name=lambda-function: run a function as a Lambda (repeatable)."`

	// EventRetention is how long events, with their finished function
	// invocations and webhook deliveries, are kept. Default: 720h (30 days).
	EventRetention time.Duration `name:"event-retention" env:"KILN_EVENT_RETENTION" default:"${event_retention_default}" help:"How long events and their delivery logs are kept."`

	// FileRetention deletes files a time after they are made, by purpose,
	// as purpose=duration (KILN_FILE_RETENTION is comma-separated), such as
	// batch=720h,batch_output=2160h: a file of that purpose gets that
	// expires_at, unless its client asked for one (expires_after,
	// output_expires_after), and the files_expire job deletes it then. The
	// purpose * stands for every purpose not listed; a duration of 0 keeps
	// a purpose's files for good (batch=0,*=720h). A duration is at least
	// 1h, as OpenAI's expires_after. It applies to files made after it is
	// set. Default: none (files are kept until deleted).
	FileRetention []string `name:"file-retention" env:"KILN_FILE_RETENTION" help:"purpose=duration: files of the purpose expire that long after creation (repeatable; * for every other purpose, 0 keeps)."`

	// LogLevel is debug, info, warn or error. Default: "info".
	LogLevel string `name:"log-level" env:"KILN_LOG_LEVEL" default:"${log_level_default}" enum:"debug,info,warn,error" help:"Log level."`
}

// WithDefaults returns a copy of c with every zero field that has a default
// set to it.
func (c Config) WithDefaults() Config {
	c.Addr = cmp.Or(c.Addr, AddrDefault)
	c.DatabaseURL = cmp.Or(c.DatabaseURL, DatabaseURLDefault)
	c.ObjectStore = cmp.Or(c.ObjectStore, ObjectStoreDefault)
	c.Agent = cmp.Or(c.Agent, AgentDefault)
	c.AgentConcurrency = cmp.Or(c.AgentConcurrency, AgentConcurrencyDefault)
	c.ShardSize = cmp.Or(c.ShardSize, ShardSizeDefault)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, LeaseTTLDefault)
	c.StarvationBound = cmp.Or(c.StarvationBound, StarvationBoundDefault)
	c.MetricsAddr = cmp.Or(c.MetricsAddr, MetricsAddrDefault)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, MaxResponseBytesDefault)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, RequestTimeoutDefault)
	c.ChunkLines = cmp.Or(c.ChunkLines, ChunkLinesDefault)
	c.ChunkInterval = cmp.Or(c.ChunkInterval, ChunkIntervalDefault)
	c.MaxFileBytes = cmp.Or(c.MaxFileBytes, MaxFileBytesDefault)
	c.MaxPartBytes = cmp.Or(c.MaxPartBytes, MaxPartBytesDefault)
	c.UploadTTL = cmp.Or(c.UploadTTL, UploadTTLDefault)
	c.MaxPendingUploads = cmp.Or(c.MaxPendingUploads, MaxPendingUploadsDefault)
	c.MaxPendingUploadBytes = cmp.Or(c.MaxPendingUploadBytes, MaxPendingUploadBytesDefault)
	c.MaxLineBytes = cmp.Or(c.MaxLineBytes, MaxLineBytesDefault)
	c.MaxRequests = cmp.Or(c.MaxRequests, MaxRequestsDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.KeyRotationGrace = cmp.Or(c.KeyRotationGrace, KeyRotationGraceDefault)
	c.BodyIdleTimeout = cmp.Or(c.BodyIdleTimeout, BodyIdleTimeoutDefault)
	c.BodyMinRate = cmp.Or(c.BodyMinRate, BodyMinRateDefault)
	c.WebhookTimeout = cmp.Or(c.WebhookTimeout, WebhookTimeoutDefault)
	c.WebhookMaxAge = cmp.Or(c.WebhookMaxAge, WebhookMaxAgeDefault)
	c.RetryBase = cmp.Or(c.RetryBase, RetryBaseDefault)
	c.RetryMax = cmp.Or(c.RetryMax, RetryMaxDefault)
	c.FunctionMaxAttempts = cmp.Or(c.FunctionMaxAttempts, FunctionMaxAttemptsDefault)
	c.FunctionMaxAge = cmp.Or(c.FunctionMaxAge, FunctionMaxAgeDefault)
	c.InboxPollInterval = cmp.Or(c.InboxPollInterval, InboxPollIntervalDefault)
	c.EventRetention = cmp.Or(c.EventRetention, EventRetentionDefault)
	c.InboxSQSConcurrency = cmp.Or(c.InboxSQSConcurrency, InboxSQSConcurrencyDefault)
	c.LogLevel = cmp.Or(c.LogLevel, LogLevelDefault)
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		return fmt.Errorf("config: KILN_DATABASE_URL %q: want postgres://... or sqlite:///path", c.DatabaseURL)
	}
	if !strings.HasPrefix(c.ObjectStore, "s3://") && !strings.HasPrefix(c.ObjectStore, "file://") {
		return fmt.Errorf("config: KILN_OBJECT_STORE %q: want s3://bucket?endpoint=... or file:///path", c.ObjectStore)
	}
	if c.AdminKey != "" && c.AdminKey == c.APIKey {
		return fmt.Errorf("config: KILN_ADMIN_KEY must differ from KILN_API_KEY: an admin key opens the Administration API only")
	}
	if c.LLMURL != "" {
		if u, err := url.Parse(c.LLMURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("config: KILN_LLM_URL %q: want an http(s) URL", c.LLMURL)
		}
	}
	switch {
	case c.AgentConcurrency < 1:
		return fmt.Errorf("config: KILN_AGENT_CONCURRENCY must be at least 1, got %d", c.AgentConcurrency)
	case c.ChunkLines < 1:
		return fmt.Errorf("config: KILN_CHUNK_LINES must be at least 1, got %d", c.ChunkLines)
	case c.MaxFileBytes < 1:
		return fmt.Errorf("config: KILN_MAX_FILE_BYTES must be positive, got %d", c.MaxFileBytes)
	case c.MaxLineBytes < 1024:
		return fmt.Errorf("config: KILN_MAX_LINE_BYTES must be at least 1024, got %d", c.MaxLineBytes)
	case c.MaxRequests < 1:
		return fmt.Errorf("config: KILN_MAX_REQUESTS must be at least 1, got %d", c.MaxRequests)
	case c.ShardSize < 1:
		return fmt.Errorf("config: KILN_SHARD_SIZE must be at least 1, got %d", c.ShardSize)
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("config: KILN_LEASE_TTL must be at least 1s, got %s", c.LeaseTTL)
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("config: KILN_RETRY_MAX (%s) must not be below KILN_RETRY_BASE (%s)", c.RetryMax, c.RetryBase)
	}
	if c.InboxPrefix != "" && (strings.HasPrefix(c.InboxPrefix, "/") || !strings.HasSuffix(c.InboxPrefix, "/")) {
		return fmt.Errorf("config: KILN_INBOX_PREFIX %q: want a prefix such as inbox/ (no leading /, a trailing /)", c.InboxPrefix)
	}
	if c.EngineCommand != "" && len(c.EngineModels) == 0 {
		return fmt.Errorf("config: KILN_ENGINE_COMMAND needs KILN_ENGINE_MODELS, the models it may load")
	}
	if c.SigningKey != "" && len(c.SigningKey) < 32 {
		return fmt.Errorf("config: KILN_SIGNING_KEY must be at least 32 bytes")
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.Contains(o, "*") {
			return fmt.Errorf("config: KILN_CORS_ORIGINS entry %q: want an origin, scheme://host[:port] as in https://app.example.com (no path, no trailing slash, no wildcard)", o)
		}
	}
	if c.InboxSQSURL != "" {
		if u, err := url.Parse(c.InboxSQSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: KILN_INBOX_SQS_URL %q: want a queue URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME", c.InboxSQSURL)
		}
		if c.InboxPrefix == "" {
			return fmt.Errorf("config: KILN_INBOX_SQS_URL needs KILN_INBOX_PREFIX, the inbox its notifications report")
		}
	}
	if c.InboxSQSConcurrency < 1 {
		return fmt.Errorf("config: KILN_INBOX_SQS_CONCURRENCY must be at least 1, got %d", c.InboxSQSConcurrency)
	}
	for _, f := range c.RemoteFunctions {
		if name, fn, ok := strings.Cut(f, "="); !ok || name == "" || fn == "" {
			return fmt.Errorf("config: KILN_REMOTE_FUNCTIONS entry %q: want name=lambda-function, e.g. inbox_import=arn:aws:lambda:REGION:ACCOUNT:function:NAME", f)
		}
	}
	if _, err := ParseFileRetention(c.FileRetention); err != nil {
		return err
	}
	for _, e := range c.Endpoints {
		if m, u, ok := strings.Cut(e, "="); !ok || m == "" || !strings.HasPrefix(u, "http") {
			return fmt.Errorf("config: KILN_ENDPOINTS entry %q: want model=http://host:port/v1", e)
		}
	}
	return nil
}

// FilePurposes are the purposes of files, which KILN_FILE_RETENTION names:
// OpenAI's upload purposes and batch_output. internal/batch's lists agree
// (a test there compares them).
var FilePurposes = []string{"assistants", "batch", "batch_output", "fine-tune", "vision", "user_data", "evals"}

// FileRetentionAny is the purpose of KILN_FILE_RETENTION that stands for
// every purpose not listed.
const FileRetentionAny = "*"

// MinFileRetention is the shortest retention, as OpenAI's shortest
// expires_after.
const MinFileRetention = time.Hour

// ParseFileRetention reads FileRetention's purpose=duration entries into a
// map from purpose (or FileRetentionAny) to duration; 0 keeps the
// purpose's files. An unknown or repeated purpose, or a duration that is
// negative or under MinFileRetention, is an error naming the entry.
func ParseFileRetention(entries []string) (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, len(entries))
	for _, e := range entries {
		purpose, d, ok := strings.Cut(strings.TrimSpace(e), "=")
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		purpose = strings.TrimSpace(purpose)
		switch {
		case !ok || err != nil:
			return nil, fmt.Errorf("config: KILN_FILE_RETENTION entry %q: want purpose=duration, e.g. batch_output=720h", e)
		case purpose != FileRetentionAny && !slices.Contains(FilePurposes, purpose):
			return nil, fmt.Errorf("config: KILN_FILE_RETENTION entry %q: the purpose is not one of %s or *", e, strings.Join(FilePurposes, ", "))
		case dur != 0 && dur < MinFileRetention:
			return nil, fmt.Errorf("config: KILN_FILE_RETENTION entry %q: a retention is 0 (keep) or at least %s", e, MinFileRetention)
		}
		if _, dup := out[purpose]; dup {
			return nil, fmt.Errorf("config: KILN_FILE_RETENTION names %s twice", purpose)
		}
		out[purpose] = dur
	}
	return out, nil
}

// IsSQLite reports whether the store is the embedded SQLite database.
func (c Config) IsSQLite() bool { return strings.HasPrefix(c.DatabaseURL, "sqlite://") }

// AgentEnabled resolves Agent's "auto" against the store kind.
func (c Config) AgentEnabled() bool {
	switch c.Agent {
	case "on":
		return true
	case "off":
		return false
	default:
		return c.IsSQLite()
	}
}
