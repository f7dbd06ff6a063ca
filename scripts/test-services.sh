#!/usr/bin/env bash
# Starts and stops the throwaway servers kiln's tests use: a Postgres cluster
# and a MinIO server, on free loopback ports, with their data in one folder.
#
#   scripts/test-services.sh start DIR     start both; writes DIR/env
#   scripts/test-services.sh stop DIR      stop both (safe to repeat)
#   scripts/test-services.sh run -- CMD..  start in a temporary folder, run CMD
#                                          with the env, stop, exit with CMD's
#                                          status
#
# It also starts goaws, an SQS and SNS emulator, for the SQS inbox's tests,
# and builds the AWS Lambda Runtime Interface Emulator, which the Lambda
# tests run per test.
#
# DIR/env exports KILN_TEST_DATABASE_URL and KILN_TEST_S3_URL, which
# internal/testenv reads, and KILN_TEST_MINIO_BIN, the MinIO binary with
# which testenv starts private servers for tests that restart them;
# KILN_TEST_GOAWS_URL (and KILN_TEST_GOAWS_BIN) and KILN_TEST_LAMBDA_RIE_BIN;
# KILN_TEST_TOFU_BIN, the OpenTofu binary the Terraform provider's tests
# run (scripts/install-tofu.sh builds it once);
# and KILN_TEST_NOT_RUN, a file where tests that cannot run here (the
# LocalStack test without Docker) say so: `run` prints it at the end.
# Postgres comes from the system (on Debian/Ubuntu as root it is installed
# if missing); MinIO from scripts/install-minio.sh; goaws and the emulator
# from scripts/install-aws-emulators.sh.
# As root, Postgres runs as the postgres user, so DIR's parents must be
# traversable by it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ready_timeout=60 # seconds to wait for each server

log() { echo "test-services: $*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	die "usage: $0 start DIR | stop DIR | run -- CMD [ARG...]"
}

is_root() { [[ $(id -u) == 0 ]]; }

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# free_port prints a loopback TCP port nothing listens on now. Another
# process may still take it before we do, so callers retry.
free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
		return 0
	fi
	local port
	for _ in {1..100}; do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	die "found no free port"
}

# http_ok PORT PATH succeeds when GET PATH on 127.0.0.1:PORT answers 200. Plain
# bash, so that neither curl nor wget is needed.
http_ok() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
		IFS= read -r -t 5 status <&3
		[[ $status == HTTP/1.?" 200"* ]]
	) 2>/dev/null
}

show_log() {
	if [[ -f $1 ]]; then
		log "last lines of $1:"
		tail -n 20 "$1" >&2
	fi
}

# --- Postgres ---------------------------------------------------------------

# pg_bindir prints the folder with initdb and pg_ctl: KILN_PG_BINDIR, else the
# newest /usr/lib/postgresql/*/bin, else the PATH.
pg_bindir() {
	if [[ -n ${KILN_PG_BINDIR:-} ]]; then
		echo "$KILN_PG_BINDIR"
		return 0
	fi
	local d
	while read -r d; do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV)
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

