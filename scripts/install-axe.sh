#!/usr/bin/env bash
# Installs axe-core, the accessibility checker the workbench's browser
# tests run in the page (internal/browsertest.Axe), from npm into
# ~/.cache/kiln/axe-core/VERSION/axe.min.js. Idempotent: does nothing when
# that file is there. Needs npm (Debian's npm package).
set -euo pipefail

version=4.10.3
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/axe-core/$version"
if [[ -s "$dir/axe.min.js" ]]; then
	echo "install-axe.sh: axe-core $version is installed"
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "install-axe.sh: npm is not installed: install Debian's npm package" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null)
tar -xzf "$tmp/axe-core-$version.tgz" -C "$tmp" package/axe.min.js
mkdir -p "$dir"
mv "$tmp/package/axe.min.js" "$dir/axe.min.js.part"
mv "$dir/axe.min.js.part" "$dir/axe.min.js"
echo "install-axe.sh: installed axe-core $version in $dir"
