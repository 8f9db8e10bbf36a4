#!/usr/bin/env bash
# Run "amtpkit conform" against amtpd several times and check that every
# run gives the same verdicts as the first.
#
# Usage: conformance/repeat.sh [RUNS]
#
#   RUNS  number of runs, 20 unless given. One run took 15 to 21 seconds
#         on a 2-core Linux VM shared with other builds, and 20 runs took
#         324 seconds.
#
# The script builds amtpd and amtpkit from this checkout into a temporary
# folder and creates a test PKI there with "amtpkit pki init". It starts
# one amtpd with a public and a private listener on 127.0.0.1, on ports
# that the system chooses, with a Maildir and the suite's DNS server as
# its resolver, a command timeout of 5 seconds, a gateway route to the
# suite's plain SMTP sink and a private route to its private sink. It then
# runs the whole suite RUNS times with --private-target, --maildir,
# --gateway-sink, --private-sink and --server-timeout, and compares the verdict of every clause
# and the exit status of each run with those of the first run. Reasons,
# transcripts and timings are not compared, because they contain tokens,
# ports and durations that change from run to run. There is no IPv6
# listener, so 4.2-ipv6-equivalent-tests is skipped in every run, and the
# short command timeout makes rfc5321-4.5.3.2.7-server-timeout warn.
#
# Exit status: 0 when every run matches the first, 1 when a run differs,
# 2 when the set-up fails (a build, the PKI, or amtpd does not start).
#
# Environment:
#   GO            the go command (default: go)
#   DNS_LISTEN    loopback IP:PORT for the suite's DNS server (default: a
#                 free port between 20000 and 59999 on 127.0.0.1)
#   STEP_TIMEOUT  the --timeout of each run (default: 3s)
#   RUN_TIMEOUT   seconds after which a run is stopped, with coreutils
#                 timeout when installed (default: 300)
#   KEEP_WORK     set to 1 to keep the temporary folder with the results
#
# The script stops the amtpd it started, by its process ID, and removes
# the temporary folder when it exits, also after a failure or Ctrl-C. It
# needs bash, jq and the go toolchain, and uses ss, when installed, to find
# a free DNS port.

set -euo pipefail

runs=${1:-20}
go_cmd=${GO:-go}
step_timeout=${STEP_TIMEOUT:-3s}
run_timeout=${RUN_TIMEOUT:-300}

if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
	echo "repeat.sh: RUNS must be a positive number, not '$runs'" >&2
	exit 2
fi
if ! command -v jq >/dev/null; then
	echo "repeat.sh: jq is missing. Install it (Debian: apt-get install jq)" >&2
	exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/amtp-repeat.XXXXXX")
amtpd_pid=""

cleanup() {
	if [[ -n $amtpd_pid ]] && kill -0 "$amtpd_pid" 2>/dev/null; then
		kill -TERM "$amtpd_pid" 2>/dev/null || true
		# Wait up to 10 seconds for amtpd to stop, then kill it.
		for _ in $(seq 1 100); do
			kill -0 "$amtpd_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$amtpd_pid" 2>/dev/null || true
		wait "$amtpd_pid" 2>/dev/null || true
	fi
	if [[ ${KEEP_WORK:-} == 1 ]]; then
		echo "repeat.sh: kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_setup() {
	echo "repeat.sh: $*" >&2
	exit 2
}

# port_in_use reports whether a TCP or UDP socket listens on the port.
port_in_use() {
	command -v ss >/dev/null || return 1
	[[ -n $(ss -Hlntu "sport = :$1" 2>/dev/null) ]]
}

# free_addr prints 127.0.0.1:PORT for a port in 20000-59999 that no
# socket listens on and that differs from the arguments.
free_addr() {
	local port addr
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		addr=127.0.0.1:$port
		if ! port_in_use "$port" && [[ " $* " != *" $addr "* ]]; then
			echo "$addr"
			return 0
		fi
	done
	return 1
}

dns_listen=${DNS_LISTEN:-}
if [[ -z $dns_listen ]]; then
	dns_listen=$(free_addr) || fail_setup "found no free port for the DNS server; set DNS_LISTEN"
fi
gateway_sink=$(free_addr "$dns_listen") || fail_setup "found no free port for the gateway sink"
private_sink=$(free_addr "$dns_listen" "$gateway_sink") || fail_setup "found no free port for the private sink"
server_timeout=5s

echo "repeat.sh: building amtpd and amtpkit into $work/bin"
(cd "$repo" && "$go_cmd" build -o "$work/bin/" ./cmd/amtpd ./cmd/amtpkit) || fail_setup "the build failed"
amtpkit=$work/bin/amtpkit
"$amtpkit" pki init --dir "$work/pki" >/dev/null || fail_setup "amtpkit pki init failed"

