package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
)

// cli embeds Config as kiln serve and kiln agent do (internal/cli).
type cli struct {
	config.Config `embed:""`
}

// newParser builds a kong parser of c as the kiln binary does: with
// config.KongVars.
func newParser(t *testing.T, c *cli) *kong.Kong {
	t.Helper()
	parser, err := kong.New(c, kong.Name("kiln"), config.KongVars(),
		kong.Exit(func(code int) { t.Fatalf("kong exited with %d", code) }))
	require.NoError(t, err)
	return parser
}

// parse parses args in an environment without KILN_* variables, which
// stay unset until t ends. Callers cannot be parallel (t.Setenv).
func parse(t *testing.T, args ...string) config.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "KILN_") {
			t.Setenv(k, "") // restores the variable at cleanup
			require.NoError(t, os.Unsetenv(k))
		}
	}
	var c cli
	_, err := newParser(t, &c).Parse(args)
	require.NoError(t, err)
	return c.Config
}

// TestDefaultsMatchCLI compares, field by field, the kiln binary's
// configuration with no flags and no KILN_* variables with a zero Config's
// WithDefaults: a Config built in code behaves as the CLI's does.
func TestDefaultsMatchCLI(t *testing.T) {
	got := reflect.ValueOf(parse(t))
	want := reflect.ValueOf(config.Config{}.WithDefaults())
	for _, f := range reflect.VisibleFields(want.Type()) {
		require.True(t, f.IsExported(), "field %s: unexported", f.Name)
		require.Equal(t, want.FieldByIndex(f.Index).Interface(), got.FieldByIndex(f.Index).Interface(),
			"field %s: WithDefaults (want) differs from the CLI's default (got)", f.Name)
	}
}

// TestInboxPollIntervalFlag pins how InboxPollInterval turns polling off: 0
// is the default, as everywhere; a negative value is off.
func TestInboxPollIntervalFlag(t *testing.T) {
	t.Run("ZeroIsDefault", func(t *testing.T) {
		c := parse(t, "--inbox-poll-interval=0").WithDefaults()
		require.Equal(t, config.InboxPollIntervalDefault, c.InboxPollInterval)
	})
	t.Run("NegativeIsOff", func(t *testing.T) {
		c := parse(t, "--inbox-poll-interval=-1s").WithDefaults()
		require.Equal(t, -time.Second, c.InboxPollInterval)
		require.NoError(t, c.Validate())
	})
}

// TestKongTags checks that every default tag is a ${xxx_default} variable of
// KongVars, never a literal, that every variable is used, and that kong
// resolves them all.
func TestKongTags(t *testing.T) {
	t.Parallel()

	vars := config.KongVars()
	used := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config.Config]()) {
		require.True(t, strings.HasPrefix(f.Tag.Get("env"), "KILN_"),
			"field %s: env %q does not start with KILN_ (TestDefaultsMatchCLI unsets only KILN_*)", f.Name, f.Tag.Get("env"))
		def, ok := f.Tag.Lookup("default")
		if !ok {
			continue
		}
		require.Regexp(t, `^\$\{[a-z_]+_default\}$`, def, "field %s: default tag is not a ${xxx_default} variable", f.Name)
		name := def[2 : len(def)-1]
		require.Contains(t, vars, name, "field %s: %s is not in config.KongVars", f.Name, def)
		used[name] = true
	}
	for name := range vars {
		require.True(t, used[name], "KongVars: %s is the default of no field", name)
	}

	var c cli
	defaults := 0
	for _, flag := range newParser(t, &c).Model.Flags {
		if !flag.HasDefault {
			continue
		}
		defaults++
		require.NotContains(t, flag.Default, "${", "flag --%s: default %q is unresolved", flag.Name, flag.Default)
		require.NotEmpty(t, flag.Default, "flag --%s: empty default", flag.Name)
	}
	require.Len(t, used, defaults, "flags with a default vs. fields with a default tag")
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()

	t.Run("InboxPollIntervalIsSet", func(t *testing.T) {
		t.Parallel()
		// It was tagged 10s but WithDefaults left it 0, which turned inbox
		// polling off for a Config built in code.
		require.Equal(t, config.InboxPollIntervalDefault, config.Config{}.WithDefaults().InboxPollInterval)
	})

	t.Run("KeepsSetFields", func(t *testing.T) {
		t.Parallel()
		c := config.Config{Addr: "127.0.0.1:0", ShardSize: 7, InboxPollInterval: -1, LogLevel: "debug"}.WithDefaults()
		require.Equal(t, "127.0.0.1:0", c.Addr)
		require.Equal(t, 7, c.ShardSize)
		require.Equal(t, time.Duration(-1), c.InboxPollInterval)
		require.Equal(t, "debug", c.LogLevel)
	})
}

// TestCORSOriginsFlag pins how KILN_CORS_ORIGINS lists origins: comma-
// separated, each valid.
func TestCORSOriginsFlag(t *testing.T) {
	t.Setenv("KILN_CORS_ORIGINS", "https://app.example.com,http://127.0.0.1:3000")
	var c cli
	_, err := newParser(t, &c).Parse(nil)
	require.NoError(t, err)
	require.Equal(t, []string{"https://app.example.com", "http://127.0.0.1:3000"}, c.CORSOrigins)
	require.NoError(t, c.WithDefaults().Validate())
}

