// Package apikey makes, stores and checks kiln's API keys. Only a key's
// SHA-256 is stored; the secret is shown once, when the key is made.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

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

// Create makes a key named name, stores its hash and returns the key and its
// secret.
func Create(ctx context.Context, st *store.Store, name string) (store.APIKey, string, error) {
	secret := Prefix + rand.Text()
	k := store.APIKey{
		ID:        ids.New(ids.Key),
		Name:      name,
		Prefix:    secret[:len(Prefix)+4],
		Hash:      Hash(secret),
		CreatedAt: time.Now().Unix(),
	}
	if err := st.KeyCreate(ctx, k); err != nil {
		return store.APIKey{}, "", fmt.Errorf("apikey: create: %w", err)
	}
	return k, secret, nil
}

// ErrInvalid is a secret that matches no live key.
var ErrInvalid = errors.New("apikey: invalid key")

// Checker checks bearer secrets against the store and an optional static
// key, remembering good answers for a short while so that a busy client does
// not cost a query per request. A revoked key stops working within cacheTTL.
type Checker struct {
	st     *store.Store
	static string

	mu    sync.Mutex
	cache map[string]time.Time // hash -> valid until
}

const cacheTTL = 10 * time.Second

// NewChecker checks against st and, when static is not empty, that secret.
func NewChecker(st *store.Store, static string) *Checker {
	return &Checker{st: st, static: static, cache: map[string]time.Time{}}
}

// Check returns nil for a live key, ErrInvalid for a bad one, or a store
// error.
func (c *Checker) Check(ctx context.Context, secret string) error {
	if secret == "" {
		return ErrInvalid
	}
	if c.static != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.static)) == 1 {
		return nil
	}
	h := Hash(secret)
	now := time.Now()
	c.mu.Lock()
	until, ok := c.cache[h]
	c.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	k, err := c.st.KeyByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalid
	}
	if err != nil {
		return err
	}
	_ = c.st.KeyTouch(ctx, k.ID)
	c.mu.Lock()
	if len(c.cache) > 10_000 {
		clear(c.cache)
	}
	c.cache[h] = now.Add(cacheTTL)
	c.mu.Unlock()
	return nil
}
