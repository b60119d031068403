#!/bin/sh
# Environments: probe latency (local, fake sandbox plugin) and a lease
# acquire+realize+release round trip through the C fake plugin, each the
# median of N requests against a real daemon (HTTP round trip included).
# Upstream answers a local probe in ~29 ms. Indications, not assertions.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/release}
make -C "$ROOT" --no-print-directory -s "$BUILD/tests/integration/env_leases" >/dev/null || exit 1
PC_ROOT="$ROOT" "$ROOT/$BUILD/tests/integration/env_leases" --bench "${ENV_BENCH_N:-200}"