# pki_path prints the absolute path of a file of the PKI manifest.
pki_path() {
	echo "$work/pki/$(jq -r "$1" "$work/pki/manifest.json")"
}
server_cert=$(pki_path '.certificates[] | select(.name == "server") | .cert')
server_key=$(pki_path '.certificates[] | select(.name == "server") | .key')
server_cn=$(jq -r '.certificates[] | select(.name == "server") | .cn' "$work/pki/manifest.json")
public_ca=$(pki_path '.cas[] | select(.name == "public-ca") | .cert')
private_ca=$(pki_path '.cas[] | select(.name == "private-ca") | .cert')
private_client_cert=$(pki_path '.certificates[] | select(.name == "private-client") | .cert')
private_client_key=$(pki_path '.certificates[] | select(.name == "private-client") | .key')
users=$(pki_path '.users_file')
domain=$(jq -r '.domain' "$work/pki/manifest.json")

mkdir -p "$work/maildir" "$work/spool"
cat >"$work/amtpd.toml" <<EOF
hostname = "$server_cn"
[tls]
cert = "$server_cert"
key = "$server_key"
[dns]
server = "$dns_listen"
timeout = "2s"
[public]
listen = ["127.0.0.1:0"]
client_ca = ["$public_ca"]
[private]
listen = ["127.0.0.1:0"]
client_ca = ["$private_ca"]
users = "$users"
[policy]
mpc = ["DENY */optout"]
[[domain]]
name = "$domain"
mailboxes = ["alice", "bob"]
[delivery]
maildir = "$work/maildir"
[queue]
dir = "$work/spool"
[limits]
command_timeout = "$server_timeout"
[log]
level = "info"
[[route]]
domain = "gateway.$domain"
kind = "gateway"
smarthost = "$gateway_sink"
[[route]]
domain = "private-sink.$domain"
kind = "private"
smarthost = "$private_sink"
server_name = "private-sink.$domain"
cert = "$private_client_cert"
key = "$private_client_key"
server_ca = ["$private_ca"]
EOF

"$work/bin/amtpd" --config "$work/amtpd.toml" >"$work/amtpd.out" 2>"$work/amtpd.log" &
amtpd_pid=$!

# Wait up to 10 seconds for amtpd to name both listeners.
public="" private=""
for _ in $(seq 1 100); do
	public=$(sed -n 's/^amtpd: public listener on \([^ ]*\)$/\1/p' "$work/amtpd.out")
	private=$(sed -n 's/^amtpd: private listener on \([^ ]*\)$/\1/p' "$work/amtpd.out")
	[[ -n $public && -n $private ]] && break
	kill -0 "$amtpd_pid" 2>/dev/null || break
	sleep 0.1
done
if [[ -z $public || -z $private ]]; then
	tail -n 20 "$work/amtpd.log" >&2 || true
	fail_setup "amtpd did not start; its log is above"
fi
echo "repeat.sh: amtpd (pid $amtpd_pid) listens on $public (public) and $private (private); DNS on $dns_listen"

# limit bounds each run in time when coreutils timeout is installed.
limit=()
if command -v timeout >/dev/null; then
	limit=(timeout "$run_timeout")
fi

differing=0
start=$SECONDS
for run in $(seq 1 "$runs"); do
	json=$work/run-$run.json
	run_start=$SECONDS
	status=0
	${limit[@]+"${limit[@]}"} "$amtpkit" conform --target "$public" --private-target "$private" --pki "$work/pki" \
		--maildir "$work/maildir" --dns-listen "$dns_listen" --timeout "$step_timeout" \
		--gateway-sink "$gateway_sink" --private-sink "$private_sink" --server-timeout "$server_timeout" \
		--json "$json" >"$work/run-$run.out" 2>"$work/run-$run.err" || status=$?

	verdicts=$work/verdicts-$run.txt
	{
		echo "exit status $status"
		if [[ -f $json ]]; then
			jq -r '.clauses[] | "\(.id) \(.verdict)"' "$json"
		else
			echo "no JSON result"
		fi
	} >"$verdicts"
	summary=$(grep -m1 '^verdicts of' "$work/run-$run.out" || echo "no summary")
	echo "repeat.sh: run $run/$runs: exit status $status, $((SECONDS - run_start))s, $summary"

	if [[ $run -gt 1 ]] && ! diff -u "$work/verdicts-1.txt" "$verdicts" >"$work/diff-$run.txt"; then
		differing=$((differing + 1))
		echo "repeat.sh: run $run differs from run 1:" >&2
		cat "$work/diff-$run.txt" >&2
	fi
done

echo "repeat.sh: $runs runs in $((SECONDS - start))s; $differing of them differ from run 1"
if [[ $differing -gt 0 ]]; then
	exit 1
fi
