#!/usr/bin/env bash
# Installs the tools that check the Terraform modules' rendered user-data
# (terraform/modtest): cloud-init (`cloud-init schema`), shellcheck and
# caddy (`caddy adapt` parses the rendered Caddyfiles), from Debian's
# packages. systemd-analyze comes with systemd. Idempotent: does nothing
# when all are on PATH. Uses sudo only when not run as root.
set -euo pipefail

missing=()
for tool in cloud-init shellcheck caddy; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-checkers.sh: cloud-init, shellcheck and caddy are installed"
	exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-checkers.sh: not root and no sudo: install the packages ${missing[*]} by hand" >&2
		exit 1
	fi
	sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-checkers.sh: installed ${missing[*]}"
