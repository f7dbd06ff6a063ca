package cli

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/errgroup"
)

type batchCmd struct {
	Submit   batchSubmitCmd   `cmd:"" help:"Upload a JSONL file in parallel presigned parts and create a batch."`
	Wait     batchWaitCmd     `cmd:"" help:"Wait for a batch to end, showing its progress."`
	Download batchDownloadCmd `cmd:"" help:"Download a batch's output and error files (or, with --partial, the results durable so far; with --merged, its chain of retries as one file)."`
	Tail     batchTailCmd     `cmd:"" help:"Print a batch's result lines as they become durable, each once, until it ends."`
	Retry    batchRetryCmd    `cmd:"" help:"Make a new batch of an ended batch's failed requests."`
}

type batchSubmitCmd struct {
	clientFlags `embed:""`
	File        string            `arg:"" type:"existingfile" help:"The JSONL file of requests."`
	Endpoint    string            `default:"/v1/chat/completions" enum:"/v1/chat/completions,/v1/completions,/v1/embeddings" help:"The endpoint every request calls."`
	Model       string            `help:"Set body.model of every line to this model (rewrites the file as it uploads)."`
	Window      string            `default:"24h" help:"Completion window."`
	Priority    int64             `help:"Batch priority among batches of its model (kiln extension)."`
	Metadata    map[string]string `help:"Metadata key=value pairs."`
	PartSize    int64             `default:"67108864" help:"Bytes per part (at most the server's limit, 64 MiB by default)."`
	Parallel    int               `default:"4" help:"Parts uploaded at once."`
	Wait        bool              `help:"Wait for the batch to end, showing its progress."`
	MD5         bool              `name:"md5" help:"Also send the whole file's MD5 on completion, which the server checks by reading the file back. Each part's Content-MD5 is always sent and checked as it arrives."`
}

// minMultipartPart is the smallest part but the last of a multipart upload
// on S3: with smaller parts, the parts go up as objects of their own that
// the server copies together.
const minMultipartPart = 5 << 20

// Run uploads FILE through POST /v1/uploads with presigned parts (bytes go
// straight to object storage, each with its Content-MD5), completes the
// upload, creates
// the batch and, with --wait, follows it to the end.
func (c *batchSubmitCmd) Run(e *env) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return c.explain(c.run(e, cl))
}

func (c *batchSubmitCmd) run(e *env, cl *openai.Client) error {
	ctx := e.ctx
	path := c.File
	if c.Model != "" {
		tmp, err := rewriteModel(path, c.Model)
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		path = tmp
	}
	fileID, err := c.upload(ctx, e, cl, path)
	if err != nil {
		return err
	}
	body := map[string]any{"input_file_id": fileID, "endpoint": c.Endpoint, "completion_window": c.Window}
	if len(c.Metadata) > 0 {
		body["metadata"] = c.Metadata
	}
	if c.Priority != 0 {
		body["priority"] = c.Priority
	}
	var batch openai.Batch
	if err := cl.Post(ctx, "batches", body, &batch); err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	fmt.Fprintf(e.stderr, "batch %s created (%s)\n", batch.ID, batch.Status)
	fmt.Fprintln(e.stdout, batch.ID)
	if !c.Wait {
		return nil
	}
	return follow(e, c.clientFlags, cl, batch.ID)
}

type presigned struct {
	Data []struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	} `json:"data"`
}

