package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnhq/kiln/internal/ids"
)

// Actor is who made a change that the audit log records. The store takes
// it from the context of the call that makes the change (WithActor), so
// that every path records it: the Administration API, the command line and
// kiln itself.
type Actor struct {
	// Type is ActorAdminKey, ActorCLI or ActorSystem.
	Type string
	// ID is the admin key's ID, the command line's user, or "" for kiln.
	ID string
}

// Kinds of actors.
const (
	// ActorAdminKey is a request to the Administration API with an admin
	// key.
	ActorAdminKey = "admin_key"
	// ActorCLI is kiln's command line, on a host with the database's
	// credentials.
	ActorCLI = "cli"
	// ActorSystem is kiln itself (such as its first key at start-up), and
	// any call whose context names no actor.
	ActorSystem = "system"
)

type actorKey struct{}

// WithActor is ctx acting for a: the changes made with it are recorded as
// a's.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom is the actor ctx acts for: ActorSystem unless WithActor said.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Type != "" {
		return a
	}
	return Actor{Type: ActorSystem}
}

// Audit log event types, as OpenAI's AuditLogEventType names them.
const (
	AuditProjectCreated        = "project.created"
	AuditProjectUpdated        = "project.updated"
	AuditProjectArchived       = "project.archived"
	AuditAPIKeyCreated         = "api_key.created"
	AuditAPIKeyUpdated         = "api_key.updated"
	AuditAPIKeyDeleted         = "api_key.deleted"
	AuditServiceAccountCreated = "service_account.created"
	AuditServiceAccountDeleted = "service_account.deleted"
	AuditRateLimitUpdated      = "rate_limit.updated"
	AuditAdminKeyCreated       = "tenant.admin_api_key.created"
	AuditAdminKeyDeleted       = "tenant.admin_api_key.deleted"
)

// AuditLog is one recorded change: what, when, in which project and by
// whom.
type AuditLog struct {
	ID          string
	Type        string
	EffectiveAt int64
	// ProjectID is the project the change concerns; "" for none (admin
	// keys).
	ProjectID string
	// ProjectName is the project's name now, as AuditLogList reads it.
	ProjectName string
	Actor       Actor
	// Details are the type's payload, as OpenAI's log carries it under the
	// type's name, such as {"id": "proj_…", "data": {"name": "…"}}.
	Details json.RawMessage
}

// audit records a change made in the transaction q, as ctx's actor's.
func audit(ctx context.Context, q querier, typ, project string, details any) error {
	raw, err := json.Marshal(details)
	if err != nil {
		return err
	}
	var p any
	if project != "" {
		p = project
	}
	a := ActorFrom(ctx)
	_, err = q.exec(ctx, `INSERT INTO audit_logs (id, type, effective_at, project_id, actor_type, actor_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		ids.New(ids.AuditLog), typ, now(), p, a.Type, a.ID, string(raw))
	if err != nil {
		return fmt.Errorf("audit %s: %w", typ, err)
	}
	return nil
}

// AuditLogFilter selects audit logs. Zero fields select everything.
type AuditLogFilter struct {
	// EffectiveAfter, EffectiveFrom, EffectiveBefore and EffectiveUntil
	// bound effective_at: >, >=, < and <=.
	EffectiveAfter, EffectiveFrom, EffectiveBefore, EffectiveUntil *int64
	ProjectIDs                                                     []string
	Types                                                          []string
	// ActorIDs are admin key IDs or command line users.
	ActorIDs []string
	// After lists the logs older than that ID; Before, the logs newer than
	// it (nearest first, then returned newest first).
	After, Before string
	// Limit is the most logs returned. Default: 20.
	Limit int
}

// AuditLogList lists audit logs newest first, and whether more follow in
// the direction of the page (older for After or none, newer for Before).
func (s *Store) AuditLogList(ctx context.Context, f AuditLogFilter) ([]AuditLog, bool, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	in := func(col string, vs []string) {
		if len(vs) == 0 {
			return
		}
		ph := make([]string, len(vs))
		for i, v := range vs {
			ph[i] = arg(v)
		}
		where = append(where, col+" IN ("+strings.Join(ph, ", ")+")")
	}
	for _, b := range []struct {
		op string
		v  *int64
	}{{">", f.EffectiveAfter}, {">=", f.EffectiveFrom}, {"<", f.EffectiveBefore}, {"<=", f.EffectiveUntil}} {
		if b.v != nil {
			where = append(where, "a.effective_at "+b.op+" "+arg(*b.v))
		}
	}
	in("a.project_id", f.ProjectIDs)
	in("a.type", f.Types)
	in("a.actor_id", f.ActorIDs)
	order := "DESC"
	switch {
	case f.Before != "":
		where = append(where, "a.id > "+arg(f.Before))
		order = "ASC"
	case f.After != "":
		where = append(where, "a.id < "+arg(f.After))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	sql := `SELECT a.id, a.type, a.effective_at, COALESCE(a.project_id, ''), COALESCE(p.name, ''), a.actor_type, a.actor_id, a.details
		FROM audit_logs a LEFT JOIN projects p ON p.id = a.project_id`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY a.id " + order + " LIMIT " + arg(limit+1)
	out, err := collect(ctx, s.d.db(), func(r row) (AuditLog, error) {
		var l AuditLog
		var details string
		err := r.Scan(&l.ID, &l.Type, &l.EffectiveAt, &l.ProjectID, &l.ProjectName, &l.Actor.Type, &l.Actor.ID, &details)
		l.Details = json.RawMessage(details)
		return l, err
	}, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: list audit logs: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	if order == "ASC" {
		slices.Reverse(out)
	}
	return out, more, nil
}

// auditKeyCreated records the creation of k, in its project. Beside
// OpenAI's scopes, the payload names the key and its owner (kiln
// extensions).
func auditKeyCreated(ctx context.Context, q querier, k APIKey) error {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	data := map[string]any{"scopes": scopes, "name": k.Name, "owner_type": cmp.Or(k.OwnerType, KeyOwnerUser)}
	if k.ServiceAccountID != nil {
		data["service_account_id"] = *k.ServiceAccountID
	}
	return audit(ctx, q, AuditAPIKeyCreated, cmp.Or(k.ProjectID, DefaultProject), map[string]any{"id": k.ID, "data": data})
}
