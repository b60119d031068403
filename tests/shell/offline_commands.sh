#!/bin/sh
# The offline commands (daemon/offline.c) are dispatched without a daemon and
# say so in their help; create-board-key refuses a data dir that does not
# exist instead of creating a store there. TAP on stdout.
set -u
ROOT=${PC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN="$ROOT/paperclip"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
has() { case "$1" in *"$2"*) echo 0 ;; *) echo 1 ;; esac; }

echo "1..6"
out=$("$BIN" auth create-board-key --help 2>&1); rc=$?
ok "$([ $rc = 0 ] && echo 0 || echo 1)" "auth create-board-key --help exits 0 (rc $rc)"
ok "$(has "$out" "offline command")" "its help says it is an offline command"
ok "$(has "$out" "does not contact a daemon")" "its help says no daemon is contacted"
out=$("$BIN" --help 2>&1)
ok "$(has "$out" "auth         create board API keys (offline")" "the command list marks auth offline"
# An unreachable --api-url does not matter to an offline command.
out=$("$BIN" --api-url http://127.0.0.1:9 auth create-board-key --data-dir "$T/missing" 2>&1); rc=$?
ok "$([ $rc = 1 ] && echo 0 || echo 1)" "a missing data dir fails with status 1 (rc $rc)"
ok "$([ ! -e "$T/missing" ] && [ "$(has "$out" "does not exist")" = 0 ] && echo 0 || echo 1)" \
    "and nothing is created there"
