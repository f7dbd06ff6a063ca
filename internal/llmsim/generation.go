package llmsim

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// MaxModelLen is the simulated model's context length, as vLLM's
// --max-model-len: a request whose prompt plus max_tokens exceeds it is
// rejected with vLLM's 400.
const MaxModelLen = 32768

// maxChoices bounds n, so one request cannot ask for unbounded work.
const maxChoices = 128

// samplingParams are the request fields chat completions and completions
// share. Others (temperature, top_p, stop, ...) are accepted and ignored.
type samplingParams struct {
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	MinTokens           *int64          `json:"min_tokens"`
	IgnoreEOS           bool            `json:"ignore_eos"`
	N                   *int64          `json:"n"`
	Seed                *int64          `json:"seed"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	ResponseFormat      *responseFormat `json:"response_format"`
	StructuredOutputs   *structuredOpts `json:"structured_outputs"`
	GuidedJSON          rawJSON         `json:"guided_json"`
	GuidedRegex         *string         `json:"guided_regex"`
	GuidedChoice        []string        `json:"guided_choice"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// output is one generated choice.
type output struct {
	index  int
	text   string
	tokens int
	finish string // "stop" or "length"
}

// generation is a validated completion request, ready to be served.
type generation struct {
	route        string
	chat         bool
	model        string
	promptTokens int
	outputs      []output
	stream       bool
	includeUsage bool
	// responses is the request of a /v1/responses generation, which is
	// answered with a Response object; nil for the other routes.
	responses *responsesRequest
}

func (g *generation) completionTokens() int {
	n := 0
	for _, o := range g.outputs {
		n += o.tokens
	}
	return n
}

// longest is the most tokens any choice has: choices are generated side by
// side, so the request takes as long as its longest.
func (g *generation) longest() int {
	n := 0
	for _, o := range g.outputs {
		n = max(n, o.tokens)
	}
	return n
}

// outputPlan is what each choice of a request generates.
type outputPlan struct {
	choices   int
	natural   int // tokens of an unconstrained answer
	limit     int // max_tokens; 0 when unset
	ignoreEOS bool
	format    *structuredFormat
}

// plan validates the sampling parameters against a prompt of promptTokens.
func (s *Server) plan(p *samplingParams, promptTokens int) (*outputPlan, *apiError) {
	pl := &outputPlan{choices: 1, natural: s.cfg.OutputTokens, ignoreEOS: p.IgnoreEOS}
	if p.StreamOptions != nil && !p.Stream {
		return nil, badRequest("stream_options", "Stream options can only be defined when `stream=True`.")
	}
	if p.N != nil {
		if *p.N < 1 || *p.N > maxChoices {
			return nil, badRequest("n", fmt.Sprintf("n must be between 1 and %d, got %d.", maxChoices, *p.N))
		}
		pl.choices = int(*p.N)
	}
	limit, param := p.MaxTokens, "max_tokens"
	if p.MaxCompletionTokens != nil {
		limit, param = p.MaxCompletionTokens, "max_completion_tokens"
	}
	if limit != nil {
		if *limit < 1 {
			return nil, badRequest(param, fmt.Sprintf("%s must be at least 1, got %d.", param, *limit))
		}
		if int64(promptTokens)+*limit > MaxModelLen {
			return nil, badRequest(param, fmt.Sprintf(
				"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				MaxModelLen, int64(promptTokens)+*limit, promptTokens, *limit))
		}
		pl.limit = int(*limit)
	} else if promptTokens >= MaxModelLen {
		return nil, badRequest("", fmt.Sprintf(
			"This model's maximum context length is %d tokens. However, you requested %d tokens in the messages, Please reduce the length of the messages.",
			MaxModelLen, promptTokens))
	}
	if p.MinTokens != nil {
		if *p.MinTokens < 0 || pl.limit > 0 && *p.MinTokens > int64(pl.limit) {
			return nil, badRequest("min_tokens", fmt.Sprintf("min_tokens must be at least 0 and at most max_tokens, got %d.", *p.MinTokens))
		}
		pl.natural = max(pl.natural, int(min(*p.MinTokens, MaxModelLen)))
	}
	if pl.ignoreEOS && pl.limit > 0 {
		pl.natural = pl.limit
	}
	format, err := parseStructuredFormat(p)
	if err != nil {
		return nil, err
	}
	pl.format = format
	return pl, nil
}

// generate produces choice i for the request hashed as h.
func (pl *outputPlan) generate(h requestHash, i int) (output, *apiError) {
	rng := h.rng(uint64(i))
	out := output{index: i, finish: "stop"}
	if pl.format == nil {
		out.tokens = pl.natural
		if pl.limit > 0 && (pl.limit < pl.natural || pl.ignoreEOS) {
			out.tokens = pl.limit
			out.finish = "length"
		}
		out.text = string(writeText(make([]byte, 0, out.tokens*7), rng, pl.natural, out.tokens))
		return out, nil
	}
	text, err := pl.format.generate(rng)
	if err != nil {
		return out, err
	}
	out.text, out.tokens = text, CountTokens(text)
	if pl.limit > 0 && out.tokens > pl.limit {
		// Like a real model, a too-small max_tokens cuts the JSON short.
		out.text, out.tokens, out.finish = truncateTokens(text, pl.limit), pl.limit, "length"
	}
	return out, nil
}

// serveGeneration answers a validated request: fault injection, a slot in
// the queue, the generation time, then the response or the stream.
func (s *Server) serveGeneration(w http.ResponseWriter, r *http.Request, g *generation) {
	if s.injectFault(w, r, g.route) {
		return
	}
	ctx := r.Context()
	if g.stream {
		// vLLM's streaming responses send their headers at once, before
		// the request is scheduled; the first event comes at TTFT.
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
	}
	if err := s.slots.acquire(ctx); err != nil {
		s.cancel(g.route)
		return
	}
	held := true
	release := func() {
		if held {
			held = false
			s.slots.release()
		}
	}
	defer release()

	if g.stream {
		s.stream(ctx, w, g, release)
		return
	}
	if err := s.hold(ctx, s.ttft+time.Duration(g.longest())*s.tpot); err != nil {
		s.cancel(g.route)
		return
	}
	release()
	switch {
	case g.responses != nil:
		writeJSON(w, http.StatusOK, s.responseObject(g))
	case g.chat:
		writeJSON(w, http.StatusOK, s.chatCompletionResponse(g))
	default:
		writeJSON(w, http.StatusOK, s.completionResponse(g))
	}
	s.complete(g.route, g.promptTokens, g.completionTokens())
}

// stream sends the choices as server-sent events once the request holds a
// slot: the first chunk at TTFT, then one token per choice every TPOT, the
// finish reason with each choice's last token, the usage chunk if asked for,
// and "data: [DONE]".
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, g *generation, release func()) {
	pieces := make([][]string, len(g.outputs))
	steps := 0
	for i, o := range g.outputs {
		pieces[i] = splitTokens(o.text)
		if len(pieces[i]) == 0 {
			pieces[i] = []string{o.text}
		}
		steps = max(steps, len(pieces[i]))
	}

	object, prefix := "text_completion", "cmpl-"
	if g.chat {
		object, prefix = "chat.completion.chunk", "chatcmpl-"
	}
	id := s.newID(prefix)
	// Every chunk starts the same way.
	var head []byte
	head = append(head, `data: {"id":`...)
	head = appendJSONString(head, id)
	head = append(head, `,"object":`...)
	head = appendJSONString(head, object)
	head = append(head, `,"created":`...)
	head = strconv.AppendInt(head, time.Now().Unix(), 10)
	head = append(head, `,"model":`...)
	head = appendJSONString(head, g.model)
	head = append(head, `,"choices":[`...)

	rc := http.NewResponseController(w)

	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	wait := func(at time.Duration) error {
		d := at - time.Since(start)
		if d <= 0 {
			return ctx.Err()
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	buf := make([]byte, 0, 512)
	for step := range steps {
		var err error
		if step == 0 && s.holdHook != nil {
			err = s.holdHook(ctx)
		} else if s.holdHook == nil {
			err = wait(s.ttft + time.Duration(step)*s.tpot)
		}
		if err != nil {
			s.cancel(g.route)
			return
		}
		buf = buf[:0]
		for i, o := range g.outputs {
			if step == 0 && g.chat {
				buf = appendChunk(buf, head, o.index, true, `{"role":"assistant","content":""}`, "")
			}
			if step >= len(pieces[i]) {
				continue
			}
			finish := ""
			if step == len(pieces[i])-1 {
				finish = o.finish
			}
			var content []byte
			if g.chat {
				content = append(appendJSONString(append(content, `{"content":`...), pieces[i][step]), '}')
			} else {
				content = appendJSONString(content, pieces[i][step])
			}
			buf = appendChunk(buf, head, o.index, g.chat, string(content), finish)
		}
		if _, err := w.Write(buf); err != nil {
			s.cancel(g.route)
			return
		}
		if s.tpot > 0 || step == steps-1 {
			_ = rc.Flush()
		}
	}
	release()

	buf = buf[:0]
	completion := g.completionTokens()
	if g.includeUsage {
		buf = append(buf, head...)
		buf = append(buf, `],"usage":{"prompt_tokens":`...)
		buf = strconv.AppendInt(buf, int64(g.promptTokens), 10)
		buf = append(buf, `,"total_tokens":`...)
		buf = strconv.AppendInt(buf, int64(g.promptTokens+completion), 10)
		buf = append(buf, `,"completion_tokens":`...)
		buf = strconv.AppendInt(buf, int64(completion), 10)
		buf = append(buf, "}}\n\n"...)
	}
	buf = append(buf, "data: [DONE]\n\n"...)
	if _, err := w.Write(buf); err != nil {
		s.cancel(g.route)
		return
	}
	_ = rc.Flush()
	s.complete(g.route, g.promptTokens, completion)
}

// appendChunk appends one server-sent event with one choice. For chat, delta
// is the JSON delta object; for completions, the JSON text string.
func appendChunk(buf, head []byte, index int, chat bool, delta, finish string) []byte {
	buf = append(buf, head...)
	buf = append(buf, `{"index":`...)
	buf = strconv.AppendInt(buf, int64(index), 10)
	if chat {
		buf = append(buf, `,"delta":`...)
	} else {
		buf = append(buf, `,"text":`...)
	}
	buf = append(buf, delta...)
	buf = append(buf, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		buf = append(buf, "null"...)
	} else {
		buf = appendJSONString(buf, finish)
		buf = append(buf, `,"stop_reason":null`...)
	}
	return append(buf, "}]}\n\n"...)
}

// usage is the usage object of responses.
type usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	PromptTokensDetails     *promptTokensDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails *completionTokensDetails `json:"completion_tokens_details,omitempty"`
}

type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type completionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

func (s *Server) usage(g *generation) usage {
	c := g.completionTokens()
	u := usage{PromptTokens: g.promptTokens, TotalTokens: g.promptTokens + c, CompletionTokens: c}
	if s.cfg.CachedShare > 0 {
		u.PromptTokensDetails = &promptTokensDetails{CachedTokens: s.cachedTokens(g.promptTokens)}
	}
	if s.cfg.ReasoningShare > 0 {
		u.CompletionTokensDetails = &completionTokensDetails{ReasoningTokens: s.reasoningTokens(c)}
	}
	return u
}

// cachedTokens is how many of prompt tokens the simulator reports as read
// from its prompt cache.
func (s *Server) cachedTokens(prompt int) int { return int(float64(prompt) * s.cfg.CachedShare) }

// reasoningTokens is how many of completion tokens the simulator reports
// as reasoning.
func (s *Server) reasoningTokens(completion int) int {
	return int(float64(completion) * s.cfg.ReasoningShare)
}