ensure_postgres() {
	if pg_bindir >/dev/null; then
		return 0
	fi
	if is_root && [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
		log "PostgreSQL is not installed; installing it with apt-get"
		apt-get update >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
		pg_bindir >/dev/null || die "apt-get installed postgresql, but initdb and pg_ctl are still not found"
		return 0
	fi
	die "PostgreSQL server programs (initdb, pg_ctl) are not installed. Install them, for example:
  Debian/Ubuntu: sudo apt-get install postgresql
  Fedora/RHEL:   sudo dnf install postgresql-server
  macOS:         brew install postgresql@15
or set KILN_PG_BINDIR to the folder that holds initdb and pg_ctl."
}

# as_pg runs a Postgres program as the postgres user when we are root, since
# initdb and postgres refuse to run as root. It runs from / because they fail
# in a working folder they cannot read.
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

start_postgres() {
	local dir=$1 bindir pgdir sock port attempt
	ensure_postgres
	bindir="$(pg_bindir)"
	pgdir="$dir/pg"
	mkdir -p "$pgdir"
	if is_root; then
		id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to run Postgres as (the postgresql package creates it)"
		command -v runuser >/dev/null || die "running as root needs runuser (util-linux) to run Postgres as the postgres user"
		chown postgres "$pgdir"
		as_pg test -w "$pgdir" || die "the postgres user cannot write $pgdir: every folder above it must be traversable by others (chmod o+x)"
	fi
	chmod 700 "$pgdir"

	if [[ ! -f $pgdir/data/PG_VERSION ]]; then
		as_pg "$bindir/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
			>"$pgdir/initdb.log" 2>&1 || {
			show_log "$pgdir/initdb.log"
			die "initdb failed"
		}
	fi

	# A Unix socket path is limited to about 100 bytes; go TCP-only beyond.
	sock="$pgdir"
	if ((${#sock} > 80)); then
		sock=""
	fi
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		# pg_ctl passes -o through a shell, hence the inner quotes.
		if as_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -t "$ready_timeout" \
			-o "-p $port -k '$sock' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
			start >/dev/null; then
			echo "export KILN_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable'" >>"$dir/env.tmp"
			log "Postgres $("$bindir/pg_ctl" --version | awk '{print $3}') listening on 127.0.0.1:$port (data in $pgdir)"
			return 0
		fi
		if ! grep -q "could not bind\|Address already in use" "$pgdir/log" 2>/dev/null; then
			break
		fi
		log "port $port was taken; trying another (attempt $attempt)"
	done
	show_log "$pgdir/log"
	die "Postgres did not start"
}

stop_postgres() {
	local dir=$1 bindir
	[[ -f $dir/pg/data/postmaster.pid ]] || return 0
	bindir="$(pg_bindir)" || return 0
	as_pg "$bindir/pg_ctl" -D "$dir/pg/data" -m fast -w -t 60 stop >/dev/null ||
		log "pg_ctl stop failed for $dir/pg/data (was it already gone?)"
}

# --- MinIO ------------------------------------------------------------------

start_minio() {
	local dir=$1 bin user password port console pid attempt deadline
	bin="$("$here/install-minio.sh")" || die "could not get a MinIO binary (scripts/install-minio.sh failed)"
	user="kiln$(rand_hex 4)"
	password="$(rand_hex 16)"
	mkdir -p "$dir/minio"
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		console="$(free_port)"
		[[ $port != "$console" ]] || continue
		MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$password" MINIO_BROWSER=off MINIO_UPDATE=off \
			nohup "$bin" server "$dir/minio" --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
			</dev/null >"$dir/minio.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/minio.pid"
		deadline=$((SECONDS + ready_timeout))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			if http_ok "$port" /minio/health/live; then
				echo "export KILN_TEST_S3_URL='s3://$user:$password@kiln-test?endpoint=127.0.0.1:$port&region=us-east-1&secure=false'" >>"$dir/env.tmp"
				echo "export KILN_TEST_MINIO_BIN='$bin'" >>"$dir/env.tmp"
				log "MinIO listening on 127.0.0.1:$port (pid $pid, data in $dir/minio)"
				return 0
			fi
			sleep 0.2
		done
		stop_minio "$dir"
		if ! grep -qi "address already in use" "$dir/minio.log" 2>/dev/null; then
			break
		fi
		log "port $port or $console was taken; trying others (attempt $attempt)"
	done
	show_log "$dir/minio.log"
	die "MinIO did not become ready within ${ready_timeout}s"
}

stop_minio() {
	local dir=$1 pid deadline
	[[ -f $dir/minio.pid ]] || return 0
	pid="$(<"$dir/minio.pid")"
	# Only signal the process if it is still our MinIO, not a reused pid.
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "minio server $dir/minio "; then
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 15))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/minio.pid"
}

# --- AWS emulators -----------------------------------------------------------

start_goaws() {
	local dir=$1 bin port pid attempt deadline
	bin="$("$here/install-aws-emulators.sh" goaws)" || die "could not get a goaws binary (scripts/install-aws-emulators.sh failed)"
	mkdir -p "$dir/goaws"
	for attempt in 1 2 3 4 5; do
		port="$(free_port)"
		# As internal/testenv.GoAWSConfig: queues are made by the tests.
		cat >"$dir/goaws/goaws.yaml" <<-YAML
			Local:
			  Host: 127.0.0.1
			  Port: $port
			  Region: us-east-1
			  AccountId: "000000000000"
			  LogToFile: false
			  QueueAttributeDefaults:
			    VisibilityTimeout: 30
			    ReceiveMessageWaitTimeSeconds: 0
		YAML
		(cd "$dir/goaws" && exec nohup "$bin" -config "$dir/goaws/goaws.yaml" Local </dev/null >"$dir/goaws.log" 2>&1) &
		pid=$!
		echo "$pid" >"$dir/goaws.pid"
		deadline=$((SECONDS + ready_timeout))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			if http_ok "$port" /health; then
				echo "export KILN_TEST_GOAWS_URL='http://127.0.0.1:$port'" >>"$dir/env.tmp"
				echo "export KILN_TEST_GOAWS_BIN='$bin'" >>"$dir/env.tmp"
				log "goaws listening on 127.0.0.1:$port (pid $pid)"
				return 0
			fi
			sleep 0.2
		done
		stop_goaws "$dir"
		if ! grep -qi "address already in use" "$dir/goaws.log" 2>/dev/null; then
			break
		fi
		log "port $port was taken; trying another (attempt $attempt)"
	done
	show_log "$dir/goaws.log"
	die "goaws did not become ready within ${ready_timeout}s"
}

stop_goaws() {
	local dir=$1 pid
	[[ -f $dir/goaws.pid ]] || return 0
	pid="$(<"$dir/goaws.pid")"
	# Only signal the process if it is still our goaws, not a reused pid.
	if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-config $dir/goaws/goaws.yaml"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/goaws.pid"
}

install_lambda_rie() {
	local dir=$1 bin
	bin="$("$here/install-aws-emulators.sh" lambda-rie)" || die "could not get the Lambda Runtime Interface Emulator (scripts/install-aws-emulators.sh failed)"
	echo "export KILN_TEST_LAMBDA_RIE_BIN='$bin'" >>"$dir/env.tmp"
}

# The OpenTofu build (minutes, once) runs in the background while the
# other services start: install_tofu_start, then install_tofu_finish.
tofu_pid=
install_tofu_start() {
	local dir=$1
	"$here/install-tofu.sh" >"$dir/tofu.path" 2>"$dir/tofu.log" &
	tofu_pid=$!
}

install_tofu_finish() {
	local dir=$1
	if ! wait "$tofu_pid"; then
		cat "$dir/tofu.log" >&2
		die "could not get an OpenTofu binary (scripts/install-tofu.sh failed)"
	fi
	echo "export KILN_TEST_TOFU_BIN='$(cat "$dir/tofu.path")'" >>"$dir/env.tmp"
}

# --- commands ---------------------------------------------------------------

start_services() {
	local dir=$1
	if [[ -f $dir/pg/data/postmaster.pid || -f $dir/minio.pid || -f $dir/goaws.pid ]]; then
		die "services in $dir seem to be running; run: $0 stop $dir"
	fi
	rm -f "$dir/env" "$dir/env.tmp"
	install_tofu_start "$dir"
	start_postgres "$dir"
	start_minio "$dir"
	start_goaws "$dir"
	install_lambda_rie "$dir"
	install_tofu_finish "$dir"
	: >"$dir/not-run"
	echo "export KILN_TEST_NOT_RUN='$dir/not-run'" >>"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
	log "wrote $dir/env"
}

stop_services() {
	local dir=$1
	[[ -d $dir ]] || return 0
	stop_goaws "$dir"
	stop_minio "$dir"
	stop_postgres "$dir"
	rm -f "$dir/env" "$dir/env.tmp" "$dir/not-run"
}

# abs_dir makes DIR (and its parents) and prints its absolute path.
abs_dir() {
	mkdir -p "$1"
	(cd "$1" && pwd -P)
}

cmd=${1:-}
case $cmd in
start)
	[[ $# == 2 ]] || usage
	dir="$(abs_dir "$2")"
	# Stop what did start if the rest fails.
	trap 'rc=$?; if ((rc != 0)); then stop_services "$dir"; fi' EXIT
	start_services "$dir"
	trap - EXIT
	;;
stop)
	[[ $# == 2 ]] || usage
	[[ -d $2 ]] || exit 0
	stop_services "$(cd "$2" && pwd -P)"
	;;
run)
	shift
	[[ ${1:-} == -- ]] && shift
	[[ $# -gt 0 ]] || usage
	dir="$(mktemp -d "${TMPDIR:-/tmp}/kiln-test-services.XXXXXX")"
	dir="$(cd "$dir" && pwd -P)"
	# mktemp makes it 0700; the postgres user must get through it.
	chmod 755 "$dir"
	trap 'stop_services "$dir"; rm -rf "$dir"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start_services "$dir"
	# shellcheck disable=SC1091
	source "$dir/env"
	status=0
	"$@" || status=$?
	if [[ -s $dir/not-run ]]; then
		log "these tests did NOT run here (each says why; other tests cover their steps):"
		sort -u "$dir/not-run" | sed 's/^/  /' >&2
	fi
	exit "$status"
	;;
*)
	usage
	;;
esac
