package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// AuditLog is OpenAI's audit log object: the type's payload is under the
// type's name, as {"type": "project.created", "project.created": {...}}.
type AuditLog struct {
	ID          string           `json:"id"`
	Type        string           `json:"type"`
	EffectiveAt int64            `json:"effective_at"`
	Project     *AuditLogProject `json:"project,omitempty" doc:"The project the change concerns; absent for admin keys."`
	Actor       *AuditLogActor   `json:"actor" doc:"Who made the change; null for kiln itself (its first key)."`

	ProjectCreated        json.RawMessage `json:"project.created,omitempty"`
	ProjectUpdated        json.RawMessage `json:"project.updated,omitempty"`
	ProjectArchived       json.RawMessage `json:"project.archived,omitempty"`
	APIKeyCreated         json.RawMessage `json:"api_key.created,omitempty" doc:"data.scopes as OpenAI's; kiln extensions data.name, data.owner_type and data.service_account_id."`
	APIKeyUpdated         json.RawMessage `json:"api_key.updated,omitempty" doc:"A rotation: changes_requested.expires_at (the old key's end) and changes_requested.rotated_to (the new key), kiln extensions."`
	APIKeyDeleted         json.RawMessage `json:"api_key.deleted,omitempty"`
	ServiceAccountCreated json.RawMessage `json:"service_account.created,omitempty"`
	ServiceAccountDeleted json.RawMessage `json:"service_account.deleted,omitempty"`
	RateLimitUpdated      json.RawMessage `json:"rate_limit.updated,omitempty" doc:"changes_requested holds the limits as written, with the model and kiln's upload limits."`
	AdminKeyCreated       json.RawMessage `json:"tenant.admin_api_key.created,omitempty"`
	AdminKeyDeleted       json.RawMessage `json:"tenant.admin_api_key.deleted,omitempty"`
}

// AuditLogProject is the project of an audit log.
type AuditLogProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AuditLogActor is who made a change: an admin key (type api_key), or
// kiln's command line on the database's host (type session, its user being
// the system user that ran it).
type AuditLogActor struct {
	Type    string                `json:"type" enum:"session,api_key"`
	Session *AuditLogActorSession `json:"session,omitempty"`
	APIKey  *AuditLogActorAPIKey  `json:"api_key,omitempty"`
}

// AuditLogActorSession is the command line's session.
type AuditLogActorSession struct {
	User AuditLogActorUser `json:"user"`
}

// AuditLogActorUser is a user.
type AuditLogActorUser struct {
	ID string `json:"id"`
}

// AuditLogActorAPIKey is the admin key that made a change: its ID, or
// KILN_ADMIN_KEY for the setting.
type AuditLogActorAPIKey struct {
	ID   string `json:"id"`
	Type string `json:"type" enum:"user,service_account"`
}

// ListAuditLogsResponse is OpenAI's list of audit logs.
type ListAuditLogsResponse struct {
	Object  string     `json:"object" enum:"list"`
	Data    []AuditLog `json:"data"`
	FirstID *string    `json:"first_id"`
	LastID  *string    `json:"last_id"`
	HasMore bool       `json:"has_more"`
}

func auditLogOf(l store.AuditLog) AuditLog {
	out := AuditLog{ID: l.ID, Type: l.Type, EffectiveAt: l.EffectiveAt}
	if l.ProjectID != "" {
		out.Project = &AuditLogProject{ID: l.ProjectID, Name: l.ProjectName}
	}
	switch l.Actor.Type {
	case store.ActorAdminKey:
		out.Actor = &AuditLogActor{Type: "api_key", APIKey: &AuditLogActorAPIKey{ID: l.Actor.ID, Type: "user"}}
	case store.ActorCLI:
		out.Actor = &AuditLogActor{Type: "session", Session: &AuditLogActorSession{User: AuditLogActorUser{ID: l.Actor.ID}}}
	}
	payload := map[string]*json.RawMessage{
		store.AuditProjectCreated: &out.ProjectCreated, store.AuditProjectUpdated: &out.ProjectUpdated,
		store.AuditProjectArchived: &out.ProjectArchived, store.AuditAPIKeyCreated: &out.APIKeyCreated,
		store.AuditAPIKeyUpdated: &out.APIKeyUpdated, store.AuditAPIKeyDeleted: &out.APIKeyDeleted,
		store.AuditServiceAccountCreated: &out.ServiceAccountCreated, store.AuditServiceAccountDeleted: &out.ServiceAccountDeleted,
		store.AuditRateLimitUpdated: &out.RateLimitUpdated, store.AuditAdminKeyCreated: &out.AdminKeyCreated,
		store.AuditAdminKeyDeleted: &out.AdminKeyDeleted,
	}
	if p, ok := payload[l.Type]; ok {
		*p = l.Details
	}
	return out
}

type auditLogListInput struct {
	EffectiveAtGt  optionalParam[int64] `query:"effective_at[gt]" doc:"Only logs whose effective_at (Unix seconds) is greater than this."`
	EffectiveAtGte optionalParam[int64] `query:"effective_at[gte]" doc:"Only logs whose effective_at is greater than or equal to this."`
	EffectiveAtLt  optionalParam[int64] `query:"effective_at[lt]" doc:"Only logs whose effective_at is less than this."`
	EffectiveAtLte optionalParam[int64] `query:"effective_at[lte]" doc:"Only logs whose effective_at is less than or equal to this."`
	ProjectIDs     []string             `query:"project_ids[],explode" doc:"Only logs of these projects."`
	EventTypes     []string             `query:"event_types[],explode" doc:"Only logs of these types, such as project.created."`
	ActorIDs       []string             `query:"actor_ids[],explode" doc:"Only logs of these actors: admin key IDs (KILN_ADMIN_KEY for the setting) or the command line's users."`
	Limit          int                  `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many to return."`
	After          string               `query:"after" doc:"An audit log ID: list the older ones after it."`
	Before         string               `query:"before" doc:"An audit log ID: list the newer ones before it."`
}

type auditLogListOutput struct {
	Body ListAuditLogsResponse
}

func registerAuditLogs(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "listAuditLogs", Method: http.MethodGet, Path: "/v1/organization/audit_logs",
		Summary: "List audit logs", Tags: []string{"Audit Logs"}, Security: adminSecurity,
		Description: "Every change to projects, keys, service accounts, rate limits and admin keys, newest first, by whoever made it: " +
			"the Administration API, kiln's command line (kiln keys, kiln projects, kiln admin-keys) or kiln itself.",
	}, d.listAuditLogs)
}

func (d Deps) listAuditLogs(ctx context.Context, in *auditLogListInput) (*auditLogListOutput, error) {
	if in.After != "" && in.Before != "" {
		return nil, apierror.Invalid("before", "Give after or before, not both.")
	}
	list, more, err := d.Store.AuditLogList(ctx, store.AuditLogFilter{
		EffectiveAfter: in.EffectiveAtGt.ptr(), EffectiveFrom: in.EffectiveAtGte.ptr(),
		EffectiveBefore: in.EffectiveAtLt.ptr(), EffectiveUntil: in.EffectiveAtLte.ptr(),
		ProjectIDs: in.ProjectIDs, Types: in.EventTypes, ActorIDs: in.ActorIDs,
		After: in.After, Before: in.Before, Limit: in.Limit,
	})
	if err != nil {
		return nil, err
	}
	out := ListAuditLogsResponse{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, auditLogOf, func(l store.AuditLog) string { return l.ID })
	return &auditLogListOutput{Body: out}, nil
}
