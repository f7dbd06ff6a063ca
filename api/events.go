package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/functions"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/store"
)

// Event is an event as webhooks carry it, OpenAI's shape.
type Event struct {
	ID        string          `json:"id"`
	Object    string          `json:"object" enum:"event"`
	Type      string          `json:"type"`
	CreatedAt int64           `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

func eventOf(ev store.Event) Event {
	e := functions.EventOf(ev)
	return Event{ID: e.ID, Object: e.Object, Type: e.Type, CreatedAt: e.CreatedAt, Data: e.Data}
}

// EventList is a page of events.
type EventList struct {
	Object  string  `json:"object" enum:"list"`
	Data    []Event `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

type eventListInput struct {
	PageParams
	Type string `query:"type" doc:"Only events of this type."`
}

type eventListOutput struct{ Body EventList }

type eventIDInput struct {
	EventID string `path:"event_id"`
}

type eventOutput struct{ Body Event }

func registerEvents(api huma.API, d Deps) {
	tags := []string{"Events (kiln extension)"}
	huma.Register(api, huma.Operation{
		OperationID: "listEvents", Method: http.MethodGet, Path: "/v1/events",
		Summary: "List events", Description: "Newest first.", Tags: tags,
	}, d.listEvents)

	huma.Register(api, huma.Operation{
		OperationID: "retrieveEvent", Method: http.MethodGet, Path: "/v1/events/{event_id}",
		Summary: "Retrieve an event", Tags: tags,
	}, d.retrieveEvent)
}

func (d Deps) listEvents(ctx context.Context, in *eventListInput) (*eventListOutput, error) {
	list, more, err := d.Store.EventList(ctx, auth.Project(ctx), in.Type, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := EventList{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(list, eventOf, func(e store.Event) string { return e.ID })
	return &eventListOutput{Body: out}, nil
}

func (d Deps) retrieveEvent(ctx context.Context, in *eventIDInput) (*eventOutput, error) {
	ev, err := d.Store.EventGet(ctx, in.EventID)
	if err == nil && !auth.Sees(ctx, ev.ProjectID) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, notFoundOr(err, "event", in.EventID)
	}
	return &eventOutput{Body: eventOf(ev)}, nil
}
