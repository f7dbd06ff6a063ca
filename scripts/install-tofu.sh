#!/usr/bin/env bash
# Prints the path of an OpenTofu binary for tests, building it first if
# needed (4-11 minutes). `go install github.com/opentofu/opentofu/cmd/tofu@...`
# fails because of the module's replace directives, so the build runs inside
# the (read-only) module cache and writes the binary elsewhere with -o.
#
# The binary is cached by version under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kiln/tofu/<version>/tofu
# Build output goes to stderr; stdout carries only the path.
set -euo pipefail

version=v1.12.6
module=github.com/opentofu/opentofu

dir="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/tofu/$version"
bin="$dir/tofu"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "install-tofu.sh: go is not on PATH; it is needed to build OpenTofu" >&2
	exit 1
fi

mkdir -p "$dir"
# One build at a time; a second caller waits and then finds the binary.
exec 9>"$dir/.lock"
if command -v flock >/dev/null; then
	flock 9
	if [[ -x "$bin" ]]; then
		echo "$bin"
		exit 0
	fi
fi

# Build into a private folder and move the result into place, so that an
# interrupted build never leaves a half-written binary at $bin.
tmp="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "install-tofu.sh: building $module@$version into $dir (this takes several minutes)" >&2
# Run outside any module so that kiln's go.mod and GOFLAGS do not apply.
(
	cd "$tmp"
	GOFLAGS=-mod=mod go mod download "$module@$version"
	src="$(go env GOMODCACHE)/$module@$version"
	cd "$src"
	GOFLAGS=-mod=mod go build -o "$tmp/tofu" ./cmd/tofu
) >&2
mv -f "$tmp/tofu" "$bin"
echo "$bin"
