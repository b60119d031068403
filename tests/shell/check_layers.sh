#!/bin/sh
# tools/check-layers.sh on small fixture trees: a wrong-way include must fail
# the check and be named by file and line; a tree that follows the order
# must pass. Last, the real tree must pass. TAP on stdout.
set -u
ROOT=${PC_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CHECK="$ROOT/tools/check-layers.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..9"

mkdir -p "$T/good/src/lib" "$T/good/src/model" "$T/good/src/cli" "$T/good/src/env" "$T/good/sdk"
printf '#include "lib/error.h"\n' > "$T/good/src/lib/buf.c"
printf '#include "app.h"\n#include "store/db.h"\n#include "model/rows.h"\n' > "$T/good/src/model/rows.c"
printf '#include "cli/cli.h"\n#include "lib/json.h"\n' > "$T/good/src/cli/run.c"
printf '#include "model/activity.h"\n#include "plugin/host.h"\n#include "internal.h"\n' \
    > "$T/good/src/env/lease.c"
printf '#include "lib/utf8.h"\n#include "exec_internal.h"\n' > "$T/good/sdk/util.c"
out=$(sh "$CHECK" "$T/good" 2>&1); rc=$?
ok "$([ $rc = 0 ] && echo 0 || echo 1)" "a tree that follows the order passes (rc $rc)"
case "$out" in *"check-layers: ok"*) r=0 ;; *) r=1 ;; esac
ok $r "a clean tree says so"

cp -r "$T/good" "$T/bad"
printf '#include "lib/error.h"\n\n#include "api/api.h"\n' > "$T/bad/src/env/store.c"
out=$(sh "$CHECK" "$T/bad" 2>&1); rc=$?
ok "$([ $rc = 1 ] && echo 0 || echo 1)" "an env file including api fails the check (rc $rc)"
case "$out" in *"src/env/store.c:3: "*"api is above env"*) r=0 ;; *) r=1 ;; esac
ok $r "the failure names file:line and the reason"
case "$out" in *"check-layers: 1 wrong-way include"*) r=0 ;; *) r=1 ;; esac
ok $r "the failure is counted"

cp -r "$T/good" "$T/lib"
printf '#include "app.h"\n#include "store/db.h"\n' > "$T/lib/src/lib/config.h"
out=$(sh "$CHECK" "$T/lib" 2>&1); rc=$?
case "$out" in *"src/lib/config.h:1: "*"src/lib/config.h:2: "*) r=$rc ;; *) r=0 ;; esac
ok "$([ "$r" = 1 ] && echo 0 || echo 1)" "lib including app.h or the store fails"

cp -r "$T/good" "$T/cli"
printf '#include "http/auth.h"\n' > "$T/cli/src/cli/auth.c"
printf '#include "plugin/host.h"\n' > "$T/cli/sdk/exec.c"
out=$(sh "$CHECK" "$T/cli" 2>&1); rc=$?
r=$rc
case "$out" in *"src/cli/auth.c:1: "*) ;; *) r=0 ;; esac
case "$out" in *"sdk/exec.c:1: "*) ;; *) r=0 ;; esac
ok "$([ "$r" = 1 ] && echo 0 || echo 1)" "the CLI and the SDK may include only lib"

mkdir -p "$T/empty"
sh "$CHECK" "$T/empty" >/dev/null 2>&1; rc=$?
ok "$([ $rc = 2 ] && echo 0 || echo 1)" "a tree without sources is an error, not a pass (rc $rc)"

out=$(sh "$CHECK" "$ROOT" 2>&1); rc=$?
ok "$([ $rc = 0 ] && echo 0 || echo 1)" "this tree follows the layer order (rc $rc)"
[ $rc = 0 ] || echo "$out" | sed 's/^/# /'
