#!/bin/sh
# Runs every test program, each in its own process with a timeout, and prints
# one closing "N passed, N failed" line. Exit status is non-zero on any failure.
#
# Programs: $BUILD/tests/{unit,integration}/* (C, TAP on stdout) and
#           tests/node/*.mjs (TAP on stdout).
# PC_TEST_FILTER=substring runs only matching programs; PC_TEST_JOBS sets parallelism.
set -u
BUILD=${BUILD:-build/release}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Each run gets its own log dir, so concurrent runs never clobber each other.
mkdir -p "$ROOT/$BUILD/test-logs"
LOGDIR=$(mktemp -d "$ROOT/$BUILD/test-logs/run-XXXXXX")
TIMEOUT=${PC_TEST_TIMEOUT:-300}
JOBS=${PC_TEST_JOBS:-3}
export PC_ROOT="$ROOT" PC_BUILD="$ROOT/$BUILD"

list="$LOGDIR/list"
: > "$list"
for t in "$ROOT/$BUILD"/tests/unit/* "$ROOT/$BUILD"/tests/integration/* \
         "$ROOT"/tests/node/*.mjs; do
    [ -f "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    if [ -n "${PC_TEST_FILTER:-}" ]; then
        case "$t" in *"$PC_TEST_FILTER"*) ;; *) continue ;; esac
    fi
    echo "$t" >> "$list"
done

export LOGDIR ROOT TIMEOUT

# xargs gives us bounded parallelism without a job-control dance in sh.
xargs -P "$JOBS" -I{} sh -c '
    t="{}"; name=$(echo "$t" | sed "s|$ROOT/||; s|/|_|g"); log="$LOGDIR/$name.log"
    case "$t" in *.mjs) set -- node "$t" ;; *) set -- "$t" ;; esac
    timeout -k 10 "$TIMEOUT" "$@" > "$log" 2>"$log.stderr" </dev/null; echo $? > "$log.rc"
' < "$list"

passed=0; failed=0; skipped=0
while read -r t; do
    name=$(echo "$t" | sed "s|$ROOT/||; s|/|_|g")
    log="$LOGDIR/$name.log"
    rc=$(cat "$log.rc" 2>/dev/null || echo 99)
    p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log"); s=$(grep -c '^ok .*# SKIP' "$log")
    planned=$(grep -c '^1\.\.' "$log")
    status="ok"
    if [ "$rc" != 0 ] || [ "$planned" = 0 ]; then
        if [ "$f" = 0 ]; then f=1; fi
        status="FAILED (exit $rc)"
    elif [ "$f" != 0 ]; then
        status="FAILED"
    fi
    passed=$((passed + p - s)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-60s %4d ok %3d failed %3d skipped  %s\n' "$(echo "$t" | sed "s|$ROOT/||")" $((p - s)) "$f" "$s" "$status"
    if [ "$status" != ok ]; then
        grep -A3 '^not ok ' "$log" | sed 's/^/    /' | head -40
        tail -n 20 "$log.stderr" | sed 's/^/    stderr: /'
    fi
done < "$list"
echo "logs: $LOGDIR"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
