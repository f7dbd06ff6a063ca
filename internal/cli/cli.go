// Package cli is kiln's command line: serve, agent, sim, migrate, keys,
// openapi and version. main only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/kilnhq/kiln/api"
	"github.com/kilnhq/kiln/curation"
	"github.com/kilnhq/kiln/internal/apikey"
	"github.com/kilnhq/kiln/internal/app"
	"github.com/kilnhq/kiln/internal/auth"
	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/doctor"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/llmsim"
	"github.com/kilnhq/kiln/internal/store"
)

// version is set at build time with -ldflags "-X github.com/kilnhq/kiln/internal/cli.version=v1.2.3".
var version = ""

// Version is kiln's version: the build's, or the module's, or "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type cli struct {
	Serve    serveCmd    `cmd:"" help:"Run the API and the job workers (and, on the embedded default, the GPU agent)."`
	Agent    agentCmd    `cmd:"" help:"Run the GPU agent as its own long-lived process."`
	Sim      simCmd      `cmd:"" help:"Run the vLLM-like LLM simulator."`
	Batch    batchCmd    `cmd:"" help:"Submit batches and download their results, against any kiln."`
	Conquest conquestCmd `cmd:"" help:"Conquest types: list and show them, build batch requests from data records, run the demo."`
	Migrate  migrateCmd  `cmd:"" help:"Migrate the database to the newest schema."`
	Bench    benchCmd    `cmd:"" help:"Measure an engine (or the simulator) over a concurrency sweep per model, and kiln's batch throughput on it."`
	Doctor   doctorCmd   `cmd:"" help:"Check the database, job queue, clock, object store, disk, agents and webhook endpoints (kiln serve's settings)."`
	Keys     keysCmd     `cmd:"" help:"Manage API keys."`
	Admin    adminCmd    `cmd:"" name:"admin-keys" help:"Manage admin keys: they open the Administration API (/v1/organization/...) only."`
	Projects projectsCmd `cmd:"" help:"Manage projects (tenants): each key opens its project's files and batches only."`
	Curators curatorsCmd `cmd:"" help:"Manage curator keys (the curation workbench's, apart from API keys)."`
	Openapi  openapiCmd  `cmd:"" name:"openapi" help:"Print the OpenAPI document (YAML)."`
	Version  versionCmd  `cmd:"" help:"Print kiln's version."`
}

type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

// Main runs kiln with args and returns the exit code. SIGINT and SIGTERM
// cancel the command's context: a server stops gracefully and exits 0, a
// client stops (130, as a shell reports an interrupted command).
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mainContext(ctx, args, stdout, stderr)
}

// exitInterrupted is the exit code of a command stopped by a signal.
const exitInterrupted = 130

// errInterrupted is a command's error when the signal stopped it and it has
// said so itself.
var errInterrupted = errors.New("interrupted")

// mainContext is Main on ctx, which tests cancel as a signal would.
func mainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("kiln"),
		kong.Description("kiln: an OpenAI-compatible Batch API for local LLMs."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.UsageOnError(),
		config.KongVars(),
		kong.Vars{"client_url_default": defaultURL, "doctor_timeout_default": doctor.TimeoutDefault.String()},
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				ec, ok := r.(exitCode)
				if !ok {
					panic(r)
				}
				code = int(ec)
			}
		}()
		kctx, err := parser.Parse(args)
		if err != nil {
			parser.Errorf("%s", err)
			code = 2
			return
		}
		ctx := store.WithActor(ctx, cliActor()) // the audit log's actor of kiln keys, kiln projects, ...
		err = kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr})
		switch {
		case err == nil:
		case errors.Is(err, errInterrupted):
			code = exitInterrupted
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			fmt.Fprintln(stderr, "kiln: interrupted")
			code = exitInterrupted
		default:
			fmt.Fprintln(stderr, "kiln:", err)
			code = 1
		}
	}()
	return code
}

type exitCode int

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

type serveCmd struct {
	config.Config `embed:""`
}

func (c *serveCmd) Run(e *env) error {
	log := newLogger(e.stderr, c.LogLevel)
	return run(e.ctx, log, c.Config, app.Options{Serve: true, Agent: c.AgentEnabled(), Version: Version(), FirstKeyOut: e.stderr})
}

type agentCmd struct {
	config.Config `embed:""`
}

func (c *agentCmd) Run(e *env) error {
	log := newLogger(e.stderr, c.LogLevel)
	return run(e.ctx, log, c.Config, app.Options{Agent: true, Version: Version()})
}

// run starts a, waits for a signal, and stops a within the shutdown
// timeout.
func run(ctx context.Context, log *slog.Logger, cfg config.Config, opts app.Options) error {
	a, err := app.New(ctx, cfg, opts, log)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		_ = a.Stop(context.Background())
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", "grace", a.Cfg.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), a.Cfg.ShutdownTimeout)
	defer cancel()
	return a.Stop(stopCtx)
}