func TestValidate(t *testing.T) {
	t.Parallel()

	t.Run("DefaultsAreValid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, config.Config{}.WithDefaults().Validate())
	})

	for _, tt := range []struct {
		name   string
		mutate func(c *config.Config)
		field  string
	}{
		{"DatabaseURL", func(c *config.Config) { c.DatabaseURL = "mysql://localhost/kiln" }, "KILN_DATABASE_URL"},
		{"ObjectStore", func(c *config.Config) { c.ObjectStore = "gs://bucket" }, "KILN_OBJECT_STORE"},
		{"LLMURL", func(c *config.Config) { c.LLMURL = "ftp://host/v1" }, "KILN_LLM_URL"},
		{"AdminKey", func(c *config.Config) { c.APIKey, c.AdminKey = "sk-same", "sk-same" }, "KILN_ADMIN_KEY"},
		{"AgentConcurrency", func(c *config.Config) { c.AgentConcurrency = -1 }, "KILN_AGENT_CONCURRENCY"},
		{"MaxLineBytes", func(c *config.Config) { c.MaxLineBytes = 100 }, "KILN_MAX_LINE_BYTES"},
		{"LeaseTTL", func(c *config.Config) { c.LeaseTTL = time.Millisecond }, "KILN_LEASE_TTL"},
		{"RetryMax", func(c *config.Config) { c.RetryMax = c.RetryBase / 2 }, "KILN_RETRY_MAX"},
		{"InboxPrefix", func(c *config.Config) { c.InboxPrefix = "/inbox" }, "KILN_INBOX_PREFIX"},
		{"EngineCommand", func(c *config.Config) { c.EngineCommand = "vllm" }, "KILN_ENGINE_COMMAND"},
		{"SigningKey", func(c *config.Config) { c.SigningKey = "short" }, "KILN_SIGNING_KEY"},
		{"Endpoints", func(c *config.Config) { c.Endpoints = []string{"no-url"} }, "KILN_ENDPOINTS"},
		{"InboxSQSURL", func(c *config.Config) { c.InboxPrefix, c.InboxSQSURL = "inbox/", "sqs.us-east-1.amazonaws.com/1/q" }, "KILN_INBOX_SQS_URL"},
		{"InboxSQSURLNeedsPrefix", func(c *config.Config) { c.InboxSQSURL = "https://sqs.us-east-1.amazonaws.com/1/q" }, "KILN_INBOX_PREFIX"},
		{"InboxSQSConcurrency", func(c *config.Config) { c.InboxSQSConcurrency = -1 }, "KILN_INBOX_SQS_CONCURRENCY"},
		{"RemoteFunctions", func(c *config.Config) { c.RemoteFunctions = []string{"inbox_import"} }, "KILN_REMOTE_FUNCTIONS"},
		{"CORSOriginsPath", func(c *config.Config) { c.CORSOrigins = []string{"https://app.example.com/"} }, "KILN_CORS_ORIGINS"},
		{"CORSOriginsWildcard", func(c *config.Config) { c.CORSOrigins = []string{"https://*.example.com"} }, "KILN_CORS_ORIGINS"},
		{"CORSOriginsScheme", func(c *config.Config) { c.CORSOrigins = []string{"app.example.com"} }, "KILN_CORS_ORIGINS"},
		{"FileRetentionForm", func(c *config.Config) { c.FileRetention = []string{"batch:720h"} }, "KILN_FILE_RETENTION"},
		{"FileRetentionPurpose", func(c *config.Config) { c.FileRetention = []string{"batch-output=720h"} }, "KILN_FILE_RETENTION"},
		{"FileRetentionShort", func(c *config.Config) { c.FileRetention = []string{"batch=30m"} }, "KILN_FILE_RETENTION"},
		{"FileRetentionNegative", func(c *config.Config) { c.FileRetention = []string{"batch=-1h"} }, "KILN_FILE_RETENTION"},
		{"FileRetentionTwice", func(c *config.Config) { c.FileRetention = []string{"batch=1h", "batch=2h"} }, "KILN_FILE_RETENTION"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Config{}.WithDefaults()
			tt.mutate(&c)
			require.ErrorContains(t, c.Validate(), tt.field)
		})
	}
}

// TestFileRetentionFlag pins how KILN_FILE_RETENTION lists retentions:
// comma-separated purpose=duration entries, * for the other purposes and
// 0 to keep a purpose's files.
func TestFileRetentionFlag(t *testing.T) {
	t.Setenv("KILN_FILE_RETENTION", "batch=0,batch_output=2160h,*=720h")
	var c cli
	_, err := newParser(t, &c).Parse(nil)
	require.NoError(t, err)
	require.Equal(t, []string{"batch=0", "batch_output=2160h", "*=720h"}, c.FileRetention)
	require.NoError(t, c.WithDefaults().Validate())
	r, err := config.ParseFileRetention(c.FileRetention)
	require.NoError(t, err)
	require.Equal(t, map[string]time.Duration{"batch": 0, "batch_output": 90 * 24 * time.Hour, config.FileRetentionAny: 30 * 24 * time.Hour}, r)
}
