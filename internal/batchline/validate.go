package batchline

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
)

// ValidateOpts are the limits of Validate.
type ValidateOpts struct {
	Endpoint    string
	MaxLineSize int
	MaxRequests int
	// MaxProblems is how many problems are reported one by one; the rest
	// are counted in one last problem. Default: 100.
	MaxProblems int
	// ShardSize is the most requests per shard. Default: 500.
	ShardSize int
	// Model, when set, is the model every request must name.
	Model string
}

// Span is a shard: a run of consecutive lines holding at most ShardSize
// requests, which an agent reads from Offset.
type Span struct {
	FirstLine, LastLine int   // physical line numbers, from 1, inclusive
	Offset              int64 // byte offset of FirstLine
	Requests            int
}

// Summary is what Validate learned of a valid file.
type Summary struct {
	Requests int
	Model    string
	Shards   []Span
	// SchemaName is the first request's response_format.json_schema.name
	// (text.format.name for /v1/responses), which tells a conquest batch's
	// type; "" when it has none.
	SchemaName string
	// InputTokens estimates the requests' input tokens, for enqueued-token
	// limits: kiln has no tokenizer of the model, so it counts a token for
	// every BytesPerToken bytes of each request's body.
	InputTokens int64
}

// BytesPerToken is how many bytes of a request's body count as one input
// token in Summary.InputTokens: about four characters of English text make
// a token in the tokenizers of the models kiln runs.
const BytesPerToken = 4

type idAt struct {
	hash uint64
	line int
}

// Validate reads an input file once as a stream and checks every line. Its
// memory grows by 16 bytes per request (a hash and a line number, to find
// duplicate custom_ids), never with line or file size. open reopens the
// stream: it is called a second time only to confirm duplicates when two
// custom_ids share a hash.
func Validate(open func() (io.ReadCloser, error), o ValidateOpts) (Summary, []Problem, error) {
	o.MaxProblems = cmp.Or(o.MaxProblems, 100)
	o.ShardSize = cmp.Or(o.ShardSize, 500)
	var (
		sum      Summary
		problems []Problem
		more     int
		ids      []idAt
		seed     = maphash.MakeSeed()
	)
	report := func(p Problem) {
		if len(problems) < o.MaxProblems {
			problems = append(problems, p)
		} else {
			more++
		}
	}
	r, err := open()
	if err != nil {
		return sum, nil, err
	}
	sum.Model = o.Model
	sc := NewScanner(r, o.MaxLineSize)
	for sc.Next() {
		if sc.TooLong() {
			report(Problem{Code: CodeLineTooLong, Line: sc.Line(), Message: fmt.Sprintf("line is longer than %d bytes", o.MaxLineSize)})
			continue
		}
		if Blank(sc.Bytes()) {
			continue
		}
		// Most lines take the fast path, which allocates nothing.
		in, ok := scanInput(sc.Bytes(), o.Endpoint)
		if !ok {
			full, model, p := parseInputJSON(sc.Bytes(), o.Endpoint)
			if p != nil {
				p.Line = sc.Line()
				report(*p)
				continue
			}
			in = inputView{customID: []byte(full.CustomID), body: full.Body, model: []byte(model)}
		}
		sum.Requests++
		sum.InputTokens += int64(len(in.body)+BytesPerToken-1) / BytesPerToken
		if sum.Requests == 1 {
			sum.SchemaName = schemaName(in.body)
		}
		if n := len(sum.Shards); n == 0 || sum.Shards[n-1].Requests == o.ShardSize {
			sum.Shards = append(sum.Shards, Span{FirstLine: sc.Line(), Offset: sc.Offset()})
		}
		last := &sum.Shards[len(sum.Shards)-1]
		last.LastLine = sc.Line()
		last.Requests++
		if sum.Model == "" {
			sum.Model = string(in.model)
		} else if string(in.model) != sum.Model {
			report(Problem{Code: CodeMismatchedModel, Line: sc.Line(), Param: "body.model",
				Message: fmt.Sprintf("model %q differs from the batch's model %q (a batch holds one model)", in.model, sum.Model)})
		}
		ids = append(ids, idAt{maphash.Bytes(seed, in.customID), sc.Line()})
	}
	_ = r.Close()
	if err := sc.Err(); err != nil {
		return sum, nil, err
	}
	if sum.Requests > o.MaxRequests {
		report(Problem{Code: CodeTooManyRequests, Message: fmt.Sprintf("the file holds %d requests; a batch holds at most %d", sum.Requests, o.MaxRequests)})
	}
	if sum.Requests == 0 && len(problems) == 0 {
		report(Problem{Code: CodeEmptyFile, Message: "the file holds no requests"})
	}
	dups, moreDups, err := duplicates(open, ids, seed, o)
	if err != nil {
		return sum, nil, err
	}
	// The first problems by line are reported, whatever pass found them.
	// Each pass kept its first MaxProblems in line order, so these are the
	// first MaxProblems of both together.
	problems = append(problems, dups...)
	slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	more += moreDups
	if len(problems) > o.MaxProblems {
		more += len(problems) - o.MaxProblems
		problems = problems[:o.MaxProblems]
	}
	if more > 0 {
		problems = append(problems, Problem{Code: CodeMoreErrors, Message: fmt.Sprintf("%d more problems were not listed", more)})
	}
	return sum, problems, nil
}

// duplicates finds custom_ids used more than once. Hashes narrow the search;
// a second pass over only the colliding lines confirms it exactly. It returns
// the first o.MaxProblems duplicates in line order and counts the rest.
func duplicates(open func() (io.ReadCloser, error), ids []idAt, seed maphash.Seed, o ValidateOpts) ([]Problem, int, error) {
	slices.SortFunc(ids, func(a, b idAt) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.line, b.line))
	})
	suspect := map[int]bool{}
	for i := 1; i < len(ids); i++ {
		if ids[i].hash == ids[i-1].hash {
			suspect[ids[i-1].line] = true
			suspect[ids[i].line] = true
		}
	}
	if len(suspect) == 0 {
		return nil, 0, nil
	}
	r, err := open()
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	first := map[string]int{}
	var out []Problem
	more := 0
	sc := NewScanner(r, o.MaxLineSize)
	for sc.Next() {
		if !suspect[sc.Line()] {
			continue
		}
		in, _, _ := ParseInput(sc.Bytes(), o.Endpoint)
		if at, ok := first[in.CustomID]; ok {
			if len(out) == o.MaxProblems {
				more++
				continue
			}
			out = append(out, Problem{Code: CodeDuplicateCustomID, Line: sc.Line(), Param: "custom_id",
				Message: fmt.Sprintf("custom_id %q is already used on line %d", in.CustomID, at)})
			continue
		}
		first[in.CustomID] = sc.Line()
	}
	return out, more, sc.Err()
}

// schemaName is a request body's response_format.json_schema.name, or
// for the Responses API its text.format.name.
func schemaName(body json.RawMessage) string {
	var b struct {
		ResponseFormat *struct {
			JSONSchema *struct {
				Name string `json:"name"`
			} `json:"json_schema"`
		} `json:"response_format"`
		Text *struct {
			Format *struct {
				Type string `json:"type"`
				Name string `json:"name"`
			} `json:"format"`
		} `json:"text"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	switch {
	case b.ResponseFormat != nil && b.ResponseFormat.JSONSchema != nil:
		return b.ResponseFormat.JSONSchema.Name
	case b.Text != nil && b.Text.Format != nil && b.Text.Format.Type == "json_schema":
		return b.Text.Format.Name
	}
	return ""
}
