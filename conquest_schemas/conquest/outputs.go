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
	// second value after the first is an error. The fast path reads valid
	// answers; jsonschema.UnmarshalJSON reads the others, and says what is
	// wrong.
	v, ok := decodeAnswer([]byte(content))
	if !ok {
		var err error
		if v, err = jsonschema.UnmarshalJSON(strings.NewReader(content)); err != nil {
			if finishReason == "length" {
				return nil, &OutputError{Reason: ReasonTruncated, Message: "the answer stopped at max_tokens before its JSON ended"}
			}
			return nil, &OutputError{Reason: ReasonNotJSON, Message: err.Error()}
		}
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

// CheckOutputLine validates one line of a batch output file (OpenAI's
// batch output: {"custom_id", "response": {"status_code", "body"}}), whose
// body is a chat completion ({"choices": [{"message": {"content"},
// "finish_reason"}]}) or a response ({"object": "response", "output":
// [{"type": "message", "content": [{"type": "output_text", "text"}]}]}).
func (d *Definition) CheckOutputLine(line []byte) OutputLine {
	l, ok := decodeOutputLine(line)
	if !ok {
		l = outputLineJSON{}
		if err := json.Unmarshal(line, &l); err != nil {
			return OutputLine{Err: &OutputError{Reason: ReasonNotJSON, Message: "the output line is not JSON: " + err.Error()}}
		}
	}
	out := OutputLine{CustomID: l.CustomID}
	if l.Response == nil || l.Response.StatusCode != 200 {
		out.Err = &OutputError{Reason: ReasonRequestFail, Message: "the request got no successful answer"}
		return out
	}
	content, finish, refusal, ok := l.Response.Body.answer()
	switch {
	case !ok && refusal != "":
		out.Err = &OutputError{Reason: ReasonNoAnswer, Message: "the model refused: " + refusal}
	case !ok:
		out.Err = &OutputError{Reason: ReasonNoAnswer, Message: "the answer has no message content"}
	default:
		out.Value, out.Err = d.CheckOutput(content, finish)
	}
	return out
}

// outputLineJSON is what the check reads of an output line.
type outputLineJSON struct {
	CustomID string        `json:"custom_id"`
	Response *responseJSON `json:"response"`
}

type responseJSON struct {
	StatusCode int          `json:"status_code"`
	Body       responseBody `json:"body"`
}

// responseBody is the body of a successful output line: a chat completion
// or a response of the Responses API.
type responseBody struct {
	Choices           []choiceJSON     `json:"choices"`
	Object            string           `json:"object"`
	Status            string           `json:"status"`
	IncompleteDetails *incompleteJSON  `json:"incomplete_details"`
	Output            []outputItemJSON `json:"output"`
}

type choiceJSON struct {
	Message struct {
		Content *string `json:"content"`
		Refusal *string `json:"refusal"`
	} `json:"message"`
	FinishReason string `json:"finish_reason"`
}

type incompleteJSON struct {
	Reason string `json:"reason"`
}

type outputItemJSON struct {
	Type    string           `json:"type"`
	Content []outputPartJSON `json:"content"`
}

type outputPartJSON struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Refusal string `json:"refusal"`
}

// answer is the body's answer text and finish reason ("length" when
// max_tokens or max_output_tokens cut it short), or its refusal; ok is
// false when it holds no answer text.
func (b *responseBody) answer() (content, finish, refusal string, ok bool) {
	if b.Object != "response" {
		if len(b.Choices) == 0 {
			return "", "", "", false
		}
		c := b.Choices[0]
		if c.Message.Content == nil {
			if c.Message.Refusal != nil {
				refusal = *c.Message.Refusal
			}
			return "", "", refusal, false
		}
		return *c.Message.Content, c.FinishReason, "", true
	}
	// A response's answer is the text of its messages' output_text parts,
	// as the SDKs' output_text joins them; reasoning and tool items are
	// not part of it.
	var text strings.Builder
	for _, item := range b.Output {
		if item.Type != "message" {
			continue
		}
		for _, c := range item.Content {
			switch c.Type {
			case "output_text":
				text.WriteString(c.Text)
				ok = true
			case "refusal":
				refusal = c.Refusal
			}
		}
	}
	if b.Status == "incomplete" && b.IncompleteDetails != nil && b.IncompleteDetails.Reason == "max_output_tokens" {
		finish = "length"
	}
	return text.String(), finish, refusal, ok
}
