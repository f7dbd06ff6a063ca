package bench

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// The standard prompt set: a passage cut to the workload's input length and
// one of a list of instructions, both embedded so that every kiln measures
// the same requests.
var (
	//go:embed data/prompts.txt
	promptsText string
	//go:embed data/passage.txt
	passageText string

	instructions = readInstructions(promptsText)
	passageWords = strings.Fields(passageText)
)

func readInstructions(text string) []string {
	var out []string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// Prompt is the i-th prompt of the standard set for inputTokens: about
// inputTokens words (a word is about a token in English), different for each
// i so that no engine serves it from a prefix cache whole.
func Prompt(i, inputTokens int) string {
	instr := instructions[i%len(instructions)]
	head := fmt.Sprintf("Request %d.", i)
	n := max(inputTokens-len(strings.Fields(instr))-len(strings.Fields(head)), 0)
	var b strings.Builder
	b.WriteString(head)
	start := (i * 37) % len(passageWords)
	for k := range n {
		b.WriteByte(' ')
		b.WriteString(passageWords[(start+k)%len(passageWords)])
	}
	b.WriteString("\n\n")
	b.WriteString(instr)
	return b.String()
}

// chatBody is the body of the i-th request of the workload.
type chatBody struct {
	Model         string         `json:"model"`
	Messages      []chatMessage  `json:"messages"`
	MaxTokens     int            `json:"max_tokens"`
	IgnoreEOS     bool           `json:"ignore_eos"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// request is the workload's i-th chat completion for model: the prompt,
// max_tokens of the output length and ignore_eos (vLLM's), so that each
// completion is exactly outputTokens long.
func request(model string, i, inputTokens, outputTokens int, stream bool) chatBody {
	b := chatBody{
		Model:     model,
		Messages:  []chatMessage{{Role: "user", Content: Prompt(i, inputTokens)}},
		MaxTokens: outputTokens,
		IgnoreEOS: true,
	}
	if stream {
		b.Stream, b.StreamOptions = true, &streamOptions{IncludeUsage: true}
	}
	return b
}

// BatchInput is the workload as a batch input file (JSONL) of n requests
// for model.
func BatchInput(model string, n, inputTokens, outputTokens int) ([]byte, error) {
	var b strings.Builder
	for i := range n {
		line, err := json.Marshal(struct {
			CustomID string   `json:"custom_id"`
			Method   string   `json:"method"`
			URL      string   `json:"url"`
			Body     chatBody `json:"body"`
		}{fmt.Sprintf("bench-%d", i), "POST", "/v1/chat/completions", request(model, i, inputTokens, outputTokens, false)})
		if err != nil {
			return nil, err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}
