package openaispec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/openaispec"
)

// The documents below follow the example responses in OpenAI's openapi.yaml,
// with their trailing commas removed and, for files, the required status
// that the examples leave out but the API sends.

const batchValidating = `{
  "id": "batch_abc123",
  "object": "batch",
  "endpoint": "/v1/chat/completions",
  "errors": null,
  "input_file_id": "file-abc123",
  "completion_window": "24h",
  "status": "validating",
  "output_file_id": null,
  "error_file_id": null,
  "created_at": 1711471533,
  "in_progress_at": null,
  "expires_at": null,
  "finalizing_at": null,
  "completed_at": null,
  "failed_at": null,
  "expired_at": null,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {"total": 0, "completed": 0, "failed": 0},
  "metadata": {"customer_id": "user_123456789", "batch_description": "Nightly eval job"}
}`

const batchCompleted = `{
  "id": "batch_abc123",
  "object": "batch",
  "endpoint": "/v1/completions",
  "model": "gpt-5-2025-08-07",
  "errors": null,
  "input_file_id": "file-abc123",
  "completion_window": "24h",
  "status": "completed",
  "output_file_id": "file-cvaTdG",
  "error_file_id": "file-HOWS94",
  "created_at": 1711471533,
  "in_progress_at": 1711471538,
  "expires_at": 1711557933,
  "finalizing_at": 1711493133,
  "completed_at": 1711493163,
  "failed_at": null,
  "expired_at": null,
  "cancelling_at": null,
  "cancelled_at": null,
  "request_counts": {"total": 100, "completed": 95, "failed": 5},
  "usage": {
    "input_tokens": 1500,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 300},
    "total_tokens": 2000
  },
  "metadata": {"customer_id": "user_123456789", "batch_description": "Nightly eval job"}
}`

const batchFailed = `{
  "id": "batch_abc123",
  "object": "batch",
  "endpoint": "/v1/chat/completions",
  "errors": {
    "object": "list",
    "data": [
      {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "param": null, "line": 3},
      {"code": "missing_custom_id", "message": "custom_id is required.", "param": "custom_id", "line": null}
    ]
  },
  "input_file_id": "file-abc123",
  "completion_window": "24h",
  "status": "failed",
  "output_file_id": null,
  "error_file_id": null,
  "created_at": 1711471533,
  "failed_at": 1711471540,
  "request_counts": {"total": 0, "completed": 0, "failed": 0},
  "metadata": null
}`

const fileBatch = `{
  "id": "file-abc123",
  "object": "file",
  "bytes": 120000,
  "created_at": 1677610602,
  "expires_at": 1680202602,
  "filename": "requests.jsonl",
  "purpose": "batch",
  "status": "processed",
  "status_details": null
}`

const fileNoExpiry = `{
  "id": "file-abc456",
  "object": "file",
  "bytes": 140,
  "created_at": 1613779121,
  "expires_at": null,
  "filename": "puppy.jsonl",
  "purpose": "batch_output",
  "status": "processed"
}`

const errorResponse = `{
  "error": {
    "message": "No such File object: file-abc123",
    "type": "invalid_request_error",
    "param": null,
    "code": null
  }
}`

