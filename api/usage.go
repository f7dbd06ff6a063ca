package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/kilnhq/kiln/internal/apierror"
	"github.com/kilnhq/kiln/internal/store"
)

// UsageResponse is OpenAI's page of usage buckets.
type UsageResponse struct {
	Object   string            `json:"object" enum:"page"`
	Data     []UsageTimeBucket `json:"data"`
	HasMore  bool              `json:"has_more"`
	NextPage *string           `json:"next_page"`
}

// UsageTimeBucket is one bucket of time and its usage.
type UsageTimeBucket struct {
	Object    string                   `json:"object" enum:"bucket"`
	StartTime int64                    `json:"start_time"`
	EndTime   int64                    `json:"end_time"`
	Results   []UsageCompletionsResult `json:"results"`
}

// UsageCompletionsResult is OpenAI's completions usage of one group in one
// bucket. kiln runs batches only, and does not cache prompts or take audio.
type UsageCompletionsResult struct {
	Object            string  `json:"object" enum:"organization.usage.completions.result"`
	InputTokens       int64   `json:"input_tokens"`
	OutputTokens      int64   `json:"output_tokens"`
	InputCachedTokens int64   `json:"input_cached_tokens" doc:"Always 0."`
	InputAudioTokens  int64   `json:"input_audio_tokens" doc:"Always 0."`
	OutputAudioTokens int64   `json:"output_audio_tokens" doc:"Always 0."`
	NumModelRequests  int64   `json:"num_model_requests" doc:"Requests the agents ran, answered or failed."`
	ProjectID         *string `json:"project_id" doc:"With group_by=project_id."`
	UserID            *string `json:"user_id" doc:"Always null: kiln has no users."`
	APIKeyID          *string `json:"api_key_id" doc:"Always null: kiln records usage per project, not per key."`
	Model             *string `json:"model" doc:"With group_by=model."`
	Batch             *bool   `json:"batch" doc:"With group_by=batch: always true."`
	ServiceTier       *string `json:"service_tier" doc:"Always null."`
}

// Bucket widths, and their default and largest number of buckets per
// page, as OpenAI's.
var usageWidths = map[string]struct {
	seconds, limit, most int64
}{
	"1m": {60, 60, 1440},
	"1h": {3600, 24, 168},
	"1d": {86400, 7, 31},
}

type usageCompletionsInput struct {
	StartTime   int64                `query:"start_time" required:"true" doc:"Start (Unix seconds) of the range, inclusive; the first bucket starts here (a midnight UTC gives calendar days)."`
	EndTime     optionalParam[int64] `query:"end_time" doc:"End (Unix seconds) of the range, exclusive. Default: now (this second included)."`
	BucketWidth string               `query:"bucket_width" enum:"1m,1h,1d" default:"1d" doc:"Width of each bucket."`
	ProjectIDs  []string             `query:"project_ids,explode" doc:"Only these projects' usage."`
	ProjectIDsB []string             `query:"project_ids[],explode" doc:"project_ids, as the OpenAI SDKs send it."`
	Models      []string             `query:"models,explode" doc:"Only these models' usage."`
	ModelsB     []string             `query:"models[],explode" doc:"models, as the OpenAI SDKs send it."`
	GroupBy     []string             `query:"group_by,explode" doc:"Group by project_id, model and/or batch."`
	GroupByB    []string             `query:"group_by[],explode" doc:"group_by, as the OpenAI SDKs send it."`
	Batch       optionalParam[bool]  `query:"batch" doc:"true: batch jobs only, which is everything kiln runs; false: nothing."`
	APIKeyIDs   []string             `query:"api_key_ids[],explode" doc:"Not supported: kiln records usage per project and model."`
	UserIDs     []string             `query:"user_ids[],explode" doc:"Not supported: kiln has no users."`
	Limit       int64                `query:"limit" minimum:"1" maximum:"1440" doc:"Buckets per page: 1d: default 7, at most 31; 1h: 24, 168; 1m: 60, 1440."`
	Page        string               `query:"page" doc:"The next_page of the previous answer."`
}

type usageOutput struct{ Body UsageResponse }

