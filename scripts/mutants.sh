#!/usr/bin/env bash
# The mutation check of the pure layers, outside CI and bounded in time: cargo-mutants changes the
# planner, the resource decisions, verify's judging, doctor's rules and validation one mutation at
# a time and runs the fast tests (the library's unit tests, the planner, golden plans and the
# inventory corpus: no root, no guest) against each. A mutant no test notices is "missed".
#
#   scripts/mutants.sh [CARGO MUTANTS ARGS]    results in mutants.out/ (caught.txt, missed.txt,
#                                              timeout.txt, unviable.txt)
#   LVSCTL_MUTANTS_MINUTES=N                   stop after N minutes (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "mutants: installing cargo-mutants"
    cargo install --locked cargo-mutants
fi
files=(
    src/plan/mod.rs
    'crates/agent/src/resource/*.rs'
    'src/judge/*.rs'
    src/doctor.rs
    src/inventory/validate.rs
    src/inventory/hosts.rs
    src/inventory/services.rs
    src/inventory/ha.rs
    src/inventory/lab.rs
)
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
minutes=${LVSCTL_MUTANTS_MINUTES:-60}
status=0
timeout --foreground "$((minutes * 60))" \
    cargo mutants "${args[@]}" --exclude 'crates/agent/src/resource/tests.rs' --workspace --test-workspace=true --timeout 120 "$@" -- \
    --lib --test planner --test golden --test inventory_errors --test cli || status=$?
for f in caught missed timeout unviable; do
    printf '%-9s %s\n' "$f" "$(wc -l < "mutants.out/$f.txt" 2>/dev/null || echo 0)"
done
[ "$status" = 124 ] && echo "mutants: stopped after $minutes minutes (the counts are of the mutants tested by then)"
exit 0
