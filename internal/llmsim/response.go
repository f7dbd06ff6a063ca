package llmsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// responsesRequest is the part of an OpenAI Responses API request
// (POST /v1/responses) the simulator reads. Tools, reasoning, conversation
// state (previous_response_id, store) and the rest are accepted and, for the
// simulated text model, ignored.
type responsesRequest struct {
	Model           *string       `json:"model"`
	Input           rawJSON       `json:"input"`
	Instructions    *string       `json:"instructions"`
	MaxOutputTokens *int64        `json:"max_output_tokens"`
	Temperature     *float64      `json:"temperature"`
	TopP            *float64      `json:"top_p"`
	Stream          bool          `json:"stream"`
	Metadata        rawJSON       `json:"metadata"`
	Text            *responseText `json:"text"`
}

// responseText is the Responses API's text: its format is the counterpart
// of chat completions' response_format, with json_schema's fields inline.
type responseText struct {
	Format *struct {
		Type   string  `json:"type"`
		Name   string  `json:"name"`
		Schema rawJSON `json:"schema"`
		Strict *bool   `json:"strict"`
	} `json:"format"`
}

// responseInputItem is an item of input: a message (type "message" or
// none) or another kind, which is hashed as it is.
type responseInputItem struct {
	Type    string  `json:"type"`
	Role    string  `json:"role"`
	Content rawJSON `json:"content"`
}

func (s *Server) handleResponse(w http.ResponseWriter, r *http.Request) {
	s.received()
	var req responsesRequest
	if err := decodeRequest(w, r, &req); err != nil {
		s.fail(w, routeResponses, err)
		return
	}
	g, err := s.responseGeneration(&req)
	if err != nil {
		s.fail(w, routeResponses, err)
		return
	}
	s.serveGeneration(w, r, g)
}

func (s *Server) responseGeneration(req *responsesRequest) (*generation, *apiError) {
	model, err := s.checkModel(req.Model)
	if err != nil {
		return nil, err
	}
	if req.Stream {
		return nil, badRequest("stream", "kiln sim does not stream responses; send stream=false")
	}
	h := newRequestHash(s.cfg.Seed, model)
	promptTokens := chatPromptOverhead
	if req.Instructions != nil {
		h.addString("developer")
		h.addString(*req.Instructions)
		promptTokens += chatMessageOverhead + CountTokens(*req.Instructions)
	}
	n, err := hashResponseInput(&h, req.Input)
	if err != nil {
		return nil, err
	}
	promptTokens += n
	params := samplingParams{MaxTokens: req.MaxOutputTokens}
	pl, err := s.plan(&params, promptTokens)
	if err != nil {
		if err.param == "max_tokens" {
			err.param = "max_output_tokens"
		}
		return nil, err
	}
	if pl.format, err = responseTextFormat(req.Text); err != nil {
		return nil, err
	}
	g := &generation{
		route:        routeResponses,
		model:        model,
		promptTokens: promptTokens,
		outputs:      make([]output, 1),
		responses:    req,
	}
	if g.outputs[0], err = pl.generate(h, 0); err != nil {
		return nil, err
	}
	return g, nil
}

// hashResponseInput validates input (a string, or a list of items), adds it
// to h and returns its token count under the simulated chat template.
func hashResponseInput(h *requestHash, raw rawJSON) (int, *apiError) {
	if isNull(raw) {
		return 0, badRequest("input", "input: Field required")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		h.addString("user")
		h.addString(text)
		return chatMessageOverhead + CountTokens(text), nil
	}
	var items []rawJSON
	if json.Unmarshal(raw, &items) != nil {
		return 0, badRequest("input", "input must be a string or an array of input items")
	}
	if len(items) == 0 {
		return 0, badRequest("input", "input must contain at least one item")
	}
	tokens := 0
	for i, raw := range items {
		var it responseInputItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return 0, badRequest("input", fmt.Sprintf("input[%d] must be an input item object", i))
		}
		if it.Type != "" && it.Type != "message" {
			// Tool calls and their outputs are context the simulated
			// model reads as text.
			h.addString(string(raw))
			tokens += chatMessageOverhead + (len(raw)+3)/4
			continue
		}
		switch it.Role {
		case "system", "developer", "user", "assistant":
		case "":
			return 0, badRequest("input", fmt.Sprintf("input[%d].role: Field required", i))
		default:
			return 0, badRequest("input", fmt.Sprintf("input[%d].role: unknown role %q", i, it.Role))
		}
		h.addString(it.Role)
		tokens += chatMessageOverhead
		switch {
		case isNull(it.Content):
			return 0, badRequest("input", fmt.Sprintf("input[%d].content: Field required", i))
		case it.Content[0] == '"':
			if err := json.Unmarshal(it.Content, &text); err != nil {
				return 0, badRequest("input", fmt.Sprintf("input[%d].content: %v", i, err))
			}
			h.addString(text)
			tokens += CountTokens(text)
		case it.Content[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(it.Content, &parts); err != nil {
				return 0, badRequest("input", fmt.Sprintf("input[%d].content: must be a string or an array of content parts", i))
			}
			for j, p := range parts {
				h.addString(p.Type)
				if p.Type != "input_text" && p.Type != "output_text" {
					// Images, files and audio are accepted and, for the
					// simulated text model, ignored.
					continue
				}
				if p.Text == nil {
					return 0, badRequest("input", fmt.Sprintf("input[%d].content[%d].text: Field required", i, j))
				}
				h.addString(*p.Text)
				tokens += CountTokens(*p.Text)
			}
		default:
			return 0, badRequest("input", fmt.Sprintf("input[%d].content: must be a string or an array of content parts", i))
		}
	}
	return tokens, nil
}

