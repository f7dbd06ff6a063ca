package llmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// chatRequest is the part of an OpenAI chat completion request the
// simulator reads.
type chatRequest struct {
	Model    *string `json:"model"`
	Messages rawJSON `json:"messages"`
	samplingParams
}

type chatMessage struct {
	Role    string  `json:"role"`
	Content rawJSON `json:"content"`
}

type contentPart struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// Token overhead of the simulated chat template.
const (
	chatPromptOverhead  = 3 // the assistant generation prompt
	chatMessageOverhead = 4 // role markers around each message
)

func (s *Server) handleChatCompletion(w http.ResponseWriter, r *http.Request) {
	s.received()
	var req chatRequest
	if err := decodeRequest(w, r, &req); err != nil {
		s.fail(w, routeChat, err)
		return
	}
	g, err := s.chatGeneration(&req)
	if err != nil {
		s.fail(w, routeChat, err)
		return
	}
	s.serveGeneration(w, r, g)
}

func (s *Server) chatGeneration(req *chatRequest) (*generation, *apiError) {
	model, err := s.checkModel(req.Model)
	if err != nil {
		return nil, err
	}
	h := newRequestHash(s.cfg.Seed, model)
	promptTokens, err := hashMessages(&h, req.Messages)
	if err != nil {
		return nil, err
	}
	pl, err := s.plan(&req.samplingParams, promptTokens)
	if err != nil {
		return nil, err
	}
	if req.Seed != nil {
		h.addUint64(uint64(*req.Seed))
	}
	g := &generation{
		route:        routeChat,
		chat:         true,
		model:        model,
		promptTokens: promptTokens,
		outputs:      make([]output, pl.choices),
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}
	for i := range g.outputs {
		if g.outputs[i], err = pl.generate(h, i); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// hashMessages validates the messages, adds them to h and returns the
// prompt's token count under the simulated chat template.
func hashMessages(h *requestHash, raw rawJSON) (int, *apiError) {
	if isNull(raw) {
		return 0, badRequest("messages", "messages: Field required")
	}
	var msgs []chatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, badRequest("messages", "messages must be an array of message objects: "+err.Error())
	}
	if len(msgs) == 0 {
		return 0, badRequest("messages", "messages must contain at least one message")
	}
	tokens := chatPromptOverhead
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		case "":
			return 0, badRequest("messages", fmt.Sprintf("messages[%d].role: Field required", i))
		default:
			return 0, badRequest("messages", fmt.Sprintf("messages[%d].role: unknown role %q", i, m.Role))
		}
		h.addString(m.Role)
		tokens += chatMessageOverhead
		switch {
		case isNull(m.Content):
			if m.Role != "assistant" {
				return 0, badRequest("messages", fmt.Sprintf("messages[%d].content: Field required", i))
			}
			h.addString("")
		case m.Content[0] == '"':
			var text string
			if err := json.Unmarshal(m.Content, &text); err != nil {
				return 0, badRequest("messages", fmt.Sprintf("messages[%d].content: %v", i, err))
			}
			h.addString(text)
			tokens += CountTokens(text)
		case m.Content[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				return 0, badRequest("messages", fmt.Sprintf("messages[%d].content: must be a string or an array of content parts", i))
			}
			for j, p := range parts {
				h.addString(p.Type)
				if p.Type != "text" {
					// Images and audio are accepted and, for the
					// simulated text model, ignored.
					continue
				}
				if p.Text == nil {
					return 0, badRequest("messages", fmt.Sprintf("messages[%d].content[%d].text: Field required", i, j))
				}
				h.addString(*p.Text)
				tokens += CountTokens(*p.Text)
			}
		default:
			return 0, badRequest("messages", fmt.Sprintf("messages[%d].content: must be a string or an array of content parts", i))
		}
	}
	return tokens, nil
}

type chatCompletionResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
	SystemFingerprint *string      `json:"system_fingerprint"`
	PromptLogprobs    any          `json:"prompt_logprobs"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      responseMessage `json:"message"`
	Logprobs     any             `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
	StopReason   any             `json:"stop_reason"`
}

type responseMessage struct {
	Role             string   `json:"role"`
	Content          string   `json:"content"`
	ToolCalls        []string `json:"tool_calls"`
	ReasoningContent *string  `json:"reasoning_content"`
}

func (s *Server) chatCompletionResponse(g *generation) *chatCompletionResponse {
	resp := &chatCompletionResponse{
		ID:      s.newID("chatcmpl-"),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   g.model,
		Choices: make([]chatChoice, len(g.outputs)),
		Usage:   s.usage(g),
	}
	for i, o := range g.outputs {
		resp.Choices[i] = chatChoice{
			Index:        o.index,
			Message:      responseMessage{Role: "assistant", Content: o.text, ToolCalls: []string{}},
			FinishReason: o.finish,
		}
	}
	return resp
}
