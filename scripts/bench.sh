#!/usr/bin/env bash
# Benchmark: the wall time of each lvsctl command and the ssh execs it costs every host, on a DR
# lab of N real servers (default 8: 11 hosts, more than the default --parallel 8) built on this
# machine, inside a qemu guest when this kernel has no IPVS. Run as root on Debian.
#
#   scripts/bench.sh [REAL_SERVERS]
#
# Targets, from the issue on up/down/status: once the agent is installed, one ssh exec per host
# per command (verify: one on the client, two on the director, whose counters it reads before and
# after), first contact included (the exec that finds the agent missing receives it). The execs
# are counted by each host's sshd (LogLevel VERBOSE logs one "Starting session: command" line per
# exec), not by lvsctl. Exit status 1 when a target is missed. Times are reported, not judged:
# under software emulation they say more about the emulator than about lvsctl.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8}
if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 80)); then
    echo "bench: REAL_SERVERS must be a number from 1 to 80, not '$n'" >&2
    exit 2
fi
lvsctl=$PWD/target/x86_64-unknown-linux-musl/release/lvsctl

if [ "${LVSCTL_BENCH_STAGE:-}" != lab ]; then
    scripts/setup.sh
    cargo build --release --target x86_64-unknown-linux-musl
    exec "$lvsctl" lab vm --if-needed --memory 4096 -- env LVSCTL_BENCH_STAGE=lab "$PWD/scripts/bench.sh" "$n"
fi

work=$(mktemp -d)
inv=$work/bench.toml
export LVSCTL_STATE_DIR=$work/state
lab=bench

# client ──front── router ──back── lvs (VIP 192.168.188.100), web1 … webN (rr, weight 1)
{
    echo 'name = "bench"'
    echo 'mode = "dr"'
    echo '[hosts.client]'
    echo 'role = "client"'
    echo 'ssh = "10.252.0.6"'
    echo 'gateway = "192.168.10.200"'
    echo 'interfaces = { eth0 = ["192.168.10.6/24"] }'
    echo '[hosts.router]'
    echo 'role = "router"'
    echo 'ssh = "10.252.0.200"'
    echo 'interfaces = { eth0 = ["192.168.188.200/24"], eth1 = ["192.168.10.200/24"] }'
    echo '[hosts.lvs]'
    echo 'role = "director"'
    echo 'ssh = "10.252.0.8"'
    echo 'gateway = "192.168.188.200"'
    echo 'interfaces = { eth0 = ["192.168.188.8/24"] }'
    back='"router:eth0", "lvs:eth0"'
    for i in $(seq "$n"); do
        echo "[hosts.web$i]"
        echo 'role = "real-server"'
        echo "ssh = \"10.252.0.$((10 + i))\""
        echo 'gateway = "192.168.188.200"'
        echo "interfaces = { eth0 = [\"192.168.188.$((10 + i))/24\"] }"
        back="$back, \"web$i:eth0\""
    done
    echo '[[services]]'
    echo 'name = "web"'
    echo 'vip = "192.168.188.100"'
    echo 'port = 80'
    echo 'scheduler = "rr"'
    echo '[lab]'
    echo "segments = { front = [\"client:eth0\", \"router:eth1\"], back = [$back] }"
} >"$inv"

cleanup() {
    status=$?
    "$lvsctl" lab destroy "$inv" >/dev/null 2>&1 || status=1
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

hosts=(client router lvs)
for i in $(seq "$n"); do hosts+=("web$i"); done

# Execs so far on every host, one number per line in the order of $hosts.
execs() {
    for h in "${hosts[@]}"; do
        grep -c 'Starting session: command ' "/run/lvsctl/labs/$lab/hosts/$h/sshd.log" || true
    done
}

failed=0
rows=()
# measure LABEL TARGET-FOR-OTHER-HOSTS TARGET-CLIENT TARGET-DIRECTOR -- lvsctl ARGS…
measure() {
    local label=$1 want=$2 want_client=$3 want_lvs=$4
    shift 5
    mapfile -t before < <(execs)
    local t0 t1 out
    t0=$(date +%s.%N)
    if ! out=$("$lvsctl" "$@" 2>&1); then
        echo "$out" >&2
        echo "bench: lvsctl $* failed" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    mapfile -t after < <(execs)
    local max=0 min=999999 bad=() i d w
    for i in "${!hosts[@]}"; do
        d=$((after[i] - before[i]))
        ((d > max)) && max=$d
        ((d < min)) && min=$d
        case ${hosts[i]} in
            client) w=$want_client ;;
            lvs) w=$want_lvs ;;
            *) w=$want ;;
        esac
        if ((d != w)); then bad+=("${hosts[i]}=$d (target $w)"); fi
    done
    local verdict=ok
    if ((${#bad[@]})); then
        verdict="MISSED: ${bad[*]}"
        failed=1
    fi
    rows+=("$(printf '%-34s %8.1f %9s   %s' "$label" "$(awk "BEGIN{print $t1 - $t0}")" "$min-$max" "$verdict")")
    printf '%s\n' "${rows[-1]}" >&2
}

t0=$(date +%s.%N)
"$lvsctl" lab create "$inv" >/dev/null
create=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
echo "bench: lab of ${#hosts[@]} hosts created in ${create} s" >&2

measure "up (first contact: agent uploaded)" 1 1 1 -- up "$inv"
measure "up again (nothing to change)" 1 1 1 -- up "$inv"
measure "status" 1 1 1 -- status "$inv"
measure "verify ($((5 * n)) requests)" 0 1 2 -- verify --requests $((5 * n)) "$inv"
measure "doctor" 1 1 1 -- doctor "$inv"
measure "up again, connections not kept" 1 1 1 -- up --ssh-persist 0 "$inv"
measure "down" 1 1 1 -- down "$inv"

echo
echo "lvsctl benchmark: DR lab, ${#hosts[@]} hosts ($n real servers), kernel $(uname -r), $(nproc) CPUs"
printf '%-34s %8s %9s   %s\n' "command" "wall s" "execs" "target (ssh execs per host)"
printf '%s\n' "${rows[@]}"
if ((failed)); then
    echo "bench: a target was missed" >&2
fi
exit "$failed"
