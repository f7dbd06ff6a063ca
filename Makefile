# kiln — the two commands a newcomer needs:
#   make run    start kiln on the embedded default (SQLite + ./data + the simulator)
#   make test   the whole suite, with its own Postgres and MinIO
GO ?= go

.PHONY: run build lambda provider test test-short chaos monitoring lint fmt openapi services-start services-stop clean demo bench

# Built, then run (not go run, which exits 1 on Ctrl-C whatever kiln does).
run:
	@echo "make run: building bin/kiln (the first build takes a few minutes on a small machine)"
	$(GO) build -o bin/kiln ./cmd/kiln && bin/kiln serve

build:
	$(GO) build -o bin/kiln ./cmd/kiln

# The Lambda handler (cmd/kiln-lambda) for the provided.al2023 runtime:
# bin/kiln-lambda-amd64.zip and bin/kiln-lambda-arm64.zip, each holding the
# binary as bootstrap (LAMBDA_ARCHES=arm64 builds one).
LAMBDA_ARCHES ?= amd64 arm64
lambda:
	$(GO) run ./internal/lambdazip -o bin $(LAMBDA_ARCHES)

# The Terraform/OpenTofu provider (terraform/provider), laid out as a
# filesystem mirror in bin/terraform-mirror (see terraform/provider/README.md).
PROVIDER_VERSION ?= 0.1.0
provider:
	$(GO) build -ldflags "-X main.version=$(PROVIDER_VERSION)" \
		-o bin/terraform-mirror/registry.opentofu.org/kiln/kiln/$(PROVIDER_VERSION)/$$($(GO) env GOOS)_$$($(GO) env GOARCH)/terraform-provider-kiln_v$(PROVIDER_VERSION) \
		./cmd/terraform-provider-kiln

# The whole suite. scripts/install-chromium.sh installs Debian's Chromium
# for the workbench's browser tests, scripts/install-axe.sh the axe-core
# accessibility checker they run (from npm), and scripts/install-checkers.sh
# cloud-init, shellcheck and caddy for the Terraform modules' tests (once);
# scripts/test-services.sh starts a throwaway Postgres and MinIO on free
# loopback ports (and builds OpenTofu once, see scripts/install-tofu.sh),
# runs the tests against them and stops them.
test:
	scripts/install-chromium.sh
	scripts/install-axe.sh
	scripts/install-checkers.sh
	KILN_TEST_ARTIFACTS=$${KILN_TEST_ARTIFACTS:-$(CURDIR)/artifacts} scripts/test-services.sh run -- $(GO) test -count=1 -timeout 20m ./...

# The chaos suite: KILN_CHAOS_RUNS seeded runs (50 here; `make test` runs
# 2) of kiln's processes on a private Postgres and MinIO, killed and cut off
# at random points, each checked for kiln's invariants; a table of the runs
# at the end. KILN_CHAOS_SEED=S starts from seed S (default: the time).
KILN_CHAOS_RUNS ?= 50
chaos:
	KILN_CHAOS_RUNS=$(KILN_CHAOS_RUNS) KILN_TEST_ARTIFACTS=$${KILN_TEST_ARTIFACTS:-$(CURDIR)/artifacts} scripts/test-services.sh run -- $(GO) test -count=1 -timeout 90m -run '^TestChaos$$' -v ./internal/faulttest/

# Only the tests that need no services (the rest skip, by request).
test-short:
	KILN_TEST_ALLOW_SKIP=1 $(GO) test -count=1 ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Regenerate the committed OpenAPI document (a test fails when it is stale).
openapi:
	$(GO) run ./cmd/kiln openapi > api/openapi.yaml

# Regenerate the Grafana dashboards in monitoring/grafana/dashboards (a test
# fails when they are stale).
monitoring:
	$(GO) generate ./monitoring

# A whole kiln in-process (temp dir, simulator) runs every conquest type's samples.
demo:
	$(GO) run ./cmd/kiln conquest demo

# Regenerate benchmarks/README.md: every func Benchmark in the repository,
# with the cheap ones run for their latest figures. BENCH_ALL=1 runs them
# all, on a throwaway Postgres and MinIO (long: see the README).
bench:
ifeq ($(BENCH_ALL),1)
	scripts/test-services.sh run -- $(GO) run ./internal/bench/figures -all
else
	$(GO) run ./internal/bench/figures
endif

clean:
	rm -rf bin data
