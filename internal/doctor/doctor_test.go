package doctor

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/ids"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/store"
	"github.com/kilnhq/kiln/internal/testenv"
)

type testBundle struct {
	env *kilntest.Env
	cfg config.Config
}

// setup starts a kiln on backend, with its agent unless noAgent, and
// returns the configuration kiln doctor would run with.
func setup(t *testing.T, backend string, noAgent bool) *testBundle {
	t.Helper()
	env := kilntest.Start(t, backend, kilntest.Options{NoAgent: noAgent})
	return &testBundle{env: env, cfg: env.App.Cfg}
}

// addEndpoint registers a webhook endpoint at url in the default project.
func (tb *testBundle) addEndpoint(t *testing.T, url string) string {
	t.Helper()
	id := ids.New(ids.WebhookEndpoint)
	require.NoError(t, tb.env.App.Store.WebhookEndpointCreate(t.Context(), store.WebhookEndpoint{ID: id, URL: url,
		EventTypes: []string{"batch.completed"}, Secret: "whsec_doctor", CreatedAt: time.Now().Unix()}))
	return id
}

// result is the report's result of check; it fails the test when there is
// none.
func result(t *testing.T, r Report, check string) Result {
	t.Helper()
	for _, res := range r.Results {
		if res.Check == check {
			return res
		}
	}
	t.Fatalf("no check %q in the report:\n%s", check, text(t, r))
	return Result{}
}

// text is the report as kiln doctor prints it.
func text(t *testing.T, r Report) string {
	t.Helper()
	var b strings.Builder
	_, err := r.WriteTo(&b)
	require.NoError(t, err)
	return b.String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestDoctorHealthy: on a working kiln every check passes: the database
// and River round trip, the clock, the object store with its presigned
// URLs, the folder's disk, the agent's heartbeat and a reachable webhook
// endpoint.
func TestDoctorHealthy(t *testing.T) {
	for _, backend := range kilntest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tb := setup(t, backend, false)
			methods := make(chan string, 1)
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				methods <- r.Method
				w.WriteHeader(http.StatusMethodNotAllowed)
			}))
			defer hook.Close()
			endpoint := tb.addEndpoint(t, hook.URL+"/hook")
			tb.cfg.WebhookAllowPrivate = true                      // the receiver is on loopback
			tb.cfg.CORSOrigins = []string{"http://127.0.0.1:8080"} // a web app's page

			r := Run(t.Context(), tb.cfg, nil)
			out := text(t, r)
			t.Logf("kiln doctor on %s:\n%s", backend, out)
			require.False(t, r.Failed(), out)
			require.Zero(t, r.Count(Warn), out)

			require.Contains(t, result(t, r, "database").Detail, backend+" ")
			require.Contains(t, result(t, r, "job queue").Detail, "River: a job went in and was worked")
			clock := result(t, r, "clock")
			require.Equal(t, OK, clock.Status)
			if backend == "postgres" {
				require.Regexp(t, `^the database's clock is \S+ (ahead of|behind) this machine's \(±\S+\)$`, clock.Detail)
			}
			require.Contains(t, result(t, r, "object store").Detail, "wrote, read and deleted an object; a presigned PUT and GET round trip")
			require.Equal(t, OK, result(t, r, "cors").Status)
			disk := result(t, r, "disk")
			if backend == "sqlite" { // a folder store
				require.Equal(t, OK, disk.Status)
				require.Regexp(t, `^[\d.]+ \w+ free of [\d.]+ \w+ \(\d+%\)$`, disk.Detail)
			} else {
				require.Equal(t, Skip, disk.Status)
			}
			agent := result(t, r, "agent "+tb.env.App.Agent.ID())
			require.Regexp(t, `^heartbeat \d+s ago; on `, agent.Detail)
			require.Equal(t, "1 live", result(t, r, "agents").Detail)
			require.Equal(t, hook.URL+"/hook: reachable (HEAD: 405 Method Not Allowed)", result(t, r, "webhook "+endpoint).Detail)
			require.Equal(t, http.MethodHead, <-methods, "a HEAD, which delivers no event")
			require.Regexp(t, `(?m)^\d+ checks: \d+ ok, 0 warnings, 0 failed(, 1 skipped)?$`, out)
		})
	}
}