type simCmd struct {
	Addr         string        `env:"KILN_SIM_ADDR" default:"127.0.0.1:8000" help:"Listen address."`
	Models       []string      `env:"KILN_SIM_MODELS" help:"Models served (comma-separated). Default: kiln's target models and sim-model."`
	MaxNumSeqs   int           `name:"max-num-seqs" default:"256" help:"Concurrent sequences; more requests queue."`
	TTFT         time.Duration `name:"ttft" default:"20ms" help:"Time to first token (0: none)."`
	TPOT         time.Duration `name:"tpot" default:"5ms" help:"Time per output token (0: none)."`
	OutputTokens int           `name:"output-tokens" default:"50" help:"Output tokens per completion (unless max_tokens is lower)."`
	Error500     float64       `name:"error-500-rate" help:"Fraction of requests answered 500."`
	Error429     float64       `name:"error-429-rate" help:"Fraction of requests answered 429."`
	TimeoutRate  float64       `name:"timeout-rate" help:"Fraction of requests that hang until the client gives up."`
	CachedShare  float64       `name:"cached-share" help:"Fraction of each prompt's tokens reported as prompt-cache hits (usage.prompt_tokens_details.cached_tokens)."`
	Reasoning    float64       `name:"reasoning-share" help:"Fraction of each completion's tokens reported as reasoning (usage.completion_tokens_details.reasoning_tokens)."`
	Seed         int64         `help:"Seed mixed into the deterministic outputs."`
	LogLevel     string        `name:"log-level" default:"info" enum:"debug,info,warn,error" help:"Log level."`
}

func (c *simCmd) Run(e *env) error {
	models := c.Models
	if len(models) == 0 {
		models = app.SimModels
	}
	return llmsim.Serve(e.ctx, c.Addr, llmsim.Config{
		Models: models, MaxNumSeqs: c.MaxNumSeqs, TTFT: noDelay(c.TTFT), TPOT: noDelay(c.TPOT), OutputTokens: c.OutputTokens,
		ErrorRate500: c.Error500, ErrorRate429: c.Error429, TimeoutRate: c.TimeoutRate, Seed: c.Seed,
		CachedShare: c.CachedShare, ReasoningShare: c.Reasoning,
	}, newLogger(e.stderr, c.LogLevel))
}

// noDelay maps a flag's 0 onto the simulator's "no delay", which is any
// negative duration (its zero means "the default").
func noDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

type dbFlags struct {
	DatabaseURL string `name:"database-url" env:"KILN_DATABASE_URL" default:"${database_url_default}" help:"postgres://... or sqlite:///path."`
}

func (f dbFlags) open(ctx context.Context, stderr io.Writer) (*store.Store, error) {
	return store.Open(ctx, f.DatabaseURL, newLogger(stderr, "warn"))
}

type migrateCmd struct {
	dbFlags `embed:""`
}

func (c *migrateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(e.stdout, "%s database is migrated\n", st.Dialect())
	return nil
}

type keysCmd struct {
	Create keysCreateCmd `cmd:"" help:"Make a key and print its secret once."`
	List   keysListCmd   `cmd:"" help:"List keys."`
	Revoke keysRevokeCmd `cmd:"" help:"Revoke a key by ID."`
	Rotate keysRotateCmd `cmd:"" help:"Replace a key by a new one; the old one works on for a grace period."`
}

type keysCreateCmd struct {
	dbFlags `embed:""`
	Name    string   `default:"" help:"A name to tell the key apart."`
	Project string   `default:"" help:"The project (name or ID) the key opens; default: the default project."`
	Scopes  []string `help:"Limit the key to these scopes (api.read, api.batches, api.agent); default: every scope."`
}

func (c *keysCreateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	project := store.DefaultProject
	if c.Project != "" {
		p, err := findProject(e, st, c.Project)
		if err != nil {
			return err
		}
		project = p.ID
	}
	if bad, ok := auth.ValidScopes(c.Scopes); !ok {
		return fmt.Errorf("unknown scope %q: the scopes are %s", bad, strings.Join(auth.Scopes, ", "))
	}
	k, secret, err := apikey.New(e.ctx, st, store.APIKey{Name: c.Name, ProjectID: project, Scopes: c.Scopes})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "created %s in %s; the secret below is shown only once\n", k.ID, k.ProjectID)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type keysRotateCmd struct {
	dbFlags `embed:""`
	ID      string        `arg:"" help:"The key's ID (key_...)."`
	Grace   time.Duration `default:"${key_rotation_grace_default}" help:"How long the old key keeps working."`
}

