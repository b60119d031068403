#!/bin/sh
# Heartbeats, measured on a fresh daemon of its own: assignment -> issue done
# and wakeup -> succeeded (p50/p99, from the server's own timestamps, so
# polling adds nothing) for a trivial curl agent in the local environment and
# in the C fake sandbox; and runs per second sustained with 50 agents.
# Upstream takes ~850 ms from assignment to done for a trivial local agent.
# Indications, not assertions.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/paperclip"
N=${HB_BENCH_N:-50}
command -v python3 >/dev/null 2>&1 || { echo "heartbeat bench: python3 missing, skipped"; exit 0; }
D=$(mktemp -d /tmp/pc-hbbench-XXXXXX)
"$BIN" serve --data-dir "$D" --port 0 2>"$D/log" &
P=$!
trap 'kill $P 2>/dev/null; wait $P 2>/dev/null; [ -n "${HB_BENCH_KEEP:-}" ] || rm -rf "$D"' EXIT
while [ ! -f "$D/daemon.json" ]; do sleep 0.01; done
U=$(sed 's/.*"url":"\([^"]*\)".*/\1/' "$D/daemon.json")
until curl -sf "$U/api/health" >/dev/null; do sleep 0.01; done
j() { curl -s -H 'content-type: application/json' "$@"; }
id() { sed 's/^{"id":"\([^"]*\)".*/\1/'; echo; }

CID=$(j -XPOST "$U/api/companies" -d '{"name":"Bench Beat"}' | id)
AGENT="$ROOT/tests/agents/checkout_agent.sh"
A=$(j -XPOST "$U/api/companies/$CID/agents" \
    -d "{\"name\":\"bench\",\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"$AGENT\"]}}" | id)
j -XPOST "$U/api/plugins/install" \
  -d "{\"packageName\":\"$ROOT/plugins/fake-sandbox\",\"isLocalPath\":true}" >/dev/null
SBX=$(j -XPOST "$U/api/companies/$CID/environments" \
      -d '{"name":"bench box","driver":"sandbox","config":{"provider":"fake-plugin","image":"fake:bench"}}' | id)

wait_idle() {
  while j "$U/api/companies/$CID/heartbeat-runs?limit=5000" | grep -q '"status":"\(queued\|running\)"'; do
    sleep 0.02
  done
}

# One issue at a time, so each latency is unloaded.
for i in $(seq "$N"); do
  j -XPOST "$U/api/companies/$CID/issues" -d "{\"title\":\"local $i\",\"assigneeAgentId\":\"$A\"}" >/dev/null
  wait_idle
done
for i in $(seq "$N"); do
  j -XPOST "$U/api/companies/$CID/issues" \
    -d "{\"title\":\"sandbox $i\",\"assigneeAgentId\":\"$A\",\"executionWorkspaceSettings\":{\"environmentId\":\"$SBX\"}}" >/dev/null
  wait_idle
done
for i in $(seq "$N"); do
  j -XPOST "$U/api/agents/$A/wakeup" -d '{}' >/dev/null
  wait_idle
done

# Sustained: 50 agents, 10 wakeups each, all at once.
for k in $(seq 50); do
  j -XPOST "$U/api/companies/$CID/agents" \
    -d "{\"name\":\"load $k\",\"adapterConfig\":{\"command\":\"true\"}}" | id >> "$D/agents"
done
# Each wakeup about its own issue, so none coalesce: 500 runs. One curl with
# a parallel keep-alive pool sends them, so the client is not what limits.
while read -r a; do
  for i in $(seq 10); do
    iss=$(j -XPOST "$U/api/companies/$CID/issues" -d "{\"title\":\"load $i\"}" | id)
    printf 'url = "%s/api/agents/%s/wakeup"\nrequest = POST\nheader = "content-type: application/json"\n' "$U" "$a"
    printf 'data = "{\\"issueId\\":\\"%s\\",\\"payload\\":{\\"n\\":%s}}"\noutput = /dev/null\n' "$iss" "$i"
    echo next
  done
done < "$D/agents" | sed '$d' > "$D/curl.cfg"
t0=$(date +%s%N)
curl -s --parallel --parallel-max 50 -K "$D/curl.cfg" 2>/dev/null
wait_idle
t1=$(date +%s%N)

python3 - "$U" "$CID" "$(( (t1 - t0) / 1000000 ))" <<'PY'
import json, sys, urllib.request
from datetime import datetime
u, cid, wall_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
get = lambda p: json.load(urllib.request.urlopen(u + p))
ts = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
issues = get(f"/api/companies/{cid}/issues")
def lat(prefix):
    return [ts(i["completedAt"]) - ts(i["createdAt"]) for i in issues
            if i["title"].startswith(prefix) and i.get("completedAt")]
runs = get(f"/api/companies/{cid}/heartbeat-runs?limit=5000")
wake = [ts(r["finishedAt"]) - ts(r["createdAt"]) for r in runs
        if r["invocationSource"] == "on_demand" and r["status"] == "succeeded"
        and r["contextSnapshot"].get("payload") is None]
load = [r for r in runs if r["contextSnapshot"].get("payload") is not None]
row = lambda k, v: print(f"{k:<44} {v}")
for name, v in (("local", lat("local")), ("fake sandbox", lat("sandbox"))):
    row(f"assignment -> done, {name}: p50 / p99", f"{pct(v, .5):.1f} / {pct(v, .99):.1f} ms (n={len(v)})")
row("wakeup -> succeeded, local: p50 / p99", f"{pct(wake, .5):.1f} / {pct(wake, .99):.1f} ms (n={len(wake)})")
ok = [r for r in load if r["status"] == "succeeded"]
# Server-side span (first run queued -> last run finished): the client's
# curl processes are not part of it.
span = (max(ts(r["finishedAt"]) for r in ok) - min(ts(r["createdAt"]) for r in ok)) if ok else 0
row("50 agents x 10 wakeups (distinct issues): runs/s",
    f"{len(ok) / (span / 1000):.0f} ({len(ok)} runs in {span:.0f} ms; client wall {wall_ms} ms)" if span else "n/a")
PY
