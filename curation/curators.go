package curation

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// The curator routes, for admins: who has a curator key, and revoking one.
// Keys are made with kiln curators create, which alone shows the secret.

func registerCurators(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listCurators", Method: http.MethodGet, Path: "/v1/curation/curators",
		Summary: "List curators", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "Every curator, revoked ones too, oldest first; a key shows only its start (key_prefix).",
	}, d.listCurators)

	huma.Register(api, huma.Operation{
		OperationID: "revokeCurator", Method: http.MethodPost, Path: "/v1/curation/curators/{curator_id}/revoke",
		Summary: "Revoke a curator's key", Tags: tags, Middlewares: adminsOnlyTo(api, d.Store, "manage curators"),
		Description: "The key and every session signed in with it stop working at once. A revoked curator's annotations stay. " +
			"Revoking twice is 409 curator_revoked.",
	}, d.revokeCurator)
}

// curatorRoles are the roles, listed once: the schema's enum comes from
// here.
var curatorRoles = []string{RoleCurator, RoleAdmin}

// curatorRole is a curator's role.
type curatorRole string

// TransformSchema lists curatorRoles as the schema's enum.
func (curatorRole) TransformSchema(_ huma.Registry, s *huma.Schema) *huma.Schema {
	return withEnum(s, curatorRoles...)
}

// Curator is a curator as admins see them: their key never, only its
// start.
type Curator struct {
	ID        string      `json:"id"`
	Object    string      `json:"object" enum:"curation.curator"`
	Name      string      `json:"name"`
	Role      curatorRole `json:"role"`
	KeyPrefix string      `json:"key_prefix" doc:"The start of the curator's key (ck-…), to tell keys apart."`
	CreatedAt int64       `json:"created_at"`
	RevokedAt *int64      `json:"revoked_at" doc:"When the key was revoked; null while it works."`
}

func curatorOfStore(c store.Curator) Curator {
	return Curator{ID: c.ID, Object: "curation.curator", Name: c.Name, Role: curatorRole(c.Role), KeyPrefix: c.Prefix,
		CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt}
}

type curatorListOutput struct {
	Body listOf[Curator]
}

func (d Deps) listCurators(ctx context.Context, _ *struct{}) (*curatorListOutput, error) {
	list, err := d.Store.CuratorList(ctx)
	if err != nil {
		return nil, err
	}
	out := &curatorListOutput{}
	out.Body.Data = make([]Curator, 0, len(list))
	for _, c := range list {
		out.Body.Data = append(out.Body.Data, curatorOfStore(c))
	}
	return out, nil
}

type curatorInput struct {
	CuratorID string `path:"curator_id"`
}

type curatorOutput struct {
	Body Curator
}

func (d Deps) revokeCurator(ctx context.Context, in *curatorInput) (*curatorOutput, error) {
	c, err := d.Store.CuratorRevoke(ctx, in.CuratorID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, apierror.NotFound("curator", in.CuratorID)
	case errors.Is(err, store.ErrConflict):
		return nil, apierror.Conflict("curator_revoked", "The curator's key is revoked already.")
	case err != nil:
		return nil, err
	}
	return &curatorOutput{curatorOfStore(c)}, nil
}
