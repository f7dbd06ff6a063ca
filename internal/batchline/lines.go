package batchline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/kilnhq/kiln/internal/dbtext"
)

// Input is one request line of a batch input file (OpenAI's BatchRequestInput).
type Input struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// Response is the response part of an output line.
type Response struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
	// LatencyMS is a kiln extension: how long the model took to answer
	// (the last attempt), in milliseconds.
	LatencyMS int64 `json:"latency_ms,omitempty"`
}

// LineError is the error part of an error line, for failures that are not
// HTTP answers.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Output is one line of an output or error file (OpenAI's BatchRequestOutput).
type Output struct {
	ID       string     `json:"id"`
	CustomID string     `json:"custom_id"`
	Response *Response  `json:"response"`
	Error    *LineError `json:"error"`
}

// Codes of error lines for requests that never got an HTTP answer.
const (
	CodeBatchCancelled = "batch_cancelled"
	CodeBatchExpired   = "batch_expired"
	CodeBatchFailed    = "batch_failed"
	CodeRequestFailed  = "request_failed"
	CodeRequestTimeout = "request_timeout"
)

// Validation problem codes, as Batch.errors.data[].code.
const (
	CodeInvalidJSON = "invalid_json_line"
	CodeInvalidUTF8 = "invalid_utf8"
	// CodeInvalidText is a custom_id or model that kiln cannot store: it
	// holds a NUL character.
	CodeInvalidText       = "invalid_text"
	CodeLineTooLong       = "line_too_long"
	CodeMissingCustomID   = "missing_custom_id"
	CodeDuplicateCustomID = "duplicate_custom_id"
	CodeInvalidMethod     = "invalid_method"
	CodeMismatchedURL     = "mismatched_url"
	CodeMissingBody       = "missing_body"
	CodeMissingModel      = "missing_model"
	CodeMissingInput      = "missing_input"
	CodeMismatchedModel   = "mismatched_model"
	CodeEmptyFile         = "empty_file"
	CodeTooManyRequests   = "too_many_requests"
	CodeMoreErrors        = "too_many_errors"
)

// Problem is one thing wrong with an input line.
type Problem struct {
	Code    string
	Message string
	Param   string
	Line    int
}

// ParseInput checks one non-blank input line against the batch's endpoint
// and returns the request, or the problem with it. model is the model the
// line's body names.
func ParseInput(line []byte, endpoint string) (in Input, model string, p *Problem) {
	if v, ok := scanInput(line, endpoint); ok {
		return Input{CustomID: string(v.customID), Method: "POST", URL: endpoint, Body: append(json.RawMessage(nil), v.body...)}, string(v.model), nil
	}
	return parseInputJSON(line, endpoint)
}

// parseInputJSON is ParseInput with encoding/json: the reference that
// scanInput, the fast path, agrees with, and what explains a line that
// scanInput does not accept.
func parseInputJSON(line []byte, endpoint string) (in Input, model string, p *Problem) {
	if !utf8.Valid(line) {
		return in, "", &Problem{Code: CodeInvalidUTF8, Message: "line is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&in); err != nil {
		return in, "", &Problem{Code: CodeInvalidJSON, Message: "line is not a JSON object: " + jsonErrText(err)}
	}
	if dec.More() {
		return in, "", &Problem{Code: CodeInvalidJSON, Message: "line holds more than one JSON value"}
	}
	if in.CustomID == "" {
		return in, "", &Problem{Code: CodeMissingCustomID, Message: "custom_id must be a non-empty string", Param: "custom_id"}
	}
	if in.Method != "POST" {
		return in, "", &Problem{Code: CodeInvalidMethod, Message: fmt.Sprintf("method must be POST, got %q", in.Method), Param: "method"}
	}
	if in.URL != endpoint {
		return in, "", &Problem{Code: CodeMismatchedURL, Message: fmt.Sprintf("url %q does not match the batch's endpoint %q", in.URL, endpoint), Param: "url"}
	}
	body := bytes.TrimSpace(in.Body)
	if len(body) == 0 || body[0] != '{' {
		return in, "", &Problem{Code: CodeMissingBody, Message: "body must be a JSON object", Param: "body"}
	}
	var b struct {
		Model json.RawMessage `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return in, "", &Problem{Code: CodeMissingBody, Message: "body must be a JSON object: " + jsonErrText(err), Param: "body"}
	}
	if err := json.Unmarshal(b.Model, &model); err != nil || model == "" {
		return in, "", &Problem{Code: CodeMissingModel, Message: "body.model must be a non-empty string", Param: "body.model"}
	}
	if endpoint == EndpointResponses {
		if v := bytes.TrimSpace(b.Input); len(v) == 0 || string(v) == "null" || string(v) == `""` || string(v) == "[]" {
			return in, "", &Problem{Code: CodeMissingInput, Message: "body.input must be a non-empty string or list of input items", Param: "body.input"}
		}
	}
	// Both are stored (shards, outputs, curation): they must be text a
	// database holds. The rest of the line goes to the engine as it is.
	for _, f := range []struct{ param, value string }{{"custom_id", in.CustomID}, {"body.model", model}} {
		if err := dbtext.Check(f.value); err != nil {
			return in, "", &Problem{Code: CodeInvalidText, Message: f.param + " " + err.Error(), Param: f.param}
		}
	}
	return in, model, nil
}

func jsonErrText(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if ue, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("field %q has the wrong type (%s)", ue.Field, ue.Value)
	}
	return err.Error()
}

// Record is one result: the input line it answers, whether it goes to the
// output file, and the finished output or error line. A chunk's index
// object holds its records without Data, in the order of its output and
// error objects' lines.
type Record struct {
	Line int             `json:"line"`
	OK   bool            `json:"ok"`
	Data json.RawMessage `json:"data,omitempty"`
}