func (c *keysRotateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	k, secret, err := apikey.Rotate(e.ctx, st, c.ID, c.Grace)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no live key %s (kiln keys list shows them)", c.ID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "rotated %s into %s; %s works on for %s; the secret below is shown only once\n", c.ID, k.ID, c.ID, c.Grace)
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type projectsCmd struct {
	Create  projectsCreateCmd  `cmd:"" help:"Make a project."`
	List    projectsListCmd    `cmd:"" help:"List projects."`
	Archive projectsArchiveCmd `cmd:"" help:"Archive a project: its keys stop working at once; its data stays."`
}

type projectsCreateCmd struct {
	dbFlags `embed:""`
	Name    string `arg:"" help:"The project's name."`
}

func (c *projectsCreateCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.ProjectByName(e.ctx, c.Name); err == nil {
		return fmt.Errorf("a project named %q exists already", c.Name)
	}
	p := store.Project{ID: ids.New(ids.Project), Name: c.Name}
	if err := st.ProjectCreate(e.ctx, p); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "created project %s\n", c.Name)
	fmt.Fprintln(e.stdout, p.ID)
	return nil
}

type projectsListCmd struct {
	dbFlags  `embed:""`
	Archived bool `help:"Include archived projects."`
}

func (c *projectsListCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tSTATUS")
	after := ""
	for {
		list, more, err := st.ProjectList(e.ctx, after, 100, c.Archived)
		if err != nil {
			return err
		}
		for _, p := range list {
			status := "active"
			if p.ArchivedAt != nil {
				status = "archived " + unix(*p.ArchivedAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Name, unix(p.CreatedAt), status)
			after = p.ID
		}
		if !more {
			return tw.Flush()
		}
	}
}

type projectsArchiveCmd struct {
	dbFlags `embed:""`
	Project string `arg:"" help:"The project's name or ID."`
}

func (c *projectsArchiveCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := findProject(e, st, c.Project)
	if err != nil {
		return err
	}
	if _, err := st.ProjectArchive(e.ctx, p.ID); errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("the default project cannot be archived")
	} else if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "archived %s (%s): its keys no longer work; its data stays\n", p.ID, p.Name)
	return nil
}

// findProject is a project by ID or name.
func findProject(e *env, st *store.Store, ref string) (store.Project, error) {
	p, err := st.ProjectGet(e.ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		p, err = st.ProjectByName(e.ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return p, fmt.Errorf("no project %q (kiln projects list shows them)", ref)
	}
	return p, err
}

type keysListCmd struct {
	dbFlags `embed:""`
}

func (c *keysListCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := st.KeyList(e.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tCREATED\tLAST USED\tSTATUS")
	for _, k := range keys {
		status := "active"
		if k.RevokedAt != nil {
			status = "revoked " + unix(*k.RevokedAt)
		}
		used := "never"
		if k.LastUsedAt != nil {
			used = unix(*k.LastUsedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, unix(k.CreatedAt), used, status)
	}
	return tw.Flush()
}

func unix(t int64) string { return time.Unix(t, 0).UTC().Format(time.RFC3339) }

type keysRevokeCmd struct {
	dbFlags `embed:""`
	ID      string `arg:"" help:"The key's ID (key_...)."`
}

func (c *keysRevokeCmd) Run(e *env) error {
	st, err := c.open(e.ctx, e.stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.KeyRevoke(e.ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no live key %s (kiln keys list shows them)", c.ID)
	}
	if err != nil {
		return err
	}
	// A running kiln hears of it at once on Postgres; on SQLite its cache
	// trusts an answer for apikey.CacheTTL.
	when := "at once"
	if st.Dialect() == "sqlite" {
		when = "within " + apikey.CacheTTL.String()
	}
	fmt.Fprintf(e.stdout, "revoked %s; a running kiln on this database refuses it %s\n", c.ID, when)
	return nil
}

type openapiCmd struct{}

func (c *openapiCmd) Run(e *env) error {
	doc, err := api.Spec(curation.SpecRoutes)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(doc)
	return err
}

type versionCmd struct{}

func (c *versionCmd) Run(e *env) error {
	fmt.Fprintln(e.stdout, "kiln", Version())
	return nil
}

type doctorCmd struct {
	config.Config `embed:""`
	Timeout       time.Duration `name:"timeout" default:"${doctor_timeout_default}" help:"How long each check may take."`
}

// Run checks the deployment that kiln serve's settings configure and prints
// a line per check; a failed check makes it exit 1.
func (c *doctorCmd) Run(e *env) error {
	r := doctor.Run(e.ctx, c.Config, &doctor.Opts{Timeout: c.Timeout})
	if _, err := r.WriteTo(e.stdout); err != nil {
		return err
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	if n := r.Count(doctor.Fail); n > 0 {
		return fmt.Errorf("%d of %d checks failed", n, len(r.Results))
	}
	return nil
}
