#!/usr/bin/env bash
# Prints the path of a MinIO server binary for tests, building it first if
# needed (5-12 minutes, about 150 MB). MinIO is AGPLv3: kiln only runs it as a
# separate process and never imports it.
#
# The binary is cached by version under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kiln/minio/<version>/minio
# Build output goes to stderr; stdout carries only the path.
set -euo pipefail

version=v0.0.0-20260212201848-7aac2a2c5b7c
module=github.com/minio/minio

dir="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/minio/$version"
bin="$dir/minio"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "install-minio.sh: go is not on PATH; it is needed to build MinIO" >&2
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
echo "install-minio.sh: building $module@$version into $dir (this takes several minutes)" >&2
(cd "$tmp" && GOBIN="$tmp" go install "$module@$version") >&2
mv -f "$tmp/minio" "$bin"
echo "$bin"
