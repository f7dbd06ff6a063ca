package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// Rate limits, as OpenAI's per project and model. Their IDs follow from
// the model, as OpenAI's do (rl_<model>), so that a limit has its ID
// before it was ever set: the list shows one per model that a live agent
// serves, one per model that has a limit, and rl_* (model "*") for every
// model without its own; POST to rl_<any model> sets it, making the row on
// first update. Zero is no limit.

// everyModel is the model of the limits that apply to every model without
// its own (the store's model "").
const everyModel = "*"

// rateLimitID is the ID of a project's limits on model.
func rateLimitID(model string) string {
	if model == "" {
		model = everyModel
	}
	return "rl_" + model
}

// ProjectRateLimit is OpenAI's project rate limit, with kiln's extensions.
type ProjectRateLimit struct {
	Object                  string `json:"object" enum:"project.rate_limit"`
	ID                      string `json:"id" doc:"rl_ and the model; rl_* for every model without its own limits."`
	Model                   string `json:"model" doc:"The model; * for every model without its own limits."`
	MaxRequestsPer1Minute   int64  `json:"max_requests_per_1_minute" doc:"Paces the agents' dispatch of the project's requests to the model; 0: no limit."`
	MaxTokensPer1Minute     int64  `json:"max_tokens_per_1_minute" doc:"Always 0: kiln does not limit tokens per minute."`
	Batch1DayMaxInputTokens int64  `json:"batch_1_day_max_input_tokens" doc:"The most input tokens of the project's batches of the model that have not ended (enqueued tokens); a batch past it fails with token_limit_exceeded. 0: no limit."`
	MaxPendingUploads       *int64 `json:"max_pending_uploads,omitempty" doc:"kiln extension, on rl_* only: the most uploads in progress the project may have; 0: only KILN_MAX_PENDING_UPLOADS."`
	MaxPendingUploadBytes   *int64 `json:"max_pending_upload_bytes,omitempty" doc:"kiln extension, on rl_* only: the most bytes the project's uploads in progress may declare; 0: only KILN_MAX_PENDING_UPLOAD_BYTES."`
}

func rateLimitOf(l store.RateLimit) ProjectRateLimit {
	out := ProjectRateLimit{Object: "project.rate_limit", ID: cmp.Or(l.ID, rateLimitID(l.Model)), Model: l.Model,
		MaxRequestsPer1Minute: l.MaxRequestsPer1Minute, Batch1DayMaxInputTokens: l.Batch1DayMaxInputTokens}
	if l.Model == "" {
		out.Model = everyModel
		out.MaxPendingUploads, out.MaxPendingUploadBytes = &l.MaxPendingUploads, &l.MaxPendingUploadBytes
	}
	return out
}

// ProjectRateLimitListResponse is OpenAI's list of a project's limits.
type ProjectRateLimitListResponse struct {
	Object  string             `json:"object" enum:"list"`
	Data    []ProjectRateLimit `json:"data"`
	FirstID *string            `json:"first_id"`
	LastID  *string            `json:"last_id"`
	HasMore bool               `json:"has_more"`
}

type rateLimitListInput struct {
	ProjectID string `path:"project_id" doc:"The project's ID."`
	After     string `query:"after" doc:"A rate limit ID: list what comes after it."`
	Before    string `query:"before" doc:"A rate limit ID: list what comes before it."`
	Limit     int    `query:"limit" minimum:"1" maximum:"100" default:"100" doc:"How many to return."`
}

type rateLimitUpdateInput struct {
	ProjectID   string `path:"project_id" doc:"The project's ID."`
	RateLimitID string `path:"rate_limit_id" doc:"rl_ and the model (rl_* for every model without its own limits), as the list shows them; any model's may be set."`
	Body        struct {
		_                           struct{} `additionalProperties:"true"`
		MaxRequestsPer1Minute       *int64   `json:"max_requests_per_1_minute,omitempty" minimum:"0" doc:"0: no limit."`
		Batch1DayMaxInputTokens     *int64   `json:"batch_1_day_max_input_tokens,omitempty" minimum:"0" doc:"0: no limit."`
		MaxPendingUploads           *int64   `json:"max_pending_uploads,omitempty" minimum:"0" doc:"kiln extension, on rl_* only. 0: no limit of the project's own."`
		MaxPendingUploadBytes       *int64   `json:"max_pending_upload_bytes,omitempty" minimum:"0" doc:"kiln extension, on rl_* only. 0: no limit of the project's own."`
		MaxTokensPer1Minute         *int64   `json:"max_tokens_per_1_minute,omitempty" doc:"Not limited by kiln: only 0 is accepted."`
		MaxImagesPer1Minute         *int64   `json:"max_images_per_1_minute,omitempty" doc:"Not limited by kiln: only 0 is accepted."`
		MaxAudioMegabytesPer1Minute *int64   `json:"max_audio_megabytes_per_1_minute,omitempty" doc:"Not limited by kiln: only 0 is accepted."`
		MaxRequestsPer1Day          *int64   `json:"max_requests_per_1_day,omitempty" doc:"Not limited by kiln: only 0 is accepted."`
	}
}

type rateLimitOutput struct{ Body ProjectRateLimit }

type rateLimitListOutput struct {
	Body ProjectRateLimitListResponse
}

