package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/kilnhq/kiln/conquest_schemas/conquest"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/llmsim"
)

type conquestCmd struct {
	List  conquestListCmd  `cmd:"" help:"List the conquest types: newest version, every version, title."`
	Show  conquestShowCmd  `cmd:"" help:"Print a conquest type's definition (JSON)."`
	Build conquestBuildCmd `cmd:"" help:"Build batch input lines from data records, offline."`
	Demo  conquestDemoCmd  `cmd:"" help:"Run a whole kiln in-process and a batch of every type's sample data through it."`
}

// stdin is what "-" reads; tests replace it.
var stdin io.Reader = os.Stdin

// conquests loads the embedded definitions.
func conquests() (*conquest.Registry, error) {
	r, err := conquest.Load()
	if err != nil {
		return nil, fmt.Errorf("conquest schemas: %w", err)
	}
	return r, nil
}

// conquestDef looks up a type's version (0: the newest), with an error
// that lists what there is.
func conquestDef(r *conquest.Registry, id string, version int) (*conquest.Definition, error) {
	d, err := r.Get(id, version)
	switch {
	case errors.Is(err, conquest.ErrUnknownType):
		return nil, fmt.Errorf("unknown conquest type %q; the types are: %s", id, strings.Join(r.IDs(), ", "))
	case errors.Is(err, conquest.ErrUnknownVersion):
		vs := make([]string, 0)
		for _, v := range r.Versions(id) {
			vs = append(vs, strconv.Itoa(v))
		}
		return nil, fmt.Errorf("conquest type %s has no version %d; its versions are: %s", id, version, strings.Join(vs, ", "))
	}
	return d, err
}

type conquestListCmd struct{}

func (c *conquestListCmd) Run(e *env) error {
	r, err := conquests()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tVERSION\tVERSIONS\tTITLE")
	for _, d := range r.Latest() {
		vs := make([]string, 0)
		for _, v := range r.Versions(d.ID) {
			vs = append(vs, strconv.Itoa(v))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", d.ID, d.Version, strings.Join(vs, ","), d.Title)
	}
	return tw.Flush()
}

type conquestShowCmd struct {
	Type    string `arg:"" help:"The conquest type, e.g. cv_parsing."`
	Version int    `short:"v" default:"0" help:"The version; 0 is the newest."`
}

func (c *conquestShowCmd) Run(e *env) error {
	r, err := conquests()
	if err != nil {
		return err
	}
	d, err := conquestDef(r, c.Type, c.Version)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(out, '\n'))
	return err
}

type conquestBuildCmd struct {
	Type        string   `required:"" help:"The conquest type, e.g. cv_parsing (see kiln conquest list)."`
	Data        string   `required:"" help:"The data records, one JSON object per line; - reads stdin."`
	Version     int      `default:"0" help:"The type's version; 0 is the newest."`
	Model       string   `default:"google/gemma-3-4b-it" help:"The model every request names."`
	MaxTokens   int      `name:"max-tokens" default:"0" help:"max_tokens of every request; 0 leaves it to the server."`
	Temperature *float64 `help:"temperature of every request; unset leaves it to the server."`
	Out         string   `short:"o" default:"-" help:"Where to write the batch input lines; - is stdout."`
}

