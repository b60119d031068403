#!/bin/sh
# bubblewrap sandbox provider: exec of /bin/true through the provider (JSON-RPC
# round trip included) vs the same bwrap command line run directly vs a bare
# fork/exec, in the same run; then lease acquire and destroy latency.
# Skipped when bwrap or user namespaces are unavailable. Numbers are medians
# on a shared machine: indications, not assertions.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/release}
command -v bwrap >/dev/null 2>&1 || { echo "bwrap bench: skipped (bwrap not installed)"; exit 0; }
bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 /usr/bin/true 2>/dev/null ||
  { echo "bwrap bench: skipped (user namespaces refused)"; exit 0; }
make -C "$ROOT" --no-print-directory -s "$BUILD/tests/unit/bwrap_sandbox" plugins/bwrap-sandbox/worker >/dev/null || exit 1
PC_ROOT="$ROOT" "$ROOT/$BUILD/tests/unit/bwrap_sandbox" --bench "${BWRAP_BENCH_N:-200}"
