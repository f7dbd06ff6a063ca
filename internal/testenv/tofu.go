package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvTofuBin names the OpenTofu binary the Terraform tests run;
// scripts/test-services.sh sets it from scripts/install-tofu.sh.
const EnvTofuBin = "KILN_TEST_TOFU_BIN"

// tofuVersion is the OpenTofu scripts/install-tofu.sh builds and caches.
const tofuVersion = "v1.12.6"

// TofuBin returns the OpenTofu binary: EnvTofuBin, else the one
// scripts/install-tofu.sh caches. Without either, t is Unavailable.
func TofuBin(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(EnvTofuBin); bin != "" {
		if err := executable(bin); err != nil {
			t.Fatalf("%s: %v", EnvTofuBin, err)
		}
		return bin
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	bin := filepath.Join(cache, "kiln", "tofu", tofuVersion, "tofu")
	if executable(bin) == nil {
		return bin
	}
	Unavailable(t, fmt.Sprintf("this test runs OpenTofu, but %s is not set and scripts/install-tofu.sh has not built %s. "+
		"Run the tests with `make test`, or run scripts/install-tofu.sh (several minutes) first.", EnvTofuBin, bin))
	return ""
}