// Run writes one batch input line per good record, reports the others on
// stderr as FILE:LINE: field: message, and fails when any was left out.
func (c *conquestBuildCmd) Run(e *env) error {
	r, err := conquests()
	if err != nil {
		return err
	}
	d, err := conquestDef(r, c.Type, c.Version)
	if err != nil {
		return err
	}
	if c.MaxTokens < 0 {
		return fmt.Errorf("--max-tokens must be at least 0, got %d", c.MaxTokens)
	}
	var in io.Reader
	name := c.Data
	if c.Data == "-" {
		in, name = stdin, "<stdin>"
	} else {
		f, err := os.Open(c.Data)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var out io.Writer = e.stdout
	var file *os.File
	if c.Out != "-" {
		if file, err = os.Create(c.Out); err != nil {
			return err
		}
		defer file.Close()
		out = file
	}
	rep, err := d.Build(in, out, conquest.BuildOptions{Model: c.Model, MaxTokens: c.MaxTokens, Temperature: c.Temperature}, config.MaxLineBytesDefault)
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	left := reportRecords(e.stderr, name, rep)
	fmt.Fprintf(e.stderr, "built %d requests; %d records left out\n", rep.Requests, left)
	switch {
	case left > 0:
		return fmt.Errorf("%s: %d of %d records left out", name, left, rep.Requests+left)
	case rep.Requests == 0:
		return fmt.Errorf("%s holds no data record", name)
	}
	return nil
}

// reportRecords writes a build's record problems as name:LINE: field:
// message and returns how many records were left out.
func reportRecords(w io.Writer, name string, rep conquest.BuildReport) int {
	for _, p := range rep.Errors {
		if p.Field != "" {
			fmt.Fprintf(w, "%s:%d: %s: %s\n", name, p.Line, p.Field, p.Message)
		} else {
			fmt.Fprintf(w, "%s:%d: %s\n", name, p.Line, p.Message)
		}
	}
	if rep.MoreErrors > 0 {
		fmt.Fprintf(w, "%s: %d more records left out\n", name, rep.MoreErrors)
	}
	return len(rep.Errors) + rep.MoreErrors
}

type conquestDemoCmd struct {
	Dir      string        `help:"Keep kiln's database and files in DIR (default: a temporary folder, removed at the end)."`
	Keep     bool          `help:"Keep kiln serving after the demo, until Ctrl-C."`
	Samples  string        `default:"conquest_schemas/testdata" help:"The folder of sample data, <type>.jsonl per type."`
	Model    string        `default:"google/gemma-3-4b-it" help:"The model the requests name (one the simulator serves)."`
	Addr     string        `default:"127.0.0.1:0" help:"The API's listen address."`
	Timeout  time.Duration `default:"2m" help:"How long to wait for the batches and their checks."`
	LogLevel string        `name:"log-level" default:"error" enum:"debug,info,warn,error" help:"kiln's log level (logs go to stderr)."`
}

// demoBatch is one type's batch in the demo.
type demoBatch struct {
	typ      string
	requests int
	id       string
	state    demoState
}

// demoState is what the demo reads of a batch: the SDK's Batch lacks the
// conquest extension.
type demoState struct {
	Status        string `json:"status"`
	RequestCounts struct {
		Total     int64 `json:"total"`
		Completed int64 `json:"completed"`
		Failed    int64 `json:"failed"`
	} `json:"request_counts"`
	Conquest *struct {
		Type      string `json:"type"`
		Version   int64  `json:"version"`
		CheckedAt *int64 `json:"checked_at"`
		Valid     int64  `json:"valid"`
		Invalid   int64  `json:"invalid"`
		Error     string `json:"error"`
	} `json:"conquest"`
}

// done reports whether the batch ended and, if it completed, its outputs
// were checked.
func (s demoState) done() bool {
	switch s.Status {
	case "failed", "expired", "cancelled":
		return true
	case "completed":
		return s.Conquest == nil || s.Conquest.CheckedAt != nil || s.Conquest.Error != ""
	}
	return false
}

// Run starts kiln on SQLite, a folder and the built-in simulator, submits
// a batch per conquest type built from its sample data, waits for every
// batch and its conquest check, and prints what came back.
func (c *conquestDemoCmd) Run(e *env) error {
	ctx := e.ctx
	r, err := conquests()
	if err != nil {
		return err
	}
	// Build first: no kiln starts for samples that are not there.
	samples := map[string][]byte{}
	for _, d := range r.Latest() {
		path := filepath.Join(c.Samples, d.ID+".jsonl")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no sample data at %s: run the demo from kiln's repository root, or pass --samples DIR", path)
		} else if err != nil {
			return err
		}
		var built bytes.Buffer
		rep, err := d.Build(bytes.NewReader(data), &built, conquest.BuildOptions{Model: c.Model}, config.MaxLineBytesDefault)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if left := reportRecords(e.stderr, path, rep); left > 0 || rep.Requests == 0 {
			return fmt.Errorf("%s: %d records left out, %d built", path, left, rep.Requests)
		}
		samples[d.ID] = built.Bytes()
	}

	dir, where := c.Dir, "in %s"
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kiln-demo-*"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		where = "in %s, removed at the end"
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	key := apikey.Prefix + "demo-" + rand.Text()
	cfg := config.Config{
		Addr:          c.Addr,
		DatabaseURL:   "sqlite://" + filepath.ToSlash(filepath.Join(dir, "kiln.db")),
		ObjectStore:   "file://" + filepath.ToSlash(filepath.Join(dir, "objects")),
		APIKey:        key,
		Agent:         "on",
		ChunkInterval: 200 * time.Millisecond,
		LogLevel:      c.LogLevel,
	}
	a, err := app.New(ctx, cfg, app.Options{Serve: true, Agent: true, Version: Version(),
		Sim: &llmsim.Config{Models: app.SimModels, TTFT: 5 * time.Millisecond, TPOT: 200 * time.Microsecond}},
		newLogger(e.stderr, c.LogLevel))
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Cfg.ShutdownTimeout)
		defer cancel()
		if err := a.Stop(stopCtx); err != nil {
			fmt.Fprintln(e.stderr, "kiln: stop:", err)
		}
	}()
	if err := a.Start(ctx); err != nil {
		return err
	}
	base := "http://" + a.Addr()
	fmt.Fprintf(e.stderr, "kiln is serving at %s (SQLite and files "+where+"; the built-in simulator, so outputs are synthetic)\n", base, dir)

	cl := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key))
	var batches []*demoBatch
	for _, d := range r.Latest() {
		b, err := submitDemo(ctx, cl, d.ID, samples[d.ID])
		if err != nil {
			return fmt.Errorf("%s: %w", d.ID, err)
		}
		batches = append(batches, b)
	}
	fmt.Fprintf(e.stderr, "submitted %d batches; waiting for them and their conquest checks\n", len(batches))
	if err := waitDemo(ctx, cl, batches, c.Timeout); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tREQUESTS\tCOMPLETED\tVALID\tINVALID")
	var problems []string
	for _, b := range batches {
		s := b.state
		var valid, invalid int64
		if s.Conquest != nil {
			valid, invalid = s.Conquest.Valid, s.Conquest.Invalid
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", b.typ, b.requests, s.RequestCounts.Completed, valid, invalid)
		switch {
		case s.Status != "completed":
			problems = append(problems, fmt.Sprintf("batch %s (%s) %s", b.id, b.typ, s.Status))
		case s.Conquest == nil:
			problems = append(problems, fmt.Sprintf("batch %s (%s) is no conquest batch", b.id, b.typ))
		case s.Conquest.Error != "":
			problems = append(problems, fmt.Sprintf("batch %s (%s): conquest check: %s", b.id, b.typ, s.Conquest.Error))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	if !c.Keep {
		return nil
	}
	fmt.Fprintf(e.stdout, "\nkiln keeps serving until Ctrl-C; for kiln batch:\n  export KILN_BASE_URL=%s KILN_CLIENT_KEY=%s\n  batches:", base, key)
	for _, b := range batches {
		fmt.Fprintf(e.stdout, " %s", b.id)
	}
	fmt.Fprintln(e.stdout)
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "stopping kiln")
	return nil
}

// submitDemo uploads a type's requests as a file and creates its batch.
func submitDemo(ctx context.Context, cl openai.Client, typ string, requests []byte) (*demoBatch, error) {
	f, err := cl.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(requests), typ+".jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	b, err := cl.Batches.New(ctx, openai.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata:         map[string]string{"demo": "conquest", "conquest_type": typ},
	})
	if err != nil {
		return nil, fmt.Errorf("create batch: %w", err)
	}
	return &demoBatch{typ: typ, requests: bytes.Count(requests, []byte("\n")), id: b.ID}, nil
}

// waitDemo polls the batches until each has ended and been checked, or
// the timeout passes.
func waitDemo(ctx context.Context, cl openai.Client, batches []*demoBatch, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, b := range batches {
			if b.state.done() {
				continue
			}
			var s demoState
			if err := cl.Get(ctx, "batches/"+b.id, nil, &s); err != nil {
				if ctx.Err() != nil {
					break
				}
				return fmt.Errorf("batch %s: %w", b.id, err)
			}
			b.state = s
			if !s.done() {
				pending++
			}
		}
		if pending == 0 && ctx.Err() == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				var waiting []string
				for _, b := range batches {
					if !b.state.done() {
						waiting = append(waiting, fmt.Sprintf("%s (%s, %s)", b.id, b.typ, b.state.Status))
					}
				}
				return fmt.Errorf("waited %s; still waiting for %s", timeout, strings.Join(waiting, ", "))
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
