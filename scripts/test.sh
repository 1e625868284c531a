#!/usr/bin/env bash
# Runs every test of lvsctl: unit tests, the inventory corpus, golden plans, namespace tests and
# the real-kernel lab tests. Run as root. The real-kernel scenarios all run in one qemu guest
# (scripts/guest-tests.sh; on a kernel with IPVS and ipip, here), while the other tests run on this
# machine beside it; both are built once, before.
#
#   scripts/test.sh [NEXTEST ARGS]   e.g. scripts/test.sh e2e_dr (both sides get the arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The static build is what gets installed on lab hosts; tests find it through LVSCTL_BIN. The
# crash-consistency tests need the agent's fault injection, which only this build has: its
# binaries go to a target directory of their own, so that the main job's build (scripts/demo.sh,
# without it) and this one never overwrite or rebuild each other, while both keep their
# intermediate files in target/ (cargo's build-dir): the dependencies are built once for both.
CARGO_BUILD_BUILD_DIR="$PWD/target" cargo build --release --target x86_64-unknown-linux-musl --features fault-injection \
    --target-dir target/fault-injection
export LVSCTL_BIN="$PWD/target/fault-injection/x86_64-unknown-linux-musl/release/lvsctl"
# Every test binary, built once; the guest runs them from these lists (nextest's reuse of a build).
mkdir -p target/nextest-reuse
cargo nextest list --list-type binaries-only --message-format json > target/nextest-reuse/binaries.json
cargo metadata --format-version 1 > target/nextest-reuse/cargo-metadata.json

real_kernel='(binary(e2e) | binary(e2e_ha)) & test(/^e2e_/)'
started=$SECONDS
# Two guests at once, one per stage of scripts/guest-tests.sh (the scenarios that load and unload
# modules one at a time, on one vCPU; the others together, on two), and the other tests here.
# Without a guest (this kernel has IPVS and ipip: the same check as `lab vm --if-needed`) the
# stages share this kernel, so they run one after the other.
stage() {
    local name=$1 cpus=$2 memory=$3
    shift 3
    "$LVSCTL_BIN" lab vm --if-needed --cpus "$cpus" --memory "$memory" --timeout 5400 -- \
        "$PWD/scripts/guest-tests.sh" "$name" "$@" 2>&1 |
        tee "target/guest-$name.log" | sed -u "/^PHASES\t/d; s/^/[$name] /"
}
release=$(uname -r)
if [ -d "/lib/modules/$release/kernel/net/netfilter/ipvs" ] && ls "/lib/modules/$release/kernel/net/ipv4/ipip.ko"* >/dev/null 2>&1; then
    (
        failed=0
        stage alone 1 2048 "$@" || failed=1
        stage together 2 4096 "$@" || failed=1
        exit $failed
    ) &
    guests=($!)
else
    stage alone 1 2048 "$@" &
    guests=($!)
    stage together 2 4096 "$@" &
    guests+=($!)
fi
status=0
cargo nextest run --no-fail-fast -E "not ($real_kernel)" "$@" || status=$?
echo "test.sh: the tests on this machine took $((SECONDS - started)) s; waiting for the guests"
for g in "${guests[@]}"; do
    wait "$g" || status=$((status ? status : 1))
done
grep -h "^PHASES" target/guest-alone.log target/guest-together.log 2>/dev/null | cut -f 2- > target/phases.tsv || true
scripts/phase-table.sh target/phases.tsv
echo "test.sh: everything took $((SECONDS - started)) s"
exit "$status"
