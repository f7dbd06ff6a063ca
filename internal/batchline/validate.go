package batchline

import (
	"cmp"
	"container/heap"
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

	runLen int                               // pairs kept in memory before a spill; tests shrink it. Default: idRunLen.
	hash   func(maphash.Seed, []byte) uint64 // hashes a custom_id; tests make it collide. Default: maphash.Bytes.
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

// Validate reads an input file once as a stream and checks every line. Its
// memory is bounded whatever the file's size or its lines': to find
// duplicate custom_ids it keeps a hash and a line number per request, 16
// bytes, up to idRunLen of them, and spills the rest to a temporary file
// (os.TempDir) in sorted runs that it merges. open reopens the stream: it
// is called again only to confirm duplicates when custom_ids share a hash.
func Validate(open func() (io.ReadCloser, error), o ValidateOpts) (Summary, []Problem, error) {
	o.MaxProblems = cmp.Or(o.MaxProblems, 100)
	o.ShardSize = cmp.Or(o.ShardSize, 500)
	o.runLen = cmp.Or(o.runLen, idRunLen)
	if o.hash == nil {
		o.hash = maphash.Bytes
	}
	var (
		sum      Summary
		problems []Problem
		more     int
		seed     = maphash.MakeSeed()
		ids      = newDupFinder(o.runLen)
	)
	defer ids.close()
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
		in, p, ok := validLine(sc, o.Endpoint)
		if p != nil {
			report(*p)
		}
		if !ok {
			continue
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
		if err := ids.add(o.hash(seed, in.customID), sc.Line()); err != nil {
			_ = r.Close()
			return sum, nil, err
		}
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
	dups, moreDups, err := duplicates(open, ids, o)
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

// validLine checks the scanner's line: ok when it is a request, with its
// fields, else the problem it has, if any (a blank line has none).
func validLine(sc *Scanner, endpoint string) (in inputView, p *Problem, ok bool) {
	if sc.TooLong() {
		return in, &Problem{Code: CodeLineTooLong, Line: sc.Line(), Message: fmt.Sprintf("line is longer than %d bytes", sc.max)}, false
	}
	if Blank(sc.Bytes()) {
		return in, nil, false
	}
	// Most lines take the fast path, which allocates nothing.
	if in, ok = scanInput(sc.Bytes(), endpoint); ok {
		return in, nil, true
	}
	full, model, p := parseInputJSON(sc.Bytes(), endpoint)
	if p != nil {
		p.Line = sc.Line()
		return in, p, false
	}
	return inputView{customID: []byte(full.CustomID), body: full.Body, model: []byte(model)}, nil, true
}

// dupCandidate is a line whose custom_id has the hash of an earlier
// line's, first: a duplicate, once their custom_ids are seen to match.
type dupCandidate struct{ line, first int }

// duplicates finds custom_ids used more than once. Sorted hashes bring the
// lines that share one together; the first o.MaxProblems of those after
// the first of their hash are read again to confirm that their custom_ids
// match exactly, and the rest are counted. Should two custom_ids share a
// hash among those read again, the file is hashed again with another seed
// and searched anew. It returns the duplicates in line order and how many
// more there are.
func duplicates(open func() (io.ReadCloser, error), ids *dupFinder, o ValidateOpts) ([]Problem, int, error) {
	rehashed := false // ids is hashIDs's, to close here
	for {
		out, more, ok, err := confirmDuplicates(open, ids, o)
		if rehashed {
			ids.close()
		}
		if err != nil || ok {
			return out, more, err
		}
		if ids, err = hashIDs(open, o); err != nil {
			return nil, 0, err
		}
		rehashed = true
	}
}

// confirmDuplicates is one search of duplicates: not ok when two
// custom_ids it read again only share a hash.
func confirmDuplicates(open func() (io.ReadCloser, error), ids *dupFinder, o ValidateOpts) (out []Problem, more int, ok bool, err error) {
	var (
		kept  dupHeap // the first o.MaxProblems candidates by line, the last on top
		total int
		prev  idAt
		first = -1
	)
	err = ids.each(func(x idAt) error {
		if first < 0 || x.hash != prev.hash {
			first, prev = x.line, x
			return nil
		}
		total++
		c := dupCandidate{line: x.line, first: first}
		switch {
		case len(kept) < o.MaxProblems:
			heap.Push(&kept, c)
		case c.line < kept[0].line:
			kept[0] = c
			heap.Fix(&kept, 0)
		}
		return nil
	})
	if err != nil || total == 0 {
		return nil, 0, true, err
	}
	customIDs := map[int]string{}
	for _, c := range kept {
		customIDs[c.line], customIDs[c.first] = "", ""
	}
	r, err := open()
	if err != nil {
		return nil, 0, false, err
	}
	defer r.Close()
	sc := NewScanner(r, o.MaxLineSize)
	for sc.Next() {
		if _, want := customIDs[sc.Line()]; want {
			in, _, _ := ParseInput(sc.Bytes(), o.Endpoint)
			customIDs[sc.Line()] = in.CustomID
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, false, err
	}
	slices.SortFunc(kept, func(a, b dupCandidate) int { return cmp.Compare(a.line, b.line) })
	for _, c := range kept {
		if customIDs[c.line] != customIDs[c.first] {
			return nil, 0, false, nil
		}
		out = append(out, Problem{Code: CodeDuplicateCustomID, Line: c.line, Param: "custom_id",
			Message: fmt.Sprintf("custom_id %q is already used on line %d", customIDs[c.line], c.first)})
	}
	return out, total - len(kept), true, nil
}

// hashIDs reads the file again and hashes the custom_id of every request
// with a new seed.
func hashIDs(open func() (io.ReadCloser, error), o ValidateOpts) (*dupFinder, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	seed, ids := maphash.MakeSeed(), newDupFinder(o.runLen)
	sc := NewScanner(r, o.MaxLineSize)
	for sc.Next() {
		if in, _, ok := validLine(sc, o.Endpoint); ok {
			if err := ids.add(o.hash(seed, in.customID), sc.Line()); err != nil {
				ids.close()
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		ids.close()
		return nil, err
	}
	return ids, nil
}

// dupHeap is a max-heap of candidates by line.
type dupHeap []dupCandidate

func (h dupHeap) Len() int           { return len(h) }
func (h dupHeap) Less(i, j int) bool { return h[i].line > h[j].line }
func (h dupHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dupHeap) Push(x any)        { *h = append(*h, x.(dupCandidate)) }
func (h *dupHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
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
