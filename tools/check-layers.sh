#!/bin/sh
# Checks that #include "..." lines point down the layer order
# (docs/architecture.md) and prints file:line for each one that does not.
#
#   lib -> store -> model -> plugin -> env -> run -> http -> api -> daemon
#
# A module may include its own headers and those of the modules before it;
# app.h sits with model (it ties the loop and the store together); the CLI
# may include only lib and cli; the SDK and the plugins only lib; src/main.c
# anything. A quoted include without a directory names a file next to the
# includer. Usage: tools/check-layers.sh [ROOT] (default: this tree).
# Exit status: 0 clean, 1 wrong-way includes, 2 nothing to check.
set -eu
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT"
files=$(find src sdk plugins -name '*.[ch]' 2>/dev/null | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "check-layers: no sources under $ROOT" >&2
    exit 2
fi
# shellcheck disable=SC2086 # one argument per file; paths have no spaces
awk '
BEGIN {
    n = split("lib store model plugin env run http api daemon", order, " ")
    for (i = 1; i <= n; i++) rank[order[i]] = i
    rank["app"] = rank["model"]
    bad = 0; seen = 0
}
FNR == 1 {
    m = split(FILENAME, parts, "/")
    if (parts[1] == "src")
        mod = (m == 2) ? (FILENAME == "src/app.h" ? "app" : "main") : parts[2]
    else
        mod = parts[1]
    if (parts[1] == "src" && m > 2 && mod != "cli" && !(mod in rank)) {
        printf "%s:1: src/%s is not in the layer order (tools/check-layers.sh)\n", FILENAME, mod
        bad++
    }
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    seen++
    inc = $0
    sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
    if (inc ~ /^\.\.?\//) {
        printf "%s:%d: relative include \"%s\": name headers from src/\n", FILENAME, FNR, inc
        bad++; next
    }
    if (inc !~ /\//) {
        if (inc != "app.h" || parts[1] != "src") next   # a file next to the includer
        target = "app"
    } else {
        target = inc; sub(/\/.*$/, "", target)
    }
    if (mod == "main") next
    why = ""
    if (mod == "cli") {
        if (target != "lib" && target != "cli") why = "the CLI may include only lib and cli"
    } else if (mod == "sdk" || mod == "plugins") {
        if (target != "lib") why = mod " may include only lib"
    } else if (!(target in rank)) {
        why = target " is not a layer " mod " may use"
    } else if (rank[target] > rank[mod]) {
        why = target " is above " mod
    }
    if (why != "") {
        printf "%s:%d: %s includes \"%s\": %s\n", FILENAME, FNR, mod, inc, why
        bad++
    }
}
END {
    if (bad) {
        printf "check-layers: %d wrong-way include%s\n", bad, bad == 1 ? "" : "s"
        exit 1
    }
    printf "check-layers: ok (%d includes)\n", seen
}' $files
