#!/usr/bin/env bash
# Prints every real-kernel scenario and every break it makes, from the test code itself: each
# real-kernel test, run with LVSCTL_LIST_SCENARIOS=1, prints what it would do from the same
# values it runs on (its lab, what it prepares, breaks and checks), boots no guest and returns.
# Needs no root.
#
#   scripts/scenarios.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LVSCTL_LIST_SCENARIOS=1 CI= cargo test -q --test e2e --test e2e_ha -- --nocapture --test-threads 1 e2e_ 2>/dev/null |
    sed -n 's/^SCENARIO //p'