func (c *batchSubmitCmd) upload(ctx context.Context, e *env, cl *openai.Client, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := st.Size()
	if size == 0 {
		return "", errors.New("the file is empty")
	}
	if c.PartSize < 1 {
		return "", fmt.Errorf("--part-size must be positive, got %d", c.PartSize)
	}
	var up struct {
		ID string `json:"id"`
	}
	if err := cl.Post(ctx, "uploads", map[string]any{"bytes": size, "filename": filepath.Base(path),
		"mime_type": "application/jsonl", "purpose": "batch"}, &up); err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	parts := int((size + c.PartSize - 1) / c.PartSize)
	multipart := parts == 1 || c.PartSize >= minMultipartPart
	var urls presigned
	for len(urls.Data) < parts { // the server presigns at most 1,000 parts a call
		var more presigned
		n := min(parts-len(urls.Data), 1000)
		if err := cl.Post(ctx, "uploads/"+up.ID+"/parts/presigned", map[string]any{"count": n, "multipart": multipart}, &more); err != nil {
			return "", fmt.Errorf("presign parts: %w", err)
		}
		if len(more.Data) != n {
			return "", fmt.Errorf("presign parts: asked %d URLs, got %d", n, len(more.Data))
		}
		urls.Data = append(urls.Data, more.Data...)
	}
	bar := newBar(e.stderr, size, "upload", true)
	hc := &http.Client{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.Parallel, 1))
	for i, p := range urls.Data {
		off := int64(i) * c.PartSize
		n := min(c.PartSize, size-off)
		g.Go(func() error {
			h := md5.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
				return err
			}
			body := io.TeeReader(io.NewSectionReader(f, off, n), bar)
			req, err := http.NewRequestWithContext(gctx, http.MethodPut, p.URL, body)
			if err != nil {
				return err
			}
			req.ContentLength = n
			req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("part %d: %w", i+1, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				return fmt.Errorf("part %d: %s: %s", i+1, resp.Status, bytes.TrimSpace(msg))
			}
			return nil
		})
	}
	sum := md5.New()
	var sumErr error
	var wg sync.WaitGroup
	if c.MD5 {
		wg.Go(func() { // the MD5 reads the file once more, beside the uploads
			_, sumErr = io.Copy(sum, io.NewSectionReader(f, 0, size))
		})
	}
	err = g.Wait()
	wg.Wait()
	if err != nil {
		_ = bar.Exit()
		_ = cl.Post(context.WithoutCancel(ctx), "uploads/"+up.ID+"/cancel", nil, nil)
		return "", err
	}
	_ = bar.Finish()
	if sumErr != nil {
		return "", sumErr
	}
	ids := make([]string, len(urls.Data))
	for i, p := range urls.Data {
		ids[i] = p.ID
	}
	var done struct {
		Status string `json:"status"`
		File   *struct {
			ID string `json:"id"`
		} `json:"file"`
	}
	completeBody := map[string]any{"part_ids": ids}
	if c.MD5 {
		completeBody["md5"] = hex.EncodeToString(sum.Sum(nil))
	}
	if err := cl.Post(ctx, "uploads/"+up.ID+"/complete", completeBody, &done); err != nil {
		return "", fmt.Errorf("complete upload: %w", err)
	}
	if done.File == nil {
		return "", fmt.Errorf("complete upload: status %s and no file", done.Status)
	}
	fmt.Fprintf(e.stderr, "uploaded %s as %s\n", filepath.Base(c.File), done.File.ID)
	return done.File.ID, nil
}

// rewriteModel copies a JSONL file with body.model set on every line.
func rewriteModel(path, model string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp("", "kiln-submit-*.jsonl")
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for line := 1; ; line++ {
		var req map[string]any
		if err := dec.Decode(&req); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			out.Close()
			os.Remove(out.Name())
			return "", fmt.Errorf("%s: request %d: %w", path, line, err)
		}
		body, _ := req["body"].(map[string]any)
		if body == nil {
			body = map[string]any{}
			req["body"] = body
		}
		body["model"] = model
		if err := enc.Encode(req); err != nil {
			out.Close()
			os.Remove(out.Name())
			return "", err
		}
	}
	return out.Name(), out.Close()
}

// batchState is what follow shows of a batch: OpenAI's batch and kiln's
// status_message, which says why a batch in progress waits.
type batchState struct {
	openai.Batch
	StatusMessage string
}

// UnmarshalJSON reads both parts: the embedded Batch's own UnmarshalJSON
// would otherwise take the whole and drop status_message.
func (b *batchState) UnmarshalJSON(data []byte) error {
	if err := b.Batch.UnmarshalJSON(data); err != nil {
		return err
	}
	var kiln struct {
		StatusMessage *string `json:"status_message"`
	}
	if err := json.Unmarshal(data, &kiln); err != nil {
		return err
	}
	b.StatusMessage = ""
	if kiln.StatusMessage != nil {
		b.StatusMessage = *kiln.StatusMessage
	}
	return nil
}

// ended says whether a batch's status is final.
func ended(status openai.BatchStatus) bool {
	switch status {
	case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
		return true
	}
	return false
}

