package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// kiln's extensions of the Batch API on the command line: tail a batch's
// results as they become durable, retry its failed requests, and merge a
// chain of retries. The routes are api/batch_results.go's.

type batchTailCmd struct {
	clientFlags `embed:""`
	ID          string `arg:"" help:"The batch's ID."`
	After       string `help:"Start after this cursor (the one a stopped tail printed); default: the first line."`
}

// resultsPage is how many lines the CLI asks for at once: a page is held
// in memory until it has arrived whole, so that a cut answer is asked for
// again and never printed twice.
const resultsPage = 2000

// resultsWait is how long one request waits for new lines (the server
// allows up to a minute).
const resultsWait = 30

// Run prints the batch's result lines as they become durable, each once,
// until the batch ends.
func (c *batchTailCmd) Run(e *env) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	after, n := c.After, int64(0)
	for {
		page, err := resultsOnce(e.ctx, cl, c.ID, after, resultsWait)
		if err != nil {
			if e.ctx.Err() != nil {
				fmt.Fprintf(e.stderr, "\nstopped after %d lines; batch %s goes on. Go on from here with:\n\n    kiln batch tail %s --after %s\n", n, c.ID, c.ID, after)
				return errInterrupted
			}
			return c.explain(err)
		}
		if _, err := e.stdout.Write(page.body); err != nil {
			return err
		}
		n += page.lines
		after = page.next
		if page.done {
			fmt.Fprintf(e.stderr, "batch %s %s: %d lines\n", c.ID, page.status, n)
			return nil
		}
	}
}

// resultsAnswer is one answer of GET /v1/batches/{id}/results, whole.
type resultsAnswer struct {
	body   []byte
	lines  int64
	next   string
	done   bool
	status string
}

// errShortAnswer is an answer with fewer lines than it announced.
var errShortAnswer = errors.New("answer cut short")

// resultsOnce reads one page of results after the cursor, waiting up to
// wait seconds for a line. A page cut short is asked for again.
func resultsOnce(ctx context.Context, cl *openai.Client, id, after string, wait int) (resultsAnswer, error) {
	for attempt := 0; ; attempt++ {
		a, err := resultsPageOf(ctx, cl, id, after, wait)
		if errors.Is(err, errShortAnswer) && attempt < 5 && ctx.Err() == nil {
			continue
		}
		return a, err
	}
}

func resultsPageOf(ctx context.Context, cl *openai.Client, id, after string, wait int) (resultsAnswer, error) {
	var resp *http.Response
	err := cl.Get(ctx, "batches/"+id+"/results", nil, &resp, option.WithQuery("after", after),
		option.WithQuery("limit", strconv.Itoa(resultsPage)), option.WithQuery("wait", strconv.Itoa(wait)))
	if err != nil {
		return resultsAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resultsAnswer{}, fmt.Errorf("%w: %w", errShortAnswer, err)
	}
	a := resultsAnswer{body: body, next: resp.Header.Get("Kiln-Next-After"), done: resp.Header.Get("Kiln-Results-Done") == "true",
		status: resp.Header.Get("Kiln-Batch-Status")}
	a.lines, err = strconv.ParseInt(resp.Header.Get("Kiln-Result-Lines"), 10, 64)
	if err != nil || a.next == "" {
		return resultsAnswer{}, fmt.Errorf("batch %s: the answer lacks kiln's results headers (Kiln-Result-Lines, Kiln-Next-After): is the server a kiln?", id)
	}
	if got := int64(bytes.Count(body, []byte("\n"))); got != a.lines {
		return resultsAnswer{}, fmt.Errorf("%w: %d of %d lines", errShortAnswer, got, a.lines)
	}
	return a, nil
}

type batchRetryCmd struct {
	clientFlags `embed:""`
	ID          string            `arg:"" help:"The ended batch whose failed requests to retry."`
	Code        []string          `help:"Retry only error lines matching one of these: batch_expired, batch_cancelled, request_timeout, an HTTP status (429) or class (5xx), or the answer's error code (model_not_found). Repeatable; default: every failed request."`
	Window      string            `help:"The retry's completion window; default: the batch's."`
	Metadata    map[string]string `help:"The retry's metadata key=value pairs; default: the batch's. It gains retry_of either way."`
	Wait        bool              `help:"Wait for the retry to end, showing its progress."`
}

