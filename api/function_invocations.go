package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/store"
)

// FunctionInvocation is one function's handling of one event.
type FunctionInvocation struct {
	ID        string `json:"id"`
	Object    string `json:"object" enum:"function_invocation"`
	EventID   string `json:"event_id"`
	Function  string `json:"function"`
	Status    string `json:"status" enum:"pending,succeeded,dead" doc:"dead: retries are exhausted (the dead letter); retry it with POST .../retry."`
	Attempts  int64  `json:"attempts"`
	LastError string `json:"last_error"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

func invocationOf(i store.Invocation) FunctionInvocation {
	return FunctionInvocation{ID: i.ID, Object: "function_invocation", EventID: i.EventID, Function: i.Function, Status: i.Status,
		Attempts: i.Attempts, LastError: i.LastError, CreatedAt: i.CreatedAt, UpdatedAt: i.UpdatedAt}
}

// FunctionInvocationList is a page of invocations.
type FunctionInvocationList struct {
	Object  string               `json:"object" enum:"list"`
	Data    []FunctionInvocation `json:"data"`
	FirstID *string              `json:"first_id"`
	LastID  *string              `json:"last_id"`
	HasMore bool                 `json:"has_more"`
}

type invocationListInput struct {
	PageParams
	Status string `query:"status" enum:"pending,succeeded,dead" doc:"dead lists the dead letters."`
}

type invocationListOutput struct{ Body FunctionInvocationList }

type invocationIDInput struct {
	InvocationID string `path:"invocation_id"`
}

type invocationOutput struct{ Body FunctionInvocation }

func registerFunctionInvocations(api huma.API, d Deps) {
	tags := []string{"Events (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "listFunctionInvocations", Method: http.MethodGet, Path: "/v1/function_invocations",
		Summary: "List function invocations", Tags: tags,
		Description: "Each event runs every function subscribed to it; ?status=dead lists those that exhausted their retries.",
	}, d.listFunctionInvocations)

	huma.Register(api, huma.Operation{
		OperationID: "retryFunctionInvocation", Method: http.MethodPost, Path: "/v1/function_invocations/{invocation_id}/retry",
		Summary: "Retry a dead invocation", Tags: tags,
	}, d.retryFunctionInvocation)
}

func (d Deps) listFunctionInvocations(ctx context.Context, in *invocationListInput) (*invocationListOutput, error) {
	list, more, err := d.Store.InvocationList(ctx, auth.Project(ctx), in.Status, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := FunctionInvocationList{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, invocationOf, func(x store.Invocation) string { return x.ID })
	return &invocationListOutput{Body: out}, nil
}

func (d Deps) retryFunctionInvocation(ctx context.Context, in *invocationIDInput) (*invocationOutput, error) {
	cur, err := d.Store.InvocationGet(ctx, in.InvocationID)
	if err == nil && !auth.Sees(ctx, cur.ProjectID) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, notFoundOr(err, "function invocation", in.InvocationID)
	}
	inv, err := d.Store.InvocationRetry(ctx, in.InvocationID)
	if errors.Is(err, store.ErrConflict) {
		return nil, apierror.New(http.StatusConflict, "invocation_not_dead", "", "Only a dead invocation can be retried.")
	}
	if err != nil {
		return nil, notFoundOr(err, "function invocation", in.InvocationID)
	}
	return &invocationOutput{Body: invocationOf(inv)}, nil
}