// responseTextFormat reads text.format: nil means free text.
func responseTextFormat(t *responseText) (*structuredFormat, *apiError) {
	if t == nil || t.Format == nil {
		return nil, nil
	}
	switch f := t.Format; f.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &structuredFormat{schema: jsonObjectSchema}, nil
	case "json_schema":
		if isNull(f.Schema) {
			return nil, badRequest("text.format.schema", "text.format.schema: Field required")
		}
		return schemaFormat(f.Schema, "text.format.schema")
	}
	return nil, badRequest("text.format.type", "text.format.type must be one of text, json_object, json_schema; got "+t.Format.Type)
}

// responseObject is the Responses API's Response, as vLLM's OpenAI server
// writes it, with the properties OpenAI's schema requires.
type responseObject struct {
	ID                string                  `json:"id"`
	Object            string                  `json:"object"`
	CreatedAt         int64                   `json:"created_at"`
	CompletedAt       *int64                  `json:"completed_at"`
	Status            string                  `json:"status"`
	Error             any                     `json:"error"`
	IncompleteDetails *responseIncomplete     `json:"incomplete_details"`
	Instructions      *string                 `json:"instructions"`
	MaxOutputTokens   *int64                  `json:"max_output_tokens"`
	Metadata          rawJSON                 `json:"metadata"`
	Model             string                  `json:"model"`
	Output            []responseOutputMessage `json:"output"`
	ParallelToolCalls bool                    `json:"parallel_tool_calls"`
	Temperature       float64                 `json:"temperature"`
	Text              *responseText           `json:"text,omitempty"`
	ToolChoice        string                  `json:"tool_choice"`
	Tools             []any                   `json:"tools"`
	TopP              float64                 `json:"top_p"`
	Truncation        string                  `json:"truncation"`
	Usage             responseUsage           `json:"usage"`
}

type responseIncomplete struct {
	Reason string `json:"reason"`
}

type responseOutputMessage struct {
	ID      string               `json:"id"`
	Type    string               `json:"type"`
	Role    string               `json:"role"`
	Status  string               `json:"status"`
	Content []responseOutputText `json:"content"`
}

type responseOutputText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
		// CacheWriteTokens is not vLLM's: OpenAI's schema requires it.
		CacheWriteTokens int `json:"cache_write_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

func (s *Server) responseObject(g *generation) *responseObject {
	req, o := g.responses, g.outputs[0]
	now := time.Now().Unix()
	resp := &responseObject{
		ID:                s.newID("resp_"),
		Object:            "response",
		CreatedAt:         now,
		CompletedAt:       &now,
		Status:            "completed",
		Instructions:      req.Instructions,
		MaxOutputTokens:   req.MaxOutputTokens,
		Metadata:          req.Metadata,
		Model:             g.model,
		ParallelToolCalls: true,
		Temperature:       1,
		Text:              req.Text,
		ToolChoice:        "auto",
		Tools:             []any{},
		TopP:              1,
		Truncation:        "disabled",
	}
	if req.Temperature != nil {
		resp.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		resp.TopP = *req.TopP
	}
	msgStatus := "completed"
	if o.finish == "length" {
		resp.Status, resp.CompletedAt, msgStatus = "incomplete", nil, "incomplete"
		resp.IncompleteDetails = &responseIncomplete{Reason: "max_output_tokens"}
	}
	resp.Output = []responseOutputMessage{{
		ID:     s.newID("msg_"),
		Type:   "message",
		Role:   "assistant",
		Status: msgStatus,
		Content: []responseOutputText{{
			Type: "output_text", Text: o.text, Annotations: []any{}, Logprobs: []any{},
		}},
	}}
	resp.Usage.InputTokens = g.promptTokens
	resp.Usage.OutputTokens = o.tokens
	resp.Usage.TotalTokens = g.promptTokens + o.tokens
	resp.Usage.InputTokensDetails.CachedTokens = s.cachedTokens(g.promptTokens)
	resp.Usage.OutputTokensDetails.ReasoningTokens = s.reasoningTokens(o.tokens)
	return resp
}
