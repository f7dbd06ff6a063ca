package apikey

import (
	"context"
	"fmt"

	"github.com/kilnhq/kiln/internal/store"
)

// ServiceAccountKeyName names the key made with a service account, as
// OpenAI names it.
const ServiceAccountKeyName = "Secret Key"

// NewServiceAccount stores the service account a and, unless bare, its key
// with scopes (none: every scope), in one transaction. It returns the key
// and its secret, shown only this once; both are zero when bare.
func NewServiceAccount(ctx context.Context, st *store.Store, a store.ServiceAccount, scopes []string, bare bool) (*store.APIKey, string, error) {
	if bare {
		if err := st.ServiceAccountCreate(ctx, a, nil); err != nil {
			return nil, "", fmt.Errorf("apikey: create service account: %w", err)
		}
		return nil, "", nil
	}
	k := store.APIKey{Name: ServiceAccountKeyName, Scopes: scopes}
	secret := fill(&k)
	if err := st.ServiceAccountCreate(ctx, a, &k); err != nil {
		return nil, "", fmt.Errorf("apikey: create service account: %w", err)
	}
	return &k, secret, nil
}
