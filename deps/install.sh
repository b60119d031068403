#!/bin/sh
# Install the Debian packages listed in deps/apt.txt that are not present yet.
# Idempotent: with everything installed it only runs dpkg-query and exits.
set -eu
list="$(dirname "$0")/apt.txt"
missing=""
for pkg in $(sed -e 's/#.*//' "$list"); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
# npm ships inside some nodejs builds; ask Debian for it only when absent.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run 'make deps' as root)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
