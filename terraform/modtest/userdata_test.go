package modtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kilnhq/kiln/internal/testenv"
)

// writeFiles does what cloud-init's write_files does with cc: each file,
// with its folders and mode. The paths already hold the test's root.
func writeFiles(t testing.TB, cc cloudConfig) {
	t.Helper()
	for _, f := range cc.WriteFiles {
		mode, err := strconv.ParseUint(f.Permissions, 8, 32)
		require.NoError(t, err, "%s: permissions %q", f.Path, f.Permissions)
		require.NoError(t, os.MkdirAll(filepath.Dir(f.Path), 0o755))
		require.NoError(t, os.WriteFile(f.Path, []byte(f.Content), os.FileMode(mode)))
		require.NoError(t, os.Chmod(f.Path, os.FileMode(mode)))
	}
}

// stub makes an executable that does nothing at path, for units whose
// ExecStart names a binary the start-up script would download.
func stub(t testing.TB, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755))
}

// TestUserData renders each module's user-data with tofu for several input
// sets and checks it with the tools a host would meet it with:
//   - cloud-init schema validates the whole #cloud-config;
//   - systemd-analyze verify loads every unit file it writes (syntax,
//     directives, that ExecStart's binary exists and is executable, and
//     that the units it needs resolve);
//   - shellcheck finds nothing, at every severity, in every script it writes
//     (the start-up script and the kiln-admin wrapper);
//   - caddy adapt (Debian's Caddy, as the host runs) parses the Caddyfile;
//   - no secret of the inputs is in a unit file or a script, and the files
//     that hold them are 0600.
func TestUserData(t *testing.T) {
	t.Parallel()
	testenv.TofuBin(t)
	cloudInit := requireTool(t, "cloud-init", "cloud-init")
	systemdAnalyze := requireTool(t, "systemd-analyze", "systemd")
	shellcheck := requireTool(t, "shellcheck", "shellcheck")
	caddy := requireTool(t, "caddy", "caddy")

	const (
		apiKey     = "sk-kiln-testsecret-api"
		adminKey   = "sk-kiln-admin-testsecret"
		dbPassword = "db-testsecret-password"
		tlsKey     = "-----BEGIN PRIVATE KEY-----\nMIItestsecret\n-----END PRIVATE KEY-----\n"
		hfToken    = "hf_testsecret"
	)
	cases := []struct {
		name    string
		module  string
		vars    map[string]any
		secrets []string
		units   []string          // unit files it must write
		bins    []string          // binaries under the root ExecStart names
		stand   map[string]string // stand-ins for prerequisite units the host would have
		// caddyfiles is how many Caddyfiles it writes.
		caddyfiles int
	}{
		{
			name: "host local stack behind caddy", module: "kiln-host",
			vars:       map[string]any{"public_url": "https://kiln.example.com", "kiln_version": "v1.0.0", "acme_email": "ops@example.com", "admin_key": adminKey},
			secrets:    []string{adminKey},
			units:      []string{"kiln.service", "kiln-minio.service"},
			bins:       []string{"usr/local/bin/kiln", "usr/local/bin/minio"},
			caddyfiles: 1,
		},
		{
			name: "host external database and bucket with certs", module: "kiln-host",
			vars: map[string]any{
				"public_url": "https://kiln.example.com", "kiln_binary_url": "https://example.com/kiln", "tls_mode": "certs",
				"tls_certificate": "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n", "tls_private_key": tlsKey,
				"database_url":     "postgres://kiln:" + dbPassword + "@db.internal:5432/kiln?sslmode=require",
				"object_store_url": "s3://kiln-bucket?region=eu-west-1", "api_key": apiKey,
				"settings": map[string]string{"KILN_INBOX_PREFIX": "inbox/"},
			},
			secrets:    []string{apiKey, dbPassword, "MIItestsecret"},
			units:      []string{"kiln.service"},
			bins:       []string{"usr/local/bin/kiln"},
			caddyfiles: 1,
		},
		{
			name: "host without tls, direct", module: "kiln-host",
			vars:  map[string]any{"public_url": "http://10.0.0.5:4080", "kiln_version": "v1.0.0", "tls_mode": "none", "service_manager": "direct", "install_packages": false},
			units: []string{"kiln.service", "kiln-minio.service"},
			bins:  []string{"usr/local/bin/kiln", "usr/local/bin/minio"},
		},
		{
			name: "agent venv", module: "kiln-gpu-agent",
			vars: map[string]any{
				"kiln_version": "v1.0.0", "models": []string{"Qwen/Qwen2.5-3B-Instruct", "google/gemma-3-4b-it"},
				"database_url":     "postgres://kiln:" + dbPassword + "@10.0.0.5:5432/kiln",
				"object_store_url": "s3://kiln-bucket?region=eu-west-1", "hf_token": hfToken, "max_num_seqs": 64, "gpu_memory_utilization": 0.85,
			},
			secrets: []string{dbPassword, hfToken},
			units:   []string{"kiln-agent.service"},
			bins:    []string{"usr/local/bin/kiln"},
		},
		{
			name: "agent container with sleep mode", module: "kiln-gpu-agent",
			vars: map[string]any{
				"kiln_version": "v1.0.0", "models": []string{"meta-llama/Llama-3.2-3B-Instruct"}, "engine": "container", "sleep_mode": true,
				"database_url": "postgres://kiln:" + dbPassword + "@10.0.0.5:5432/kiln", "object_store_url": "s3://kiln-bucket", "hf_token": hfToken,
			},
			secrets: []string{dbPassword, hfToken},
			units:   []string{"kiln-agent.service"},
			bins:    []string{"usr/local/bin/kiln"},
			// Docker is a prerequisite of the container engine, not installed here.
			stand: map[string]string{"docker.service": "[Unit]\nDescription=stand-in for Docker\n\n[Service]\nExecStart=/bin/true\n"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			vars := map[string]any{"root": root}
			for k, v := range tc.vars {
				vars[k] = v
			}
			userData := render(t, tc.module, vars)
			require.True(t, strings.HasPrefix(userData, "#cloud-config\n"), "user-data starts with #cloud-config")

			// cloud-init's own schema check of the whole document.
			ud := filepath.Join(t.TempDir(), "user-data")
			require.NoError(t, os.WriteFile(ud, []byte(userData), 0o600))
			out, err := exec.Command(cloudInit, "schema", "--config-file", ud).CombinedOutput()
			require.NoError(t, err, "cloud-init schema:\n%s", out)
			require.Contains(t, string(out), "Valid")

			cc := parseCloudConfig(t, userData)
			require.Len(t, cc.Runcmd, 1)
			writeFiles(t, cc)
			for _, b := range tc.bins {
				stub(t, filepath.Join(root, b))
			}

			var units, scripts, caddyfiles []string
			for _, f := range cc.WriteFiles {
				require.True(t, strings.HasPrefix(f.Path, root+"/"), "%s is under the root", f.Path)
				switch {
				case strings.HasSuffix(f.Path, ".service"):
					units = append(units, f.Path)
				case strings.HasPrefix(f.Content, "#!"):
					scripts = append(scripts, f.Path)
				case filepath.Base(f.Path) == "Caddyfile":
					caddyfiles = append(caddyfiles, f.Path)
				}
				if strings.HasSuffix(f.Path, ".env") || strings.HasSuffix(f.Path, "key.pem") {
					require.Equal(t, "0600", f.Permissions, "%s holds secrets", f.Path)
				}
				if strings.HasSuffix(f.Path, ".service") || strings.HasPrefix(f.Content, "#!") || strings.HasSuffix(f.Path, "Caddyfile") {
					for _, s := range tc.secrets {
						require.NotContains(t, f.Content, s, "%s holds a secret", f.Path)
					}
				}
			}
			require.Contains(t, scripts, cc.Runcmd[0][0], "runcmd runs a script it wrote")
			var names []string
			for _, u := range units {
				names = append(names, filepath.Base(u))
			}
			require.ElementsMatch(t, tc.units, names)
			for name, content := range tc.stand {
				require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(units[0]), name), []byte(content), 0o644))
			}

			// systemd-analyze verify with the units' folder first in the
			// search path, so that Requires= between them resolves.
			cmd := exec.Command(systemdAnalyze, append([]string{"verify", "--man=no"}, units...)...)
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+filepath.Dir(units[0])+":")
			out, err = cmd.CombinedOutput()
			require.NoError(t, err, "systemd-analyze verify:\n%s", out)
			require.Empty(t, unitWarnings(string(out)), "systemd-analyze verify warns:\n%s", out)

			out, err = exec.Command(shellcheck, append([]string{"--severity=style", "--norc"}, scripts...)...).CombinedOutput()
			require.NoError(t, err, "shellcheck:\n%s", out)

			require.Len(t, caddyfiles, tc.caddyfiles)
			for _, f := range caddyfiles {
				// adapt parses and converts the Caddyfile without starting a
				// server; stderr would warn of unformatted input.
				cmd := exec.Command(caddy, "adapt", "--config", f, "--adapter", "caddyfile")
				var stderr strings.Builder
				cmd.Stderr = &stderr
				require.NoError(t, cmd.Run(), "caddy adapt %s:\n%s", f, stderr.String())
				require.NotContains(t, stderr.String(), "not formatted", f)
			}
		})
	}
}

// unitWarnings returns systemd-analyze verify's lines about the units under
// test. It also reports on the host's own units that those pull in
// (multi-user.target's, on a machine without systemd as PID 1); those are
// left out.
func unitWarnings(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "kiln") {
			lines = append(lines, l)
		}
	}
	return lines
}
