package modtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kilnhq/kiln/internal/testenv"
)

const (
	// tofuTimeout bounds one tofu command; init and apply of these modules
	// take seconds.
	tofuTimeout = 3 * time.Minute
)

// requireTool returns the path of a checking tool, or ends t as unavailable.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, "this test checks rendered files with "+name+", which is not installed (Debian: apt-get install "+pkg+").")
	}
	return path
}

// modulesDir is terraform/modules, as an absolute path.
func modulesDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "modules"))
	require.NoError(t, err)
	return dir
}

// runTofu runs tofu in dir, offline: a CLI configuration of its own (the
// environment may point TF_CLI_CONFIG_FILE at a missing file) and no
// checkpoint calls. It returns stdout, and fails t with both outputs.
func runTofu(t testing.TB, dir string, args ...string) string {
	t.Helper()
	bin := testenv.TofuBin(t)
	cfg := filepath.Join(t.TempDir(), "tofurc")
	require.NoError(t, os.WriteFile(cfg, nil, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), tofuTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cfg, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_INPUT=0", "TF_DATA_DIR="+filepath.Join(dir, ".terraform"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tofu %v in %s: %v\nstdout:\n%s\nstderr:\n%s", args, dir, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// render applies a root module that calls module (a folder of
// terraform/modules) with vars and returns its user_data output: the text
// cloud-init would get.
func render(t testing.TB, module string, vars map[string]any) string {
	t.Helper()
	return applyRoot(t, map[string]map[string]any{"m": withSource(t, module, vars)}, "m.user_data")["m.user_data"]
}

// withSource returns vars with source set to terraform/modules/module.
func withSource(t testing.TB, module string, vars map[string]any) map[string]any {
	t.Helper()
	args := map[string]any{"source": filepath.Join(modulesDir(t), module)}
	for k, v := range vars {
		args[k] = v
	}
	return args
}

// applyRoot applies a root module made of the module calls modules (name
// => arguments, "${module.other.output}" references allowed) and returns
// the outputs named "module.output", read with tofu output -raw.
func applyRoot(t testing.TB, modules map[string]map[string]any, outputs ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	outs := map[string]any{}
	for i, o := range outputs {
		outs[fmt.Sprintf("o%d", i)] = map[string]any{"value": "${module." + o + "}", "sensitive": true}
	}
	root := map[string]any{"module": modules, "output": outs}
	src, err := json.MarshalIndent(root, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf.json"), src, 0o644))
	runTofu(t, dir, "init", "-input=false", "-no-color")
	runTofu(t, dir, "apply", "-auto-approve", "-input=false", "-no-color")
	values := map[string]string{}
	for i, o := range outputs {
		values[o] = runTofu(t, dir, "output", "-raw", fmt.Sprintf("o%d", i))
	}
	return values
}

// cloudConfig is the part of a rendered #cloud-config the tests use.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions"`
		Owner       string `yaml:"owner"`
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

func parseCloudConfig(t testing.TB, userData string) cloudConfig {
	t.Helper()
	var cc cloudConfig
	require.NoError(t, yaml.Unmarshal([]byte(userData), &cc))
	require.NotEmpty(t, cc.WriteFiles)
	return cc
}