func registerUsage(api huma.API, d Deps) {
	huma.Register(api, huma.Operation{
		OperationID: "usageCompletions", Method: http.MethodGet, Path: "/v1/organization/usage/completions",
		Summary: "Completions usage", Tags: []string{"Usage"}, Security: adminSecurity,
		Description: "Input and output tokens and requests of the batches' requests, per time bucket, from the results the agents committed " +
			"(a request counts when its result was committed); grouped by project_id, model and batch when group_by asks.",
	}, d.usageCompletions)
}

func (d Deps) usageCompletions(ctx context.Context, in *usageCompletionsInput) (*usageOutput, error) {
	width := usageWidths[in.BucketWidth]
	limit := in.Limit
	switch {
	case limit == 0:
		limit = width.limit
	case limit > width.most:
		return nil, apierror.Invalid("limit", "At most "+strconv.FormatInt(width.most, 10)+" buckets of "+in.BucketWidth+" per page.")
	}
	if len(in.APIKeyIDs) > 0 || len(in.UserIDs) > 0 {
		param := "api_key_ids"
		if len(in.APIKeyIDs) == 0 {
			param = "user_ids"
		}
		return nil, apierror.Invalid(param, "kiln records usage per project and model, not per key or user: filter by project_ids instead.")
	}
	group := map[string]bool{}
	for _, g := range splitList(in.GroupBy, in.GroupByB) {
		switch g {
		case "project_id", "model", "batch":
			group[g] = true
		default:
			return nil, apierror.Invalid("group_by", "kiln groups usage by project_id, model and batch, not by '"+g+"'.")
		}
	}
	end := time.Now().Unix() + 1 // this second's usage too
	if in.EndTime.IsSet {
		end = in.EndTime.Value
	}
	if end <= in.StartTime {
		return nil, apierror.Invalid("end_time", "end_time must be after start_time.")
	}
	buckets := (end - in.StartTime + width.seconds - 1) / width.seconds
	first := int64(0)
	if in.Page != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(in.Page, "page_"), 10, 64)
		if err != nil || !strings.HasPrefix(in.Page, "page_") || n < 0 || n >= buckets {
			return nil, apierror.Invalid("page", "Not a page of this range: pass the next_page of the previous answer.")
		}
		first = n
	}
	last := min(buckets, first+limit) // exclusive
	out := UsageResponse{Object: "page", Data: []UsageTimeBucket{}}
	for b := first; b < last; b++ {
		start := in.StartTime + b*width.seconds
		out.Data = append(out.Data, UsageTimeBucket{Object: "bucket", StartTime: start, EndTime: start + width.seconds,
			Results: []UsageCompletionsResult{}})
	}
	if last < buckets {
		next := "page_" + strconv.FormatInt(last, 10)
		out.HasMore, out.NextPage = true, &next
	}
	if in.Batch.IsSet && !in.Batch.Value {
		return &usageOutput{Body: out}, nil // kiln runs batches only
	}
	rows, err := d.Store.UsageList(ctx, store.UsageFilter{
		Start: in.StartTime, Width: width.seconds,
		End:        min(end, in.StartTime+last*width.seconds),
		ProjectIDs: splitList(in.ProjectIDs, in.ProjectIDsB),
		Models:     splitList(in.Models, in.ModelsB),
	})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Bucket < first || r.Bucket >= last {
			continue
		}
		bucket := &out.Data[r.Bucket-first]
		res := UsageCompletionsResult{Object: "organization.usage.completions.result"}
		if group["project_id"] {
			res.ProjectID = &r.ProjectID
		}
		if group["model"] {
			res.Model = &r.Model
		}
		if group["batch"] {
			yes := true
			res.Batch = &yes
		}
		i := slices.IndexFunc(bucket.Results, func(x UsageCompletionsResult) bool {
			return same(x.ProjectID, res.ProjectID) && same(x.Model, res.Model)
		})
		if i < 0 {
			bucket.Results = append(bucket.Results, res)
			i = len(bucket.Results) - 1
		}
		bucket.Results[i].InputTokens += r.InputTokens
		bucket.Results[i].OutputTokens += r.OutputTokens
		bucket.Results[i].NumModelRequests += r.Requests
	}
	return &usageOutput{Body: out}, nil
}

// splitList joins the values of a list parameter sent in its two spellings
// (name and name[]), each value also split at commas.
func splitList(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, v := range l {
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func same(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
