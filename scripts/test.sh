#!/usr/bin/env bash
# Runs every test of lvsctl: unit tests, the inventory corpus, golden plans, namespace tests and
# the real-kernel lab tests (in a qemu guest when this kernel has no IPVS). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The static build is what gets installed on lab hosts; tests find it through LVSCTL_BIN. The
# crash-consistency tests need the agent's fault injection, which only this build has.
cargo build --release --target x86_64-unknown-linux-musl --features fault-injection
export LVSCTL_BIN="$PWD/target/x86_64-unknown-linux-musl/release/lvsctl"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    # Without nextest the lab tests would boot several guests at once on this machine.
    cargo test --no-fail-fast "$@" -- --test-threads=1
fi
