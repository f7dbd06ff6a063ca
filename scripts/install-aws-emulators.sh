#!/usr/bin/env bash
# Prints the path of an AWS emulator binary for tests, building it from the
# Go module proxy first if needed:
#
#   scripts/install-aws-emulators.sh goaws       SQS/SNS emulator (about 1 min)
#   scripts/install-aws-emulators.sh lambda-rie  AWS Lambda Runtime Interface
#                                                Emulator (about 1 min)
#
# Binaries are cached by version under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kiln/<name>/<version>/<name>
# Build output goes to stderr; stdout carries only the path. internal/testenv
# keeps the versions in step with this script (a test compares them).
set -euo pipefail

name=${1:-}
case $name in
goaws)
	module=github.com/Admiral-Piett/goaws
	version=v0.4.5
	pkg=app/cmd
	built=cmd # the package's binary is named after its folder
	;;
lambda-rie)
	module=github.com/aws/aws-lambda-runtime-interface-emulator
	version=v0.0.0-20261030222936-bef5c4ba774d
	pkg=cmd/aws-lambda-rie
	built=aws-lambda-rie
	;;
*)
	echo "usage: $0 goaws|lambda-rie" >&2
	exit 2
	;;
esac

dir="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/$name/$version"
bin="$dir/$name"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v go >/dev/null; then
	echo "install-aws-emulators.sh: go is not on PATH; it is needed to build $name" >&2
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
echo "install-aws-emulators.sh: building $module/$pkg@$version into $dir" >&2
(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$module/$pkg@$version") >&2
mv -f "$tmp/$built" "$bin"
echo "$bin"
