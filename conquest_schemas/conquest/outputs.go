package conquest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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

// OutputLine is what CheckOutputLine or ReadOutputLine learned from one
// line of a batch's output file.
type OutputLine struct {
	CustomID string
	// Value is the parsed answer when valid (CheckOutputLine only).
	Value any
	Err   *OutputError
	// StatusCode is the response's status; 0 when the line has none.
	StatusCode int
	// Content is the answer's text, when the response holds one.
	Content string
	// Model is the model the body names, if any.
	Model string
	// InputTokens and OutputTokens are the body's usage: prompt and
	// completion tokens, or a response's input and output tokens.
	InputTokens, OutputTokens int64
	// LatencyMS is the response's latency_ms, a kiln extension.
	LatencyMS *int64
}

// CheckOutputLine validates one line of a batch output file (OpenAI's
// batch output: {"custom_id", "response": {"status_code", "body"}}), whose
// body is a chat completion ({"choices": [{"message": {"content"},
// "finish_reason"}]}) or a response ({"object": "response", "output":
// [{"type": "message", "content": [{"type": "output_text", "text"}]}]}).
func (d *Definition) CheckOutputLine(line []byte) OutputLine {
	out, finish := readOutputLine(line)
	if out.Err == nil {
		out.Value, out.Err = d.CheckOutput(out.Content, finish)
	}
	return out
}

// ReadOutputLine reads one line of a batch output file as CheckOutputLine
// does, without a schema to check the answer against: Err says when the
// line is not JSON, the request failed, or the body holds no answer.
func ReadOutputLine(line []byte) OutputLine {
	out, _ := readOutputLine(line)
	return out
}

// OutputCustomID is the custom_id of a line of a batch output file; ""
// when it has none, or is not JSON.
func OutputCustomID(line []byte) string {
	if id, ok := decodeCustomID(line); ok {
		return id
	}
	var l struct {
		CustomID string `json:"custom_id"`
	}
	_ = json.Unmarshal(line, &l)
	return l.CustomID
}

// readOutputLine reads an output line, and the answer's finish reason.
func readOutputLine(line []byte) (OutputLine, string) {
	l, m, ok := decodeOutputLine(line)
	if !ok {
		l, m = outputLineJSON{}, outputMetaJSON{}
		if err := json.Unmarshal(line, &l); err != nil {
			return OutputLine{Err: &OutputError{Reason: ReasonNotJSON, Message: "the output line is not JSON: " + err.Error()}}, ""
		}
		m = readMetaLeniently(line)
	}
	out := OutputLine{CustomID: l.CustomID}
	if m.Response != nil {
		b := m.Response.Body
		out.Model, out.LatencyMS = b.Model, m.Response.LatencyMS
		out.InputTokens = cmp.Or(b.Usage.PromptTokens, b.Usage.InputTokens)
		out.OutputTokens = cmp.Or(b.Usage.CompletionTokens, b.Usage.OutputTokens)
	}
	if l.Response == nil || l.Response.StatusCode != 200 {
		if l.Response != nil {
			out.StatusCode = l.Response.StatusCode
		}
		out.Err = &OutputError{Reason: ReasonRequestFail, Message: "the request got no successful answer"}
		return out, ""
	}
	out.StatusCode = 200
	content, finish, refusal, ok := l.Response.Body.answer()
	switch {
	case !ok && refusal != "":
		out.Err = &OutputError{Reason: ReasonNoAnswer, Message: "the model refused: " + refusal}
	case !ok:
		out.Err = &OutputError{Reason: ReasonNoAnswer, Message: "the answer has no message content"}
	}
	out.Content = content
	return out, finish
}

// readMetaLeniently reads an outputMetaJSON as json.Unmarshal does, but
// leaves out what is of the wrong type: json.Unmarshal would keep a
// latency that is no number as 0.
func readMetaLeniently(line []byte) outputMetaJSON {
	var raw struct {
		Response *struct {
			LatencyMS json.RawMessage `json:"latency_ms"`
			Body      bodyMetaJSON    `json:"body"`
		} `json:"response"`
	}
	_ = json.Unmarshal(line, &raw) // a field of the wrong type is left empty
	if raw.Response == nil {
		return outputMetaJSON{}
	}
	m := outputMetaJSON{Response: &responseMetaJSON{Body: raw.Response.Body}}
	if ms, err := strconv.ParseInt(string(raw.Response.LatencyMS), 10, 64); err == nil {
		m.Response.LatencyMS = &ms
	}
	return m
}

// outputLineJSON is what the check reads of an output line.
type outputLineJSON struct {
	CustomID string        `json:"custom_id"`
	Response *responseJSON `json:"response"`
}

// outputMetaJSON is what an output line says of its answer besides what
// the check reads; it is read apart, so that a field of the wrong type
// here leaves the field out rather than make the line unreadable.
type outputMetaJSON struct {
	Response *responseMetaJSON `json:"response"`
}

type responseMetaJSON struct {
	LatencyMS *int64       `json:"latency_ms"`
	Body      bodyMetaJSON `json:"body"`
}

type bodyMetaJSON struct {
	Model string    `json:"model"`
	Usage usageJSON `json:"usage"`
}

type usageJSON struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	InputTokens      int64 `json:"input_tokens"`
	OutputTokens     int64 `json:"output_tokens"`
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