// Run makes a batch of the failed requests and prints its ID.
func (c *batchRetryCmd) Run(e *env) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	body := map[string]any{}
	if len(c.Code) > 0 {
		body["codes"] = c.Code
	}
	if c.Window != "" {
		body["completion_window"] = c.Window
	}
	if len(c.Metadata) > 0 {
		body["metadata"] = c.Metadata
	}
	var b batchState
	if err := cl.Post(e.ctx, "batches/"+c.ID+"/retry", body, &b); err != nil {
		return c.explain(err)
	}
	fmt.Fprintf(e.stderr, "batch %s created (%s) to retry the failed requests of batch %s\n", b.ID, b.Status, c.ID)
	fmt.Fprintln(e.stdout, b.ID)
	if !c.Wait {
		return nil
	}
	return c.explain(follow(e, c.clientFlags, cl, b.ID))
}

// downloadPartial writes the batch's durable result lines now to path.
func downloadPartial(e *env, cl *openai.Client, id, path string) error {
	tmp := path + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	after, n := "", int64(0)
	var last resultsAnswer
	for {
		page, err := resultsOnce(e.ctx, cl, id, after, 0)
		if err != nil {
			out.Close()
			return err
		}
		if _, err := out.Write(page.body); err != nil {
			out.Close()
			return err
		}
		n += page.lines
		after, last = page.next, page
		if page.done || page.lines == 0 {
			break
		}
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if last.done {
		fmt.Fprintf(e.stderr, "batch %s %s: all %d result lines\n", id, last.status, n)
	} else {
		fmt.Fprintf(e.stderr, "batch %s %s: %d result lines so far; follow the rest with:\n\n    kiln batch tail %s --after %s\n\n", id, last.status, n, id, after)
	}
	fmt.Fprintln(e.stdout, path)
	return nil
}

// lineage is GET /v1/batches/{id}/lineage.
type lineage struct {
	Data []struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		OutputFileID string `json:"output_file_id"`
		ErrorFileID  string `json:"error_file_id"`
	} `json:"data"`
	RequestCounts struct {
		Total, Completed, Failed int64
	} `json:"request_counts"`
}

// downloadMerged writes one file with each custom_id of the batch's chain
// of retries once: its newest success, or else its newest failure.
func downloadMerged(e *env, cl *openai.Client, id, path string) error {
	var l lineage
	if err := cl.Get(e.ctx, "batches/"+id+"/lineage", nil, &l); err != nil {
		return err
	}
	tmp := path + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(out, 1<<20)
	seen := map[string]bool{}
	var lines [2]int64
	// Successes first, newest batch first; then failures, newest first:
	// a request's newest success wins over any failure.
	for kind := range 2 {
		for i := len(l.Data) - 1; i >= 0; i-- {
			b := l.Data[i]
			fileID := b.OutputFileID
			if kind == 1 {
				fileID = b.ErrorFileID
			}
			if fileID == "" {
				continue
			}
			n, err := keepFirst(e.ctx, cl, fileID, seen, w)
			if err != nil {
				out.Close()
				return fmt.Errorf("batch %s: %w", b.ID, err)
			}
			lines[kind] += n
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d batches merged: %d requests, %d succeeded, %d failed\n", len(l.Data), lines[0]+lines[1], lines[0], lines[1])
	if newest := l.Data[len(l.Data)-1]; !ended(openai.BatchStatus(newest.Status)) {
		fmt.Fprintf(e.stderr, "batch %s of the chain is still %s: merge again once it has ended\n", newest.ID, newest.Status)
	}
	fmt.Fprintln(e.stdout, path)
	return nil
}

// keepFirst copies the lines of a file whose custom_id is not in seen to
// w, adding them to seen, and counts them.
func keepFirst(ctx context.Context, cl *openai.Client, fileID string, seen map[string]bool, w io.Writer) (int64, error) {
	resp, err := cl.Files.Content(ctx, fileID)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 1<<20)
	var n int64
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var l struct {
				CustomID string `json:"custom_id"`
			}
			if jerr := json.Unmarshal(line, &l); jerr != nil {
				return n, fmt.Errorf("file %s: %w", fileID, jerr)
			}
			if !seen[l.CustomID] {
				seen[l.CustomID] = true
				if line[len(line)-1] != '\n' {
					line = append(line, '\n')
				}
				if _, werr := w.Write(line); werr != nil {
					return n, werr
				}
				n++
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("file %s: %w", fileID, err)
		}
	}
}

// resultsPath is where download writes a batch's partial or merged file.
func resultsPath(dir, id, kind string) string { return filepath.Join(dir, id+"_"+kind+".jsonl") }
