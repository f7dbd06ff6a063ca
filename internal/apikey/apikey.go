// Package apikey makes, stores and checks kiln's API keys. Only a key's
// SHA-256 is stored; the secret is shown once, when the key is made.
package apikey

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// Prefix starts every secret kiln makes.
const Prefix = "sk-kiln-"

// Hash is the stored form of a secret.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Create makes a key named name in the default project, with every scope,
// stores its hash and returns the key and its secret.
func Create(ctx context.Context, st *store.Store, name string) (store.APIKey, string, error) {
	return New(ctx, st, store.APIKey{Name: name})
}

// New makes a key like k (its name, project, owner and scopes; the rest is
// filled in), stores its hash and returns the key and its secret, which is
// shown only this once.
func New(ctx context.Context, st *store.Store, k store.APIKey) (store.APIKey, string, error) {
	secret := fill(&k)
	if err := st.KeyCreate(ctx, k); err != nil {
		return store.APIKey{}, "", fmt.Errorf("apikey: create: %w", err)
	}
	k.ProjectID = cmp.Or(k.ProjectID, store.DefaultProject)
	k.OwnerType = cmp.Or(k.OwnerType, store.KeyOwnerUser)
	return k, secret, nil
}

// Rotate replaces a live key by a new one with its name, project, owner
// and scopes, and returns the new key and its secret. The old key keeps
// working until grace has passed (0: it stops at once).
func Rotate(ctx context.Context, st *store.Store, id string, grace time.Duration) (store.APIKey, string, error) {
	var next store.APIKey
	secret := fill(&next)
	k, err := st.KeyRotate(ctx, id, next, grace)
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("apikey: rotate: %w", err)
	}
	return k, secret, nil
}

// fill gives k a new ID and secret, and returns the secret.
func fill(k *store.APIKey) string {
	secret := Prefix + rand.Text()
	k.ID = ids.New(ids.Key)
	k.Prefix = secret[:len(Prefix)+4]
	k.Hash = Hash(secret)
	k.CreatedAt = time.Now().Unix()
	return secret
}

// ErrInvalid is a secret that matches no live key.
var ErrInvalid = errors.New("apikey: invalid key")

// CacheTTL is how long a Checker trusts a good answer by default, and so
// the longest a revoked key keeps working where no notification tells the
// Checker of the revocation (see Checker).
const CacheTTL = 2 * time.Second

// Checker checks bearer secrets against the store and an optional static
// key, remembering good answers for a short while (TTL) so that a busy
// client does not cost a query per request.
//
// A revoked key stops working at once when it is revoked through the
// Checker's store (the store tells the Checker before KeyRevoke returns),
// and on Postgres at once when it is revoked through any other store, in
// another kiln or a `kiln keys revoke` (LISTEN/NOTIFY). Otherwise — on
// SQLite, where the database cannot notify, or while Postgres's
// notification connection is down — it stops working within TTL.
type Checker struct {
	st     *store.Store
	static string
	// TTL is how long a good answer is trusted. Zero means CacheTTL (2s).
	// Set it before the first Check.
	TTL time.Duration

	mu    sync.Mutex
	cache map[string]cached // by the secret's hash
	// gen counts revocations heard, so that an answer read before one is
	// not cached after it.
	gen uint64
}

type cached struct {
	id    string
	until time.Time
	who   auth.Principal
}

// NewChecker checks against st and, when static is not empty, that secret.
// It watches st's revocations until st closes.
func NewChecker(st *store.Store, static string) *Checker {
	c := &Checker{st: st, static: static, cache: map[string]cached{}}
	if st != nil {
		st.KeyWatch(context.Background(), c.forget)
	}
	return c
}

// forget drops the cached answers of the key with the ID, or every answer
// when id is empty.
func (c *Checker) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id == "" {
		clear(c.cache)
		return
	}
	for h, e := range c.cache {
		if e.id == id {
			delete(c.cache, h)
		}
	}
}

// Check returns the principal of a live key, ErrInvalid for a bad one, or
// a store error. KILN_API_KEY acts for the default project, with every
// scope.
func (c *Checker) Check(ctx context.Context, secret string) (auth.Principal, error) {
	if secret == "" {
		return auth.Principal{}, ErrInvalid
	}
	if c.static != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.static)) == 1 {
		return auth.Principal{ProjectID: auth.DefaultProject}, nil
	}
	h := Hash(secret)
	now := time.Now()
	c.mu.Lock()
	e, ok := c.cache[h]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.who, nil
	}
	k, err := c.st.KeyByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Principal{}, ErrInvalid
	}
	if err != nil {
		return auth.Principal{}, err
	}
	_ = c.st.KeyTouch(ctx, k.ID)
	who := auth.Principal{KeyID: k.ID, ProjectID: k.ProjectID, Scopes: k.Scopes}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = CacheTTL
	}
	until := now.Add(ttl)
	if k.ExpiresAt != nil && time.Unix(*k.ExpiresAt, 0).Before(until) {
		until = time.Unix(*k.ExpiresAt, 0) // a rotated key's grace ends on time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return who, nil // a revocation was heard meanwhile: good now, not cached
	}
	if len(c.cache) > 10_000 {
		clear(c.cache)
	}
	c.cache[h] = cached{id: k.ID, until: until, who: who}
	return who, nil
}