func registerRateLimits(api huma.API, d Deps) {
	tags := []string{"Projects"}
	huma.Register(api, huma.Operation{
		OperationID: "listProjectRateLimits", Method: http.MethodGet, Path: "/v1/organization/projects/{project_id}/rate_limits",
		Summary: "List a project's rate limits", Tags: tags, Security: adminSecurity,
		Description: "One per model: rl_* for every model without its own limits, then each model a live agent serves or that has limits, by name. " +
			"A model's limits apply when set, else rl_*'s. 0 is no limit.",
	}, d.listRateLimits)
	huma.Register(api, huma.Operation{
		OperationID: "updateProjectRateLimits", Method: http.MethodPost, Path: "/v1/organization/projects/{project_id}/rate_limits/{rate_limit_id}",
		Summary: "Update a project rate limit", Tags: tags, Security: adminSecurity,
		Description: "Sets the fields given; the others keep their values. rl_<model> may name any model, listed or not: its limits are made on first update.",
	}, d.updateRateLimit)
}

func (d Deps) listRateLimits(ctx context.Context, in *rateLimitListInput) (*rateLimitListOutput, error) {
	if _, err := d.project(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	rows, err := d.Store.RateLimitList(ctx, in.ProjectID)
	if err != nil {
		return nil, err
	}
	byModel := map[string]store.RateLimit{"": {ProjectID: in.ProjectID}}
	for _, l := range rows {
		byModel[l.Model] = l
	}
	catalogue, err := d.catalogue(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range catalogue {
		if _, ok := byModel[m.ID]; !ok {
			byModel[m.ID] = store.RateLimit{ProjectID: in.ProjectID, Model: m.ID}
		}
	}
	models := make([]string, 0, len(byModel))
	for m := range byModel {
		models = append(models, m)
	}
	slices.Sort(models) // "" (every model) first
	all := make([]ProjectRateLimit, len(models))
	for i, m := range models {
		all[i] = rateLimitOf(byModel[m])
	}
	from, to := 0, len(all)
	if in.After != "" {
		from = slices.IndexFunc(all, func(l ProjectRateLimit) bool { return l.ID == in.After }) + 1
	}
	if in.Before != "" {
		if i := slices.IndexFunc(all, func(l ProjectRateLimit) bool { return l.ID == in.Before }); i >= 0 {
			to = i
		}
		from = max(from, to-in.Limit)
	}
	from = min(from, to)
	more := to-from > in.Limit || (in.Before != "" && from > 0)
	page := all[from:min(to, from+in.Limit)]
	out := ProjectRateLimitListResponse{Object: "list", HasMore: more}
	out.Data, out.FirstID, out.LastID = pageOf(page, func(l ProjectRateLimit) ProjectRateLimit { return l }, func(l ProjectRateLimit) string { return l.ID })
	return &rateLimitListOutput{Body: out}, nil
}

func (d Deps) updateRateLimit(ctx context.Context, in *rateLimitUpdateInput) (*rateLimitOutput, error) {
	if _, err := d.liveProject(ctx, in.ProjectID); err != nil {
		return nil, err
	}
	l, err := d.Store.RateLimitGet(ctx, in.ProjectID, in.RateLimitID)
	if errors.Is(err, store.ErrNotFound) {
		model, ok := strings.CutPrefix(in.RateLimitID, "rl_")
		if !ok || model == "" {
			return nil, apierror.NotFoundParam("rate_limit_id", "rate limit", in.RateLimitID)
		}
		if model == everyModel {
			model = ""
		}
		l, err = store.RateLimit{ID: in.RateLimitID, ProjectID: in.ProjectID, Model: model}, nil
	}
	if err != nil {
		return nil, err
	}
	body := in.Body
	for _, f := range []struct {
		param string
		v     *int64
	}{
		{"max_tokens_per_1_minute", body.MaxTokensPer1Minute}, {"max_images_per_1_minute", body.MaxImagesPer1Minute},
		{"max_audio_megabytes_per_1_minute", body.MaxAudioMegabytesPer1Minute}, {"max_requests_per_1_day", body.MaxRequestsPer1Day},
	} {
		if f.v != nil && *f.v != 0 {
			return nil, apierror.Invalid(f.param, "kiln does not limit "+f.param+": only 0 (no limit) is accepted. It limits max_requests_per_1_minute and batch_1_day_max_input_tokens.")
		}
	}
	if l.Model != "" && (body.MaxPendingUploads != nil || body.MaxPendingUploadBytes != nil) {
		param := "max_pending_uploads"
		if body.MaxPendingUploads == nil {
			param = "max_pending_upload_bytes"
		}
		return nil, apierror.Invalid(param, "Uploads are not of one model: set "+param+" on rl_*, the project's limits for every model.")
	}
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&l.MaxRequestsPer1Minute, body.MaxRequestsPer1Minute)
	set(&l.Batch1DayMaxInputTokens, body.Batch1DayMaxInputTokens)
	set(&l.MaxPendingUploads, body.MaxPendingUploads)
	set(&l.MaxPendingUploadBytes, body.MaxPendingUploadBytes)
	l, err = d.Store.RateLimitPut(ctx, l)
	if err != nil {
		return nil, err
	}
	return &rateLimitOutput{Body: rateLimitOf(l)}, nil
}
