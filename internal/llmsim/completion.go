package llmsim

import (
	"encoding/json"
	"net/http"
	"time"
)

// completionRequest is the part of an OpenAI (legacy) completion request the
// simulator reads.
type completionRequest struct {
	Model  *string `json:"model"`
	Prompt rawJSON `json:"prompt"`
	samplingParams
}

// promptInput is one prompt (or embedding input): text, or token IDs.
type promptInput struct {
	text   string
	ids    []int64
	isText bool
}

func (p promptInput) tokens() int {
	if p.isText {
		return CountTokens(p.text)
	}
	return len(p.ids)
}

func (p promptInput) addTo(h *requestHash) {
	if p.isText {
		h.addString(p.text)
		return
	}
	h.addUint64(uint64(len(p.ids)))
	for _, id := range p.ids {
		h.addUint64(uint64(id))
	}
}

// parsePrompts reads a prompt or embedding input: a string, an array of
// strings, an array of token IDs, or an array of arrays of token IDs.
func parsePrompts(raw rawJSON, param string) ([]promptInput, *apiError) {
	if isNull(raw) {
		return nil, badRequest(param, param+": Field required")
	}
	invalid := badRequest(param, param+" must be a string, an array of strings, an array of token IDs or an array of arrays of token IDs")
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return []promptInput{{text: text, isText: true}}, nil
	}
	var list []rawJSON
	if json.Unmarshal(raw, &list) != nil {
		return nil, invalid
	}
	if len(list) == 0 {
		return nil, badRequest(param, param+" must not be empty")
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		return []promptInput{{ids: ids}}, nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		out := make([]promptInput, len(texts))
		for i, t := range texts {
			out[i] = promptInput{text: t, isText: true}
		}
		return out, nil
	}
	var idLists [][]int64
	if json.Unmarshal(raw, &idLists) == nil {
		out := make([]promptInput, len(idLists))
		for i, l := range idLists {
			if len(l) == 0 {
				return nil, badRequest(param, param+" must not contain an empty token list")
			}
			out[i] = promptInput{ids: l}
		}
		return out, nil
	}
	return nil, invalid
}

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request) {
	s.received()
	var req completionRequest
	if err := decodeRequest(w, r, &req); err != nil {
		s.fail(w, routeCompletion, err)
		return
	}
	g, err := s.completionGeneration(&req)
	if err != nil {
		s.fail(w, routeCompletion, err)
		return
	}
	s.serveGeneration(w, r, g)
}

func (s *Server) completionGeneration(req *completionRequest) (*generation, *apiError) {
	model, err := s.checkModel(req.Model)
	if err != nil {
		return nil, err
	}
	prompts, err := parsePrompts(req.Prompt, "prompt")
	if err != nil {
		return nil, err
	}
	longestPrompt, promptTokens := 0, 0
	for _, p := range prompts {
		n := p.tokens()
		longestPrompt = max(longestPrompt, n)
		promptTokens += n
	}
	pl, err := s.plan(&req.samplingParams, longestPrompt)
	if err != nil {
		return nil, err
	}
	if len(prompts)*pl.choices > maxChoices {
		return nil, badRequest("prompt", "too many prompts times n")
	}
	g := &generation{
		route:        routeCompletion,
		model:        model,
		promptTokens: promptTokens,
		outputs:      make([]output, 0, len(prompts)*pl.choices),
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}
	for i, p := range prompts {
		h := newRequestHash(s.cfg.Seed, model)
		h.addString("completion")
		p.addTo(&h)
		if req.Seed != nil {
			h.addUint64(uint64(*req.Seed))
		}
		for j := range pl.choices {
			o, err := pl.generate(h, j)
			if err != nil {
				return nil, err
			}
			o.index = i*pl.choices + j
			g.outputs = append(g.outputs, o)
		}
	}
	return g, nil
}

type completionResponse struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []completionChoice `json:"choices"`
	Usage             usage              `json:"usage"`
	SystemFingerprint *string            `json:"system_fingerprint"`
}

type completionChoice struct {
	Index          int    `json:"index"`
	Text           string `json:"text"`
	Logprobs       any    `json:"logprobs"`
	FinishReason   string `json:"finish_reason"`
	StopReason     any    `json:"stop_reason"`
	PromptLogprobs any    `json:"prompt_logprobs"`
}

func (s *Server) completionResponse(g *generation) *completionResponse {
	resp := &completionResponse{
		ID:      s.newID("cmpl-"),
		Object:  "text_completion",
		Created: time.Now().Unix(),
		Model:   g.model,
		Choices: make([]completionChoice, len(g.outputs)),
		Usage:   s.usage(g),
	}
	for i, o := range g.outputs {
		resp.Choices[i] = completionChoice{Index: o.index, Text: o.text, FinishReason: o.finish}
	}
	return resp
}
