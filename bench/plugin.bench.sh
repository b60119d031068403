#!/bin/sh
# Plugin host: health RPC round trip and environmentExecute of /bin/true
# through the C fake plugin and the JS SDK plugin, against a bare spawn
# (bench/plugin_bench.c). Indications on a shared machine, not assertions.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/release}
make -C "$ROOT" --no-print-directory -s "$BUILD/bench/plugin_bench" >/dev/null || exit 1
PC_ROOT="$ROOT" "$ROOT/$BUILD/bench/plugin_bench" "${PLUGIN_BENCH_HEALTH_N:-10000}" "${PLUGIN_BENCH_EXEC_N:-500}"
