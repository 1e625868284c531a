#!/usr/bin/env bash
# Prints the phase times the real-kernel scenarios recorded (lines `scenario<TAB>phase<TAB>seconds`,
# see tests/common/mod.rs `Phases`) as one table: a row per scenario, a column per phase in the
# order first seen, seconds; then the guests' own lines (boot, their scenarios' wall time).
#
#   scripts/phase-table.sh FILE...
set -euo pipefail
awk -F '\t' '
    $1 ~ /^guest/ { guest = guest sprintf("\n  %s: %s %.0f s", $1, $2, $3); next }
    {
        if (!($2 in seen)) { seen[$2] = 1; cols[++ncols] = $2 }
        if (!($1 in known)) { known[$1] = 1; rows[++nrows] = $1 }
        t[$1, $2] += $3; total[$1] += $3
    }
    END {
        printf "\nwhere the time went (seconds per phase of each real-kernel scenario)\n"
        printf "%-46s", "scenario"
        for (c = 1; c <= ncols; c++) printf " %*s", (length(cols[c]) > 6 ? length(cols[c]) : 6), cols[c]
        printf " %7s\n", "total"
        for (r = 1; r <= nrows; r++) {
            printf "%-46s", rows[r]
            for (c = 1; c <= ncols; c++) {
                w = (length(cols[c]) > 6 ? length(cols[c]) : 6)
                if ((rows[r], cols[c]) in t) printf " %*.0f", w, t[rows[r], cols[c]]; else printf " %*s", w, "-"
            }
            printf " %7.0f\n", total[rows[r]]
        }
        if (guest != "") printf "guests (wall seconds):%s\n", guest
    }' "$@"
