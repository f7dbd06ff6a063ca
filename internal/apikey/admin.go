package apikey

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/store"
)

// AdminPrefix starts every admin secret kiln makes, as OpenAI's admin keys
// start with sk-admin-.
const AdminPrefix = "sk-kiln-admin-"

// StaticAdminKeyID stands for KILN_ADMIN_KEY in the audit log: the setting
// is not stored and has no ID of its own.
const StaticAdminKeyID = "KILN_ADMIN_KEY"

// NewAdmin makes an admin key named name, stores its hash and returns the
// key and its secret, which is shown only this once.
func NewAdmin(ctx context.Context, st *store.Store, name string) (store.AdminKey, string, error) {
	secret := AdminPrefix + rand.Text()
	k := store.AdminKey{ID: ids.New(ids.AdminKey), Name: name, Prefix: secret[:len(AdminPrefix)+4], Hash: Hash(secret), CreatedAt: time.Now().Unix()}
	if err := st.AdminKeyCreate(ctx, k); err != nil {
		return store.AdminKey{}, "", fmt.Errorf("apikey: create admin key: %w", err)
	}
	return k, secret, nil
}

// AdminChecker checks bearer secrets of the Administration API against the
// stored admin keys and an optional static one (KILN_ADMIN_KEY). It keeps
// no cache: admin requests are few, and a revoked admin key stops at once,
// on every backend.
type AdminChecker struct {
	st     *store.Store
	static string
}

// NewAdminChecker checks against st and, when static is not empty, that
// secret.
func NewAdminChecker(st *store.Store, static string) *AdminChecker {
	return &AdminChecker{st: st, static: static}
}

// Check returns the actor of a live admin key, ErrInvalid for a secret that
// is none, or a store error.
func (c *AdminChecker) Check(ctx context.Context, secret string) (store.Actor, error) {
	if secret == "" {
		return store.Actor{}, ErrInvalid
	}
	if c.static != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.static)) == 1 {
		return store.Actor{Type: store.ActorAdminKey, ID: StaticAdminKeyID}, nil
	}
	if c.st == nil {
		return store.Actor{}, ErrInvalid
	}
	k, err := c.st.AdminKeyByHash(ctx, Hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return store.Actor{}, ErrInvalid
	}
	if err != nil {
		return store.Actor{}, err
	}
	_ = c.st.AdminKeyTouch(ctx, k.ID)
	return store.Actor{Type: store.ActorAdminKey, ID: k.ID}, nil
}
