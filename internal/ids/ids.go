// Package ids makes kiln's object IDs: an OpenAI-style prefix and a ULID, so
// that IDs sort by creation time and pagination can use them as cursors.
package ids

import (
	"crypto/rand"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Prefixes of kiln's object IDs, as OpenAI spells them.
const (
	File     = "file-"
	Batch    = "batch_"
	BatchReq = "batch_req_"
	Key      = "key_"
	Project  = "proj_"
	// ServiceAccount and AdminKey are as OpenAI's Administration API
	// spells them.
	ServiceAccount = "svc_acct_"
	AdminKey       = "key_admin_"
	RateLimit      = "rl_"
	AuditLog       = "audit_log-"
	Request        = "req_"
	Upload         = "upload_"
	Part           = "part_"
	Event          = "evt_"
	// Invocation is a function's handling of one event.
	Invocation = "inv_"
	// WebhookEndpoint and Delivery are extensions: OpenAI configures
	// webhooks in its dashboard, not through the API.
	WebhookEndpoint = "we_"
	Delivery        = "whdel_"
	// Curation.
	Task    = "task_"
	Output  = "out_"
	History = "hist_"
	Export  = "export_"
	Curator = "cur_"
)

var (
	mu      sync.Mutex
	entropy = ulid.Monotonic(rand.Reader, 0)
)

// New returns prefix followed by a new lower-case ULID. IDs made by one
// process increase strictly.
func New(prefix string) string {
	mu.Lock()
	id := ulid.MustNew(ulid.Timestamp(time.Now()), entropy)
	mu.Unlock()
	return prefix + strings.ToLower(id.String())
}