// follow shows a batch's progress until it ends: counts, rate, ETA and why
// it waits. Interrupted, it says that the batch goes on and how to wait
// for it again.
func follow(e *env, f clientFlags, cl *openai.Client, id string) error {
	ctx := e.ctx
	var bar *progressbar.ProgressBar
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	message := ""
	for {
		var b batchState
		if err := cl.Get(ctx, "batches/"+id, nil, &b); err != nil {
			if ctx.Err() != nil {
				return interrupted(e, f, id)
			}
			return err
		}
		if b.StatusMessage != message && b.StatusMessage != "" {
			if bar != nil {
				_ = bar.Clear()
			}
			fmt.Fprintf(e.stderr, "batch %s: %s\n", id, b.StatusMessage)
		}
		message = b.StatusMessage
		done := b.RequestCounts.Completed + b.RequestCounts.Failed
		if bar == nil && b.RequestCounts.Total > 0 {
			// The counts reach the total before the batch ends (finalizing):
			// the bar's line ends with the batch, not with the count.
			bar = newBar(e.stderr, b.RequestCounts.Total, "requests", false, progressbar.OptionSetPredictTime(false),
				progressbar.OptionOnCompletion(nil))
		}
		if bar != nil {
			desc := fmt.Sprintf("%s, %d failed", b.Status, b.RequestCounts.Failed)
			if el := time.Since(start).Seconds(); done > 0 && el > 0 && !ended(b.Status) {
				rate := float64(done) / el
				eta := time.Duration(float64(b.RequestCounts.Total-done) / rate * float64(time.Second))
				desc += fmt.Sprintf(", %.0f req/s, ETA %s", rate, eta.Round(time.Second))
			}
			bar.Describe(desc)
			_ = bar.Set64(done)
		}
		if ended(b.Status) {
			if bar != nil {
				fmt.Fprintln(e.stderr)
			}
			fmt.Fprintf(e.stderr, "batch %s %s in %s: %d completed, %d failed\n", id, b.Status,
				time.Since(start).Round(time.Second), b.RequestCounts.Completed, b.RequestCounts.Failed)
			for _, be := range b.Errors.Data {
				fmt.Fprintf(e.stderr, "  line %d: %s: %s\n", be.Line, be.Code, be.Message)
			}
			if b.Status != openai.BatchStatusCompleted {
				return fmt.Errorf("batch %s", b.Status)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return interrupted(e, f, id)
		case <-t.C:
		}
	}
}

// interrupted tells a user who stopped follow that the batch goes on.
func interrupted(e *env, f clientFlags, id string) error {
	fmt.Fprintln(e.stderr) // past the bar, or the ^C the terminal echoed
	resume := "kiln batch wait " + id
	if f.URL != defaultURL {
		resume += " --url " + f.URL
	}
	fmt.Fprintf(e.stderr, "stopped waiting; batch %s goes on in kiln. Wait for it again with:\n\n    %s\n", id, resume)
	return errInterrupted
}

type batchWaitCmd struct {
	clientFlags `embed:""`
	ID          string `arg:"" help:"The batch's ID."`
}

// Run follows a batch until it ends, as submit --wait does.
func (c *batchWaitCmd) Run(e *env) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return c.explain(follow(e, c.clientFlags, cl, c.ID))
}

type batchDownloadCmd struct {
	clientFlags `embed:""`
	ID          string `arg:"" help:"The batch's ID."`
	Dir         string `default:"." help:"Where to write BATCH_output.jsonl and BATCH_error.jsonl (made if missing)."`
	Partial     bool   `help:"Write the result lines durable now, output and error lines together, to BATCH_partial.jsonl, even while the batch runs." xor:"mode"`
	Merged      bool   `help:"Write one file, BATCH_merged.jsonl, of the batch's chain of retries: each custom_id once, its newest success or else its newest failure." xor:"mode"`
}

// Run downloads the batch's output and error files with a progress bar.
func (c *batchDownloadCmd) Run(e *env) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return c.explain(c.run(e, cl))
}

func (c *batchDownloadCmd) run(e *env, cl *openai.Client) error {
	ctx := e.ctx
	if c.Partial || c.Merged {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return err
		}
		if c.Partial {
			return downloadPartial(e, cl, c.ID, resultsPath(c.Dir, c.ID, "partial"))
		}
		return downloadMerged(e, cl, c.ID, resultsPath(c.Dir, c.ID, "merged"))
	}
	b, err := cl.Batches.Get(ctx, c.ID)
	if err != nil {
		return err
	}
	if b.OutputFileID == "" && b.ErrorFileID == "" {
		return fmt.Errorf("batch %s is %s and has no output yet", c.ID, b.Status)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct{ id, name string }{{b.OutputFileID, "output"}, {b.ErrorFileID, "error"}} {
		if f.id == "" {
			continue
		}
		path := filepath.Join(c.Dir, c.ID+"_"+f.name+".jsonl")
		if err := download(ctx, e, cl, f.id, path); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, path)
	}
	return nil
}

func download(ctx context.Context, e *env, cl *openai.Client, fileID, path string) error {
	meta, err := cl.Files.Get(ctx, fileID)
	if err != nil {
		return err
	}
	resp, err := cl.Files.Content(ctx, fileID)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := path + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bar := newBar(e.stderr, meta.Bytes, filepath.Base(path), true)
	n, err := io.Copy(io.MultiWriter(out, bar), resp.Body)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != meta.Bytes {
		err = fmt.Errorf("got %d of %d bytes", n, meta.Bytes)
	}
	if err != nil {
		if !bar.IsFinished() {
			_ = bar.Exit()
		}
		os.Remove(tmp)
		return fmt.Errorf("download %s: %w", fileID, err)
	}
	_ = bar.Finish()
	return os.Rename(tmp, path)
}
