package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/config"
	"github.com/kilnhq/kiln/internal/kilntest"
	"github.com/kilnhq/kiln/internal/testenv"
	"github.com/kilnhq/kiln/terraform/provider"
)

// The acceptance tests run the real OpenTofu against a real kiln on
// loopback, with the provider built from this tree and installed from a
// filesystem mirror, as an operator without a registry would.

// adminKey is the KILN_ADMIN_KEY of the tests' kilns.
const adminKey = "sk-kiln-admin-tf-test"

// providerVersion is the version the mirror serves the provider under.
const providerVersion = "0.1.0"

var (
	mirrorOnce sync.Once
	mirrorDir  string
	mirrorErr  error
	// buildTime is how long building the provider took.
	buildTime time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if mirrorDir != "" {
		_ = os.RemoveAll(mirrorDir)
	}
	os.Exit(code)
}

// mirror builds the provider once per test binary into a filesystem
// mirror (the unpacked layout: HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/) and
// returns the mirror's folder.
func mirror(t *testing.T) string {
	t.Helper()
	mirrorOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-tf-mirror-")
		if err != nil {
			mirrorErr = err
			return
		}
		mirrorDir = dir
		target := filepath.Join(dir, filepath.FromSlash(provider.Address), providerVersion, runtime.GOOS+"_"+runtime.GOARCH)
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", filepath.Join(target, "terraform-provider-kiln_v"+providerVersion),
			"-ldflags", "-X main.version="+providerVersion, "github.com/kilnhq/kiln/cmd/terraform-provider-kiln")
		if out, err := cmd.CombinedOutput(); err != nil {
			mirrorErr = fmt.Errorf("build the provider: %v\n%s", err, out)
			return
		}
		buildTime = time.Since(start)
	})
	require.NoError(t, mirrorErr)
	return mirrorDir
}

// stack is a kiln with OpenTofu pointed at it: a working folder, a CLI
// configuration that installs the provider from the mirror only, and the
// environment that configures the provider.
type stack struct {
	t    *testing.T
	kiln *kilntest.Env
	// base is the URL tofu talks to: kiln, through a proxy that counts
	// requests.
	base     string
	requests atomic.Int64
	dir      string
	env      []string
	bin      string
}

// newStack starts kiln on backend and prepares a working folder.
func newStack(t *testing.T, backend string) *stack {
	t.Helper()
	bin := testenv.TofuBin(t)
	mir := mirror(t)
	env := kilntest.Start(t, backend, kilntest.Options{Configure: func(c *config.Config) {
		c.AdminKey = adminKey
		c.WebhookAllowPrivate = true // the tests' receivers are on loopback
	}})
	s := &stack{t: t, kiln: env, dir: t.TempDir(), bin: bin}
	target, err := url.Parse(env.Base())
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(counted.Close)
	s.base = counted.URL

	home := t.TempDir()
	rc := filepath.Join(home, "tofurc")
	require.NoError(t, os.WriteFile(rc, []byte(fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = [%q]
  }
  direct {
    exclude = [%q]
  }
}
`, mir, provider.Address, provider.Address)), 0o644))
	s.env = append(testenv.EnvironWithout("KILN_"),
		"TF_CLI_CONFIG_FILE="+rc, // the environment's points at a file that is not there
		"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_INPUT=0",
		"TF_DATA_DIR="+filepath.Join(s.dir, ".terraform"),
		"HOME="+home,
		provider.EnvBaseURL+"="+s.base,
		provider.EnvAdminKey+"="+adminKey,
	)
	return s
}

// write replaces the working folder's main.tf.
func (s *stack) write(config string) {
	s.t.Helper()
	require.NoError(s.t, os.WriteFile(filepath.Join(s.dir, "main.tf"), []byte(providerBlock+config), 0o644))
}

const providerBlock = `terraform {
  required_providers {
    kiln = { source = "kiln/kiln" }
  }
}

`

// run runs tofu with args in the working folder and returns its output
// and exit code; an error other than a non-zero exit fails the test.
func (s *stack) run(args ...string) (string, int) {
	s.t.Helper()
	return s.runIn(s.dir, args...)
}

func (s *stack) runIn(dir string, args ...string) (string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir, cmd.Env = dir, s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), exit.ExitCode()
	}
	require.NoError(s.t, err, "tofu %s: %s", strings.Join(args, " "), out.String())
	return out.String(), 0
}

// must runs tofu and fails the test unless it exits 0.
func (s *stack) must(args ...string) string {
	s.t.Helper()
	out, code := s.run(args...)
	require.Equal(s.t, 0, code, "tofu %s:\n%s", strings.Join(args, " "), out)
	return out
}

// init runs tofu init, which installs the provider from the mirror.
func (s *stack) init() {
	s.t.Helper()
	s.must("init", "-no-color")
}

func (s *stack) apply() string {
	s.t.Helper()
	return s.must("apply", "-auto-approve", "-no-color")
}

// planCode is tofu plan -detailed-exitcode's answer: 0 no changes, 2
// changes.
func (s *stack) planCode() (string, int) {
	s.t.Helper()
	out, code := s.run("plan", "-detailed-exitcode", "-no-color")
	require.Contains(s.t, []int{0, 2}, code, "tofu plan:\n%s", out)
	return out, code
}

// output reads one output of the state, raw.
func (s *stack) output(name string) string {
	s.t.Helper()
	return strings.TrimSpace(s.must("output", "-raw", name))
}

// admin calls kiln's Administration API directly, beside Terraform.
func (s *stack) admin(method, path string, body any, want int, into any) {
	s.t.Helper()
	kilntest.Call(s.t, s.kiln.Base(), adminKey, method, path, body, want, into)
}

// receiver is a loopback webhook receiver's URL; nothing is sent to it in
// these tests, but kiln checks the address.
func receiver(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}
