# kiln — the two commands a newcomer needs:
#   make run    start kiln on the embedded default (SQLite + ./data + the simulator)
#   make test   the whole suite, with its own Postgres and MinIO
GO ?= go

.PHONY: run build test test-short lint fmt openapi services-start services-stop clean demo

run:
	$(GO) run ./cmd/kiln serve

build:
	$(GO) build -o bin/kiln ./cmd/kiln

# The whole suite. scripts/install-chromium.sh installs Debian's Chromium
# for the workbench's browser tests (once); scripts/test-services.sh starts a
# throwaway Postgres and MinIO on free loopback ports, runs the tests
# against them and stops them.
test:
	scripts/install-chromium.sh
	KILN_TEST_ARTIFACTS=$${KILN_TEST_ARTIFACTS:-$(CURDIR)/artifacts} scripts/test-services.sh run -- $(GO) test -count=1 -timeout 20m ./...

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

# A whole kiln in-process (temp dir, simulator) runs every conquest type's samples.
demo:
	$(GO) run ./cmd/kiln conquest demo

clean:
	rm -rf bin data
