#!/usr/bin/env bash
# Installs Chromium for the curation workbench's browser tests
# (curation/ui_test.go) from Debian's packages. Idempotent: does nothing when
# a chromium is on PATH already. Uses sudo only when not run as root.
#
# The tests find the browser through $KILN_TEST_CHROMIUM, or `chromium` on
# PATH.
set -euo pipefail

if [[ -n "${KILN_TEST_CHROMIUM:-}" && -x "${KILN_TEST_CHROMIUM}" ]]; then
	echo "install-chromium.sh: using KILN_TEST_CHROMIUM=${KILN_TEST_CHROMIUM}"
	exit 0
fi
if command -v chromium >/dev/null 2>&1; then
	echo "install-chromium.sh: $(command -v chromium) is already installed"
	exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-chromium.sh: not root and no sudo: install the chromium package by hand" >&2
		exit 1
	fi
	sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q chromium
echo "install-chromium.sh: installed $(command -v chromium)"