func TestSchemas(t *testing.T) {
	t.Parallel()

	t.Run("ListsWhatKilnServes", func(t *testing.T) {
		t.Parallel()
		names := openaispec.Schemas()
		for _, want := range []string{
			"Batch", "BatchRequestInput", "BatchRequestOutput", "CompleteUploadRequest",
			"CreateBatchRequest", "CreateUploadRequest", "DeleteFileResponse", "Error",
			"ErrorResponse", "ListBatchesResponse", "ListFilesResponse", "ListModelsResponse",
			"Model", "OpenAIFile", "Upload", "UploadPart", "WebhookBatchCancelled",
			"WebhookBatchCompleted", "WebhookBatchExpired", "WebhookBatchFailed",
			// The Administration API.
			"ListAuditLogsResponse", "Project", "ProjectApiKey", "ProjectApiKeyDeleteResponse", "ProjectApiKeyListResponse",
			"ProjectListResponse", "ProjectRateLimit", "ProjectRateLimitListResponse", "ProjectServiceAccount",
			"ProjectServiceAccountCreateResponse", "ProjectServiceAccountDeleteResponse", "ProjectServiceAccountListResponse",
			"UsageResponse",
		} {
			require.Contains(t, names, want)
		}
		require.IsIncreasing(t, names)
	})

	t.Run("EveryOneCompiles", func(t *testing.T) {
		t.Parallel()
		for _, name := range openaispec.Schemas() {
			// Whether {} passes depends on the schema; an error other than a
			// validation error means the schema did not compile.
			err := openaispec.Validate(name, []byte(`{}`))
			if err != nil {
				_, ok := errors.AsType[*jsonschema.ValidationError](err)
				require.True(t, ok, "schema %s: %v", name, err)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()

	valid := []struct {
		name   string
		schema string
		doc    string
	}{
		{"BatchValidating", "Batch", batchValidating},
		{"BatchCompleted", "Batch", batchCompleted},
		{"BatchFailedWithErrors", "Batch", batchFailed},
		{"BatchMinimal", "Batch", `{"id": "batch_1", "object": "batch", "endpoint": "/v1/embeddings",
			"input_file_id": "file-1", "completion_window": "24h", "status": "in_progress", "created_at": 1}`},
		{"ListBatches", "ListBatchesResponse", `{"object": "list", "data": [` + batchCompleted + `,` + batchValidating + `],
			"first_id": "batch_abc123", "last_id": "batch_abc123", "has_more": true}`},
		{"ListBatchesEmpty", "ListBatchesResponse", `{"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}`},
		{"CreateBatchRequest", "CreateBatchRequest", `{"input_file_id": "file-abc123", "endpoint": "/v1/chat/completions",
			"completion_window": "24h", "metadata": {"k": "v"}, "output_expires_after": {"anchor": "created_at", "seconds": 3600}}`},
		{"File", "OpenAIFile", fileBatch},
		{"FileNullExpiry", "OpenAIFile", fileNoExpiry},
		{"ListFiles", "ListFilesResponse", `{"object": "list", "data": [` + fileBatch + `,` + fileNoExpiry + `],
			"first_id": "file-abc123", "last_id": "file-abc456", "has_more": false}`},
		{"DeleteFile", "DeleteFileResponse", `{"id": "file-abc123", "object": "file", "deleted": true}`},
		{"UploadPending", "Upload", `{"id": "upload_abc123", "object": "upload", "bytes": 2147483648,
			"created_at": 1719184911, "filename": "training_examples.jsonl", "purpose": "batch",
			"status": "pending", "expires_at": 1719127296, "file": null}`},
		{"UploadCompleted", "Upload", `{"id": "upload_abc123", "object": "upload", "bytes": 120000,
			"created_at": 1719184911, "filename": "requests.jsonl", "purpose": "batch",
			"status": "completed", "expires_at": 1719127296, "file": ` + fileBatch + `}`},
		{"UploadPart", "UploadPart", `{"id": "part_def456", "object": "upload.part", "created_at": 1719185911, "upload_id": "upload_abc123"}`},
		{"CreateUploadRequest", "CreateUploadRequest", `{"purpose": "batch", "filename": "requests.jsonl",
			"bytes": 2147483648, "mime_type": "application/jsonl"}`},
		{"CompleteUploadRequest", "CompleteUploadRequest", `{"part_ids": ["part_def456", "part_ghi789"], "md5": null}`},
		{"ErrorResponse", "ErrorResponse", errorResponse},
		{"ErrorResponseWithParamAndCode", "ErrorResponse", `{"error": {"message": "Invalid endpoint.",
			"type": "invalid_request_error", "param": "endpoint", "code": "invalid_value"}}`},
		{"Model", "Model", `{"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "system"}`},
		{"ListModels", "ListModelsResponse", `{"object": "list", "data": [
			{"id": "model-id-0", "object": "model", "created": 1686935002, "owned_by": "organization-owner", "shutdown_date": null},
			{"id": "model-id-1", "object": "model", "created": 1686935002, "owned_by": "organization-owner", "shutdown_date": "2026-01-01"}]}`},
		{"WebhookBatchCompleted", "WebhookBatchCompleted", `{"id": "evt_abc123", "object": "event",
			"type": "batch.completed", "created_at": 1719168000, "data": {"id": "batch_abc123"}}`},
		{"WebhookBatchFailed", "WebhookBatchFailed", `{"id": "evt_abc123", "type": "batch.failed", "created_at": 1719168000, "data": {"id": "batch_abc123"}}`},
		{"WebhookBatchExpired", "WebhookBatchExpired", `{"id": "evt_abc123", "type": "batch.expired", "created_at": 1719168000, "data": {"id": "batch_abc123"}}`},
		{"WebhookBatchCancelled", "WebhookBatchCancelled", `{"id": "evt_abc123", "type": "batch.cancelled", "created_at": 1719168000, "data": {"id": "batch_abc123"}}`},
		{"BatchRequestInput", "BatchRequestInput", `{"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions",
			"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}}`},
		{"BatchRequestOutputSuccess", "BatchRequestOutput", `{"id": "batch_req_wnaDys", "custom_id": "request-2",
			"response": {"status_code": 200, "request_id": "req_c187b3", "body": {"id": "chatcmpl-9758Iw", "object": "chat.completion"}},
			"error": null}`},
		{"BatchRequestOutputHTTPError", "BatchRequestOutput", `{"id": "batch_req_1", "custom_id": "request-3",
			"response": {"status_code": 400, "request_id": "req_1", "body": {"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}}},
			"error": null}`},
		{"BatchRequestOutputError", "BatchRequestOutput", `{"id": "batch_req_2", "custom_id": "request-4", "response": null,
			"error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}`},
	}
	for _, tt := range valid {
		t.Run("Valid"+tt.name, func(t *testing.T) {
			t.Parallel()
			openaispec.MustValidate(t, tt.schema, []byte(tt.doc))
		})
	}

	invalid := []struct {
		name   string
		schema string
		doc    string
		want   string // in the error
	}{
		{"BatchBogusStatus", "Batch", replace(batchValidating, `"status": "validating"`, `"status": "bogus"`), "/status"},
		{"BatchNoID", "Batch", replace(batchValidating, `"id": "batch_abc123",`, ``), "missing property 'id'"},
		{"BatchNullCreatedAt", "Batch", replace(batchValidating, `"created_at": 1711471533`, `"created_at": null`), "/created_at"},
		{"BatchStringTimestamp", "Batch", replace(batchCompleted, `"completed_at": 1711493163`, `"completed_at": "1711493163"`), "/completed_at"},
		{"BatchWrongObject", "Batch", replace(batchValidating, `"object": "batch"`, `"object": "batches"`), "/object"},
		{"BatchRequestCountsMissing", "Batch", replace(batchValidating, `"completed": 0, `, ``), "/request_counts"},
		{"BatchErrorsLine", "Batch", replace(batchFailed, `"line": 3`, `"line": "3"`), "/errors/data/0/line"},
		{"BatchNotJSON", "Batch", `{"id": "batch_abc123",`, "not JSON"},
		{"FileNoID", "OpenAIFile", replace(fileBatch, `"id": "file-abc123",`, ``), "missing property 'id'"},
		{"FileNoStatus", "OpenAIFile", replace(fileBatch, `"status": "processed",`, ``), "missing property 'status'"},
		{"FileAsString", "OpenAIFile", `"file-abc123"`, "got string, want object"},
		{"FileBogusPurpose", "OpenAIFile", replace(fileBatch, `"purpose": "batch"`, `"purpose": "bogus"`), "/purpose"},
		{"ListFilesItemNoID", "ListFilesResponse", `{"object": "list", "data": [` + replace(fileBatch, `"id": "file-abc123",`, ``) + `],
			"first_id": "file-abc123", "last_id": "file-abc123", "has_more": false}`, "/data/0"},
		{"ListBatchesNoHasMore", "ListBatchesResponse", `{"object": "list", "data": []}`, "missing property 'has_more'"},
		{"UploadFileNumber", "Upload", `{"id": "upload_abc123", "object": "upload", "bytes": 1, "created_at": 1,
			"filename": "f.jsonl", "purpose": "batch", "status": "completed", "expires_at": 2, "file": 7}`, "/file"},
		{"ErrorNoMessage", "ErrorResponse", replace(errorResponse, `"message": "No such File object: file-abc123",`, ``), "missing property 'message'"},
		{"ErrorNoParam", "ErrorResponse", replace(errorResponse, `"param": null,`, ``), "missing property 'param'"},
		{"ErrorNullType", "ErrorResponse", replace(errorResponse, `"type": "invalid_request_error"`, `"type": null`), "/error/type"},
		{"ErrorBare", "ErrorResponse", `{"message": "not found"}`, "missing property 'error'"},
		{"BatchRequestOutputStatusString", "BatchRequestOutput", `{"id": "batch_req_1", "custom_id": "r",
			"response": {"status_code": "200", "request_id": "req_1", "body": {}}, "error": null}`, "/response/status_code"},
		{"BatchRequestOutputBodyString", "BatchRequestOutput", `{"id": "batch_req_1", "custom_id": "r",
			"response": {"status_code": 200, "request_id": "req_1", "body": "{}"}, "error": null}`, "/response/body"},
		{"BatchRequestOutputErrorString", "BatchRequestOutput", `{"id": "batch_req_1", "custom_id": "r", "response": null, "error": "boom"}`, "/error"},
		{"BatchRequestOutputCustomIDNumber", "BatchRequestOutput", `{"id": "batch_req_1", "custom_id": 1, "response": null, "error": null}`, "/custom_id"},
		{"BatchRequestInputMethod", "BatchRequestInput", `{"custom_id": "r", "method": "GET", "url": "/v1/chat/completions", "body": {}}`, "/method"},
		{"CreateBatchWindow", "CreateBatchRequest", `{"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "48h"}`, "/completion_window"},
		{"CompleteUploadExtra", "CompleteUploadRequest", `{"part_ids": [], "bogus": 1}`, "'bogus' not allowed"},
		{"WebhookWrongType", "WebhookBatchFailed", `{"id": "evt_1", "type": "batch.completed", "created_at": 1, "data": {"id": "batch_1"}}`, "/type"},
		{"WebhookNoData", "WebhookBatchCompleted", `{"id": "evt_1", "type": "batch.completed", "created_at": 1}`, "missing property 'data'"},
		{"ModelNoOwner", "Model", `{"id": "m", "object": "model", "created": 1}`, "missing property 'owned_by'"},
	}
	for _, tt := range invalid {
		t.Run("Invalid"+tt.name, func(t *testing.T) {
			t.Parallel()
			err := openaispec.Validate(tt.schema, []byte(tt.doc))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}

	t.Run("UnknownSchema", func(t *testing.T) {
		t.Parallel()
		err := openaispec.Validate("Batches", []byte(batchValidating))
		require.ErrorIs(t, err, openaispec.ErrUnknownSchema)
	})
}

// fakeTB records the failure MustValidate reports instead of ending the test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
}

func TestMustValidate(t *testing.T) {
	t.Parallel()

	t.Run("Passes", func(t *testing.T) {
		t.Parallel()
		tb := &fakeTB{TB: t}
		openaispec.MustValidate(tb, "Batch", []byte(batchCompleted))
		require.False(t, tb.failed, tb.msg)
	})

	t.Run("FailsWithErrorAndDocument", func(t *testing.T) {
		t.Parallel()
		tb := &fakeTB{TB: t}
		doc := replace(batchValidating, `"status": "validating"`, `"status": "bogus"`)
		openaispec.MustValidate(tb, "Batch", []byte(doc))
		require.True(t, tb.failed)
		require.Contains(t, tb.msg, "/status")
		require.Contains(t, tb.msg, "#/$defs/Batch/properties/status/enum") // the schema keyword
		require.Contains(t, tb.msg, doc)
	})
}

// replace returns doc with old replaced by new, failing loudly at init if a
// test document drifts so that old is no longer in it.
func replace(doc, old, new string) string {
	out := strings.Replace(doc, old, new, 1)
	if out == doc {
		panic(fmt.Sprintf("replace: %q not in document", old))
	}
	return out
}
