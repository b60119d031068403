#!/bin/sh
# Environments: probe latency (local, fake sandbox plugin, SSH to a loopback
# sshd) and a lease acquire+realize+release round trip through the C fake
# plugin, each the median of N requests against a real daemon (HTTP round
# trip included). Upstream answers a local probe in ~29 ms. Indications, not
# assertions. An SSH probe takes a few hundred ms, so its row takes
# ENV_SSH_BENCH_N (20) probes; it is left out when sshd is not installed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/release}
N=${ENV_BENCH_N:-200}
make -C "$ROOT" --no-print-directory -s "$BUILD/tests/integration/env_leases" \
    "$BUILD/tests/integration/env_ssh" >/dev/null || exit 1
PC_ROOT="$ROOT" "$ROOT/$BUILD/tests/integration/env_leases" --bench "$N" || exit 1
PC_ROOT="$ROOT" "$ROOT/$BUILD/tests/integration/env_ssh" --bench "${ENV_SSH_BENCH_N:-20}"
