package conquest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Output validity reasons.
const (
	ReasonNotJSON     = "not_json"
	ReasonTruncated   = "truncated"
	ReasonSchema      = "schema_violation"
	ReasonNoAnswer    = "no_answer"
	ReasonRequestFail = "request_failed"
)

// OutputError is why an output is invalid.
type OutputError struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (e *OutputError) Error() string { return e.Reason + ": " + e.Message }

// CheckOutput validates the model's answer: content must be JSON matching
// the output schema. finishReason "length" marks an answer cut short.
// It returns the parsed answer when valid.
func (d *Definition) CheckOutput(content, finishReason string) (any, *OutputError) {
	// One decode, numbers kept exact, as the validator wants them; a
	// second value after the first is an error.
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(content))
	if err != nil {
		if finishReason == "length" {
			return nil, &OutputError{Reason: ReasonTruncated, Message: "the answer stopped at max_tokens before its JSON ended"}
		}
		return nil, &OutputError{Reason: ReasonNotJSON, Message: err.Error()}
	}
	if err := d.schema.Validate(v); err != nil {
		return nil, &OutputError{Reason: ReasonSchema, Message: schemaMessage(err)}
	}
	return v, nil
}

var english = message.NewPrinter(language.English)

// schemaMessage is the first leaf of a validation error: where, and what.
func schemaMessage(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	at := "/" + strings.Join(ve.InstanceLocation, "/")
	return fmt.Sprintf("at %s: %s", at, ve.ErrorKind.LocalizedString(english))
}

// OutputLine is what CheckOutputLine learned from one line of a batch's
// output file.
type OutputLine struct {
	CustomID string
	// Value is the parsed answer when valid.
	Value any
	Err   *OutputError
}

// CheckOutputLine validates one line of a batch output file
// (OpenAI's batch output: {"custom_id", "response": {"status_code",
// "body": {"choices": [{"message": {"content"}, "finish_reason"}]}}}).
func (d *Definition) CheckOutputLine(line []byte) OutputLine {
	var l struct {
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int `json:"status_code"`
			Body       struct {
				Choices []struct {
					Message struct {
						Content *string `json:"content"`
						Refusal *string `json:"refusal"`
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
			} `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return OutputLine{Err: &OutputError{Reason: ReasonNotJSON, Message: "the output line is not JSON: " + err.Error()}}
	}
	out := OutputLine{CustomID: l.CustomID}
	switch {
	case l.Response == nil || l.Response.StatusCode != 200:
		out.Err = &OutputError{Reason: ReasonRequestFail, Message: "the request got no successful answer"}
	case len(l.Response.Body.Choices) == 0 || l.Response.Body.Choices[0].Message.Content == nil:
		msg := "the answer has no message content"
		if len(l.Response.Body.Choices) > 0 && l.Response.Body.Choices[0].Message.Refusal != nil {
			msg = "the model refused: " + *l.Response.Body.Choices[0].Message.Refusal
		}
		out.Err = &OutputError{Reason: ReasonNoAnswer, Message: msg}
	default:
		c := l.Response.Body.Choices[0]
		out.Value, out.Err = d.CheckOutput(*c.Message.Content, c.FinishReason)
	}
	return out
}
