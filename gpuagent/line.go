package gpuagent

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/kilnhq/kiln/internal/batchline"
)

// answer is what the agent reads of an engine's body, in one pass: whether
// it is an answer of the batch's endpoint (isAnswer) and its token usage
// (usageOf). The fields match as encoding/json matches keys (case
// insensitive, the last of duplicates winning).
type answer struct {
	Choices listField   `json:"choices"`
	Data    listField   `json:"data"`
	Object  string      `json:"object"`
	Output  listField   `json:"output"`
	Usage   usageFields `json:"usage"`
}

// parseAnswer reads body. notJSON says it is no JSON at all; err is any
// other reason it is not an object of the answer's shape.
func parseAnswer(body []byte) (a answer, notJSON bool, err error) {
	err = json.Unmarshal(body, &a)
	var se *json.SyntaxError
	return a, errors.As(err, &se), err
}

// is says whether a, parsed without err, is an answer of endpoint: an
// object with its results, choices (completions), data (embeddings) or a
// response's output (responses). Anything else, a proxy's or a broken
// engine's, would go to the output file as a success whose body a client
// cannot read, and that OpenAI's BatchRequestOutput forbids when it is not
// an object.
func (a *answer) is(endpoint string, err error) bool {
	if err != nil {
		return false // not an object, or its results are not a list
	}
	switch endpoint {
	case "/v1/embeddings":
		return bool(a.Data)
	case batchline.EndpointResponses:
		return a.Object == "response" && bool(a.Output)
	}
	return bool(a.Choices)
}

var errNotList = errors.New("not a list")

// listField records whether a field holds a list (null: none), as a
// []json.RawMessage would without copying the list.
type listField bool

// UnmarshalJSON implements json.Unmarshaler.
func (l *listField) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '[':
		*l = true
	case 'n':
		*l = false
	default:
		return errNotList
	}
	return nil
}

// usageFields is an answer's usage object: chat and completions'
// prompt_tokens and completion_tokens with their
// prompt_tokens_details.cached_tokens and
// completion_tokens_details.reasoning_tokens, or Responses' input_tokens
// and output_tokens with their input_tokens_details and
// output_tokens_details. One that does not decode counts no tokens; it
// does not make the body less of an answer.
type usageFields struct {
	v struct {
		PromptTokens            int64     `json:"prompt_tokens"`
		CompletionTokens        int64     `json:"completion_tokens"`
		PromptTokensDetails     cached    `json:"prompt_tokens_details"`
		CompletionTokensDetails reasoning `json:"completion_tokens_details"`
		InputTokens             int64     `json:"input_tokens"`
		OutputTokens            int64     `json:"output_tokens"`
		InputTokensDetails      cached    `json:"input_tokens_details"`
		OutputTokensDetails     reasoning `json:"output_tokens_details"`
	}
	bad bool
}

type cached struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type reasoning struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *usageFields) UnmarshalJSON(b []byte) error {
	if json.Unmarshal(b, &f.v) != nil {
		f.bad = true
	}
	return nil
}

// usage is the token usage the fields report.
func (f *usageFields) usage() usage {
	if f.bad {
		return usage{}
	}
	u := &f.v
	return usage{
		in:        u.PromptTokens + u.InputTokens,
		out:       u.CompletionTokens + u.OutputTokens,
		cached:    u.PromptTokensDetails.CachedTokens + u.InputTokensDetails.CachedTokens,
		reasoning: u.CompletionTokensDetails.ReasoningTokens + u.OutputTokensDetails.ReasoningTokens,
	}
}

// appendOutputLine appends the output line of an HTTP answer, as
// json.Marshal writes a batchline.Output with that Response and no Error,
// and reports false (appending nothing) where writing it by hand would not
// give the same bytes: a body with insignificant whitespace or characters
// that encoding/json escapes.
func appendOutputLine(dst []byte, id, customID string, r *batchline.Response) ([]byte, bool) {
	if !plainJSON(r.Body) || r.LatencyMS == 0 {
		return dst, false
	}
	n := len(dst)
	var ok bool
	dst = append(dst, `{"id":`...)
	if dst, ok = appendPlainString(dst, id); !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"custom_id":`...)
	if dst, ok = appendPlainString(dst, customID); !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"response":{"status_code":`...)
	dst = strconv.AppendInt(dst, int64(r.StatusCode), 10)
	dst = append(dst, `,"request_id":`...)
	if dst, ok = appendPlainString(dst, r.RequestID); !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"body":`...)
	dst = append(dst, r.Body...)
	dst = append(dst, `,"latency_ms":`...)
	dst = strconv.AppendInt(dst, r.LatencyMS, 10)
	dst = append(dst, `},"error":null}`...)
	return dst, true
}

// appendPlainString appends s quoted, and false (appending nothing) if
// json.Marshal would escape any of its characters.
func appendPlainString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// plainJSON says whether encoding/json writes body, valid JSON, as it is in
// a json.RawMessage: no whitespace between tokens, and none of <, >, &,
// U+2028 and U+2029, which it escapes for HTML.
func plainJSON(body []byte) bool {
	inString, escaped := false, false
	for i, c := range body {
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && i+2 < len(body) && body[i+1] == 0x80 && body[i+2]&^1 == 0xA8:
			return false
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

// maxPooledLine is the largest line buffer kept for reuse: the rare larger
// one goes to the garbage collector rather than staying in memory.
const maxPooledLine = 64 << 10

// linePool holds the buffers of output lines on their way to a chunk.
var linePool = sync.Pool{New: func() any { return new([]byte) }}

// putLine returns a line buffer to the pool once its bytes were copied.
func putLine(buf *[]byte) {
	if buf == nil || cap(*buf) > maxPooledLine {
		return
	}
	*buf = (*buf)[:0]
	linePool.Put(buf)
}
