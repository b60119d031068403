#!/bin/sh
# Measured numbers, printed as a table. Nothing here is asserted; the machine
# is shared and noisy, so read the numbers as indications.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/paperclip"
DIR=$(mktemp -d /tmp/pc-bench-XXXXXX)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT

ms() { date +%s%N | awk '{printf "%d", $1/1000000}'; }

# Cold start to the first 200 from /api/health.
t0=$(date +%s%N)
"$BIN" serve --data-dir "$DIR" --port 0 2>"$DIR/log" &
PID=$!
while [ ! -f "$DIR/daemon.json" ]; do sleep 0.001; done
URL=$(sed 's/.*"url":"\([^"]*\)".*/\1/' "$DIR/daemon.json")
until curl -sf "$URL/api/health" >/dev/null; do sleep 0.001; done
t1=$(date +%s%N)
start_ms=$(( (t1 - t0) / 1000000 ))

sleep 0.5
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)

CID=$(curl -s -XPOST "$URL/api/companies" -H 'content-type: application/json' \
      -d '{"name":"Bench Co"}' | sed 's/.*"id":"\([^"]*\)".*/\1/;q')
for i in 1 2 3 4 5; do
  curl -s -XPOST "$URL/api/companies/$CID/agents" -H 'content-type: application/json' \
       -d "{\"name\":\"agent-$i\"}" >/dev/null
done

printf '%-44s %s\n' "measure" "value"
printf '%-44s %s\n' "cold start to first /api/health 200" "${start_ms} ms"
printf '%-44s %s\n' "idle RSS" "$((rss_kb / 1024)) MB ($rss_kb kB)"
if command -v wrk >/dev/null 2>&1; then
  wrk -t2 -c50 -d5s --latency "$URL/api/companies/$CID/agents" > "$DIR/wrk.txt" 2>&1
  rps=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$DIR/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$DIR/wrk.txt")
  printf '%-44s %s\n' "GET /agents, 50 keep-alive conns: req/s" "$rps"
  printf '%-44s %s\n' "GET /agents latency p50" "$p50"
  printf '%-44s %s\n' "GET /agents latency p99" "$p99"
fi
for f in "$ROOT"/bench/*.bench.sh; do
  [ -f "$f" ] && URL="$URL" DATA_DIR="$DIR" sh "$f"
done
