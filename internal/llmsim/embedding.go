package llmsim

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"time"
)

// maxEmbeddingDimensions bounds the dimensions a request may ask for.
const maxEmbeddingDimensions = 8192

type embeddingRequest struct {
	Model          *string `json:"model"`
	Input          rawJSON `json:"input"`
	Dimensions     *int64  `json:"dimensions"`
	EncodingFormat string  `json:"encoding_format"`
}

type embeddingResponse struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Data    []embeddingData `json:"data"`
	Usage   usage           `json:"usage"`
}

type embeddingData struct {
	Index     int    `json:"index"`
	Object    string `json:"object"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

func (s *Server) handleEmbedding(w http.ResponseWriter, r *http.Request) {
	s.received()
	var req embeddingRequest
	if err := decodeRequest(w, r, &req); err != nil {
		s.fail(w, routeEmbedding, err)
		return
	}
	resp, err := s.embeddings(&req)
	if err != nil {
		s.fail(w, routeEmbedding, err)
		return
	}
	if s.injectFault(w, r, routeEmbedding) {
		return
	}
	ctx := r.Context()
	if err := s.slots.acquire(ctx); err != nil {
		s.cancel(routeEmbedding)
		return
	}
	held := s.hold(ctx, s.ttft)
	s.slots.release()
	if held != nil {
		s.cancel(routeEmbedding)
		return
	}
	resp.ID = s.newID("embd-")
	resp.Created = time.Now().Unix()
	writeJSON(w, http.StatusOK, resp)
	s.complete(routeEmbedding, resp.Usage.PromptTokens, 0)
}

func (s *Server) embeddings(req *embeddingRequest) (*embeddingResponse, *apiError) {
	model, err := s.checkModel(req.Model)
	if err != nil {
		return nil, err
	}
	inputs, err := parsePrompts(req.Input, "input")
	if err != nil {
		return nil, err
	}
	dims := EmbeddingDimensionsDefault
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxEmbeddingDimensions {
			return nil, badRequest("dimensions", fmt.Sprintf("dimensions must be between 1 and %d, got %d", maxEmbeddingDimensions, *req.Dimensions))
		}
		dims = int(*req.Dimensions)
	}
	base64Format := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		base64Format = true
	default:
		return nil, badRequest("encoding_format", "encoding_format must be float or base64, got "+req.EncodingFormat)
	}
	resp := &embeddingResponse{Object: "list", Model: model, Data: make([]embeddingData, len(inputs))}
	tokens := 0
	for i, in := range inputs {
		n := in.tokens()
		if n > MaxModelLen {
			return nil, badRequest("input", fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens in the input for embedding generation. Please reduce the length of the input.", MaxModelLen, n))
		}
		tokens += n
		h := newRequestHash(s.cfg.Seed, model)
		h.addString("embedding")
		in.addTo(&h)
		vec := unitVector(h, dims)
		var emb any = vec
		if base64Format {
			buf := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		resp.Data[i] = embeddingData{Index: i, Object: "embedding", Embedding: emb}
	}
	resp.Usage = usage{PromptTokens: tokens, TotalTokens: tokens}
	return resp, nil
}

// unitVector is a deterministic, uniformly oriented unit vector for h.
func unitVector(h requestHash, dims int) []float32 {
	rng := h.rng(0)
	vec := make([]float32, dims)
	var norm float64
	for i := range vec {
		x := rng.NormFloat64()
		vec[i] = float32(x)
		norm += float64(vec[i]) * float64(vec[i])
	}
	scale := 1 / math.Sqrt(norm)
	for i := range vec {
		vec[i] = float32(float64(vec[i]) * scale)
	}
	return vec
}
