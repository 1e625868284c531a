#!/usr/bin/env bash
# The main job: build a lab from an inventory (default inventories/dr.toml) on this machine,
# provision it over real SSH with `lvsctl up`, prove it from the client with `lvsctl verify`
# (the traffic split between the real servers), check it with `lvsctl doctor`, undo it with
# `lvsctl down`, and remove the lab. Run as root on Debian. When this kernel has no IPVS or ipip,
# everything after the build runs inside a qemu guest (`lvsctl lab vm`).
#
#   scripts/demo.sh [INVENTORY]
set -euo pipefail
cd "$(dirname "$0")/.."
inv=${1:-inventories/dr.toml}
lvsctl=$PWD/target/x86_64-unknown-linux-musl/release/lvsctl

if [ "${LVSCTL_DEMO_STAGE:-}" != lab ]; then
    [ -f "$inv" ] || { echo "demo: no inventory at $inv" >&2; exit 2; }
    scripts/setup.sh
    cargo build --release --target x86_64-unknown-linux-musl
    exec "$lvsctl" lab vm --if-needed -- env LVSCTL_DEMO_STAGE=lab "$PWD/scripts/demo.sh" "$inv"
fi

step() { printf '\n\033[1m$ lvsctl %s\033[0m\n' "$*"; }
run() {
    step "$@"
    "$lvsctl" "$@"
}

# The controller's record of which hosts a lab touched: a private one, gone with the demo.
LVSCTL_STATE_DIR=$(mktemp -d)
export LVSCTL_STATE_DIR
cleanup() {
    status=$?
    step lab destroy "$inv"
    "$lvsctl" lab destroy "$inv" || status=1
    rm -rf "$LVSCTL_STATE_DIR"
    exit "$status"
}
trap cleanup EXIT

run lab create "$inv"
run up "$inv"
run up "$inv"              # again: nothing left to change
run status "$inv"
run verify "$inv"          # requests from the client, split per real server
run doctor "$inv"
run down "$inv"
trap - EXIT
cleanup