// TestDoctorBroken: each broken dependency fails its check, says what to
// set, and skips the checks that need it; the other checks still run.
func TestDoctorBroken(t *testing.T) {
	t.Parallel()

	t.Run("unreachable database", func(t *testing.T) {
		t.Parallel()
		cfg := config.Config{
			DatabaseURL: "postgres://kiln:kiln@" + closedPort(t) + "/kiln?sslmode=disable",
			ObjectStore: "file://" + filepath.Join(t.TempDir(), "objects"),
		}
		r := Run(t.Context(), cfg, &Opts{Timeout: 5 * time.Second})
		out := text(t, r)
		require.True(t, r.Failed(), out)
		db := result(t, r, "database")
		require.Equal(t, Fail, db.Status, out)
		require.Contains(t, db.Detail, "(KILN_DATABASE_URL)")
		require.NotContains(t, db.Detail, "kiln:kiln", "no credentials")
		for _, check := range []string{"job queue", "clock", "agents", "webhooks"} {
			require.Equal(t, Result{Check: check, Status: Skip, Detail: "needs the database"}, result(t, r, check))
		}
		require.Equal(t, OK, result(t, r, "object store").Status, "checked all the same")
		require.Regexp(t, `(?m)^FAIL  database `, out)
		require.Regexp(t, `(?m)^7 checks: 2 ok, 0 warnings, 1 failed, 4 skipped$`, out)
	})

	t.Run("folder store that cannot be made", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, "sqlite", true)
		file := filepath.Join(t.TempDir(), "a-file")
		require.NoError(t, os.WriteFile(file, nil, 0o644))
		tb.cfg.ObjectStore = "file://" + filepath.Join(file, "objects")
		r := Run(t.Context(), tb.cfg, nil)
		out := text(t, r)
		require.True(t, r.Failed(), out)
		res := result(t, r, "object store")
		require.Equal(t, Fail, res.Status, out)
		require.Contains(t, res.Detail, "not a directory")
		require.Contains(t, res.Detail, "(KILN_OBJECT_STORE)")
		require.Equal(t, Result{Check: "disk", Status: Skip, Detail: "needs the object store"}, result(t, r, "disk"))
		require.Equal(t, OK, result(t, r, "database").Status)
	})

	t.Run("S3 refuses the credentials", func(t *testing.T) {
		t.Parallel()
		u := testenv.S3URL(t)
		user, rest, ok := strings.Cut(strings.TrimPrefix(u, "s3://"), "@")
		require.True(t, ok, "credentials in %s", u)
		access, _, _ := strings.Cut(user, ":")
		cfg := config.Config{DatabaseURL: "sqlite://" + filepath.Join(t.TempDir(), "kiln.db"),
			ObjectStore: "s3://" + access + ":wrong-secret@" + rest}
		r := Run(t.Context(), cfg, nil)
		out := text(t, r)
		s3 := result(t, r, "object store")
		require.Equal(t, Fail, s3.Status, out)
		require.NotContains(t, out, "wrong-secret", "no credentials")
	})

	t.Run("webhooks", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, "sqlite", true)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer hook.Close()
		guarded := tb.addEndpoint(t, hook.URL+"/hook")
		down := tb.addEndpoint(t, "http://"+closedPort(t)+"/hook")

		r := Run(t.Context(), tb.cfg, nil) // the guard on, as by default
		res := result(t, r, "webhook "+guarded)
		require.Equal(t, Fail, res.Status)
		require.Contains(t, res.Detail, hook.URL+"/hook: refused by the SSRF guard")
		require.Contains(t, result(t, r, "webhook "+down).Detail, "refused by the SSRF guard")

		tb.cfg.WebhookAllowPrivate = true
		r = Run(t.Context(), tb.cfg, nil)
		require.Equal(t, OK, result(t, r, "webhook "+guarded).Status, text(t, r))
		res = result(t, r, "webhook "+down)
		require.Equal(t, Fail, res.Status)
		require.Contains(t, res.Detail, "unreachable")
		require.Contains(t, res.Detail, "connection refused")
	})

	t.Run("agents", func(t *testing.T) {
		t.Parallel()
		tb := setup(t, "sqlite", true)
		r := Run(t.Context(), tb.cfg, nil)
		require.False(t, r.Failed(), text(t, r))
		require.Equal(t, Warn, result(t, r, "agents").Status)
		require.Contains(t, result(t, r, "agents").Detail, "no live agent")

		gone := store.Agent{ID: "agent-gone", Hostname: "gpu-1", Models: []string{"m"}, State: "running",
			StartedAt: time.Now().Add(-time.Hour).Unix(), HeartbeatAt: time.Now().Add(-5 * time.Minute).Unix()}
		require.NoError(t, tb.env.App.Store.AgentHeartbeat(t.Context(), gone))
		r = Run(t.Context(), tb.cfg, nil)
		res := result(t, r, "agent agent-gone")
		require.Equal(t, Warn, res.Status)
		require.Regexp(t, `^no heartbeat for 5m\d+s: gone`, res.Detail)
		require.Contains(t, result(t, r, "agents").Detail, "no live agent")
	})
}

func TestClockStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		skew, margin time.Duration
		want         Status
		detail       string
	}{
		{3 * time.Millisecond, time.Millisecond, OK, "the database's clock is 3ms ahead of this machine's (±1ms)"},
		{-1500 * time.Millisecond, time.Millisecond, OK, "the database's clock is 1.5s behind this machine's (±1ms)"},
		{5 * time.Second, 100 * time.Millisecond, Fail, "the database's clock is 5s ahead of this machine's (±100ms); more than 2s: synchronise the clocks (NTP)"},
		{2500 * time.Millisecond, time.Second, OK, "the database's clock is 2.5s ahead of this machine's (±1s)"}, // within the margin
	} {
		s, detail := clockStatus(tc.skew, tc.margin)
		require.Equal(t, tc.want, s, tc.skew)
		require.Equal(t, tc.detail, detail)
	}
}

func TestDiskStatus(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	for _, tc := range []struct {
		free, size float64
		want       Status
		detail     string
	}{
		{50 * gib, 100 * gib, OK, "50.0 GiB free of 100.0 GiB (50%)"},
		{5 * gib, 100 * gib, Warn, "5.0 GiB free of 100.0 GiB (5%); under 10%"},
		{2 * gib, 100 * gib, Fail, "2.0 GiB free of 100.0 GiB (2%); under 3%: uploads and results will fail, free space"},
	} {
		s, detail := diskStatus(tc.free, tc.size)
		require.Equal(t, tc.want, s)
		require.Equal(t, tc.detail, detail)
	}
}

// TestDoctorUnmigrated: a database that kiln serve never migrated fails
// the database check, which names the way out, and the doctor leaves it as
// it was.
func TestDoctorUnmigrated(t *testing.T) {
	t.Parallel()
	tb := setup(t, "sqlite", true)
	cfg := tb.cfg
	cfg.DatabaseURL = "sqlite://" + filepath.Join(t.TempDir(), "fresh.db")
	for range 2 { // the second run finds it as the first left it
		r := Run(t.Context(), cfg, nil)
		db := result(t, r, "database")
		require.Equal(t, Fail, db.Status, text(t, r))
		require.Contains(t, db.Detail, "start kiln serve, which applies them")
		require.Equal(t, Skip, result(t, r, "job queue").Status)
	}
}
