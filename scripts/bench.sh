#!/usr/bin/env bash
# Benchmark: lvsctl's cost as ratios to floors taken in the same run, on labs built on this
# machine (inside a qemu guest when this kernel has no IPVS). Run as root on Debian.
#
#   scripts/bench.sh [all|floor|scale|hosts]      (default: all, in one guest boot)
#
# floor  A DR lab of 11 hosts (8 real servers: more than the default --parallel 8). The floor is a
#        bare `ssh HOST true` to every host in parallel, with new sessions, and again over kept
#        connections (ssh multiplexing). Every lvsctl command is timed and divided by its floor,
#        and the ssh execs it cost each host are counted by the hosts' sshd (LogLevel VERBOSE logs
#        "Starting session: command" per exec), not by lvsctl.
# scale  A NAT lab of a client, a director and 10 real servers with 1,000 services of 10 real
#        servers each (10,000 destinations; the inventory is generated). The director's up, no-op
#        up and down are compared with `ipvsadm -R` of the same rules on the same kernel plus the
#        kept floor for that host, and with a script that runs one ipvsadm process per rule
#        (timed on the first 100 services' 1,100 rules and counted per rule). The agent's peak
#        memory is its VmHWM, sampled while it runs.
# hosts  A DR lab of 40 hosts: up, no-op up and down; wall time against hosts / --parallel, and
#        the controller's own CPU time per host, both compared with the floor lab's.
#
# Targets (the issue on speed and scale): first up <= 1.5 x floor; no-op up <= 1.3 x kept floor;
# down <= 1.2 x floor; one ssh exec per host for up, down, status and doctor (verify: one on the
# client, two on the director, which reads its counters before and after); the director's up of
# 10,000 destinations <= 1.2 x (ipvsadm -R + kept floor) and >= 50 x faster per rule than a process
# per rule; its no-op up <= 0.2 x its up; its down <= 1.2 x (ipvsadm -R + kept floor); agent
# memory < 64 MB; 40 hosts: CPU per host within 1.5 x the 11-host run's. Exit status 1 when a
# target is missed. Ratios are the results: absolute times under emulation measure the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
case $mode in all | floor | scale | hosts) ;; *)
    echo "bench: the mode is all, floor, scale or hosts, not '$mode'" >&2
    exit 2
    ;;
esac
lvsctl=$PWD/target/x86_64-unknown-linux-musl/release/lvsctl

if [ "${LVSCTL_BENCH_STAGE:-}" != lab ]; then
    scripts/setup.sh
    cargo build --release --target x86_64-unknown-linux-musl
    exec "$lvsctl" lab vm --if-needed --memory 4096 -- env LVSCTL_BENCH_STAGE=lab "$PWD/scripts/bench.sh" "$mode"
fi

work=$(mktemp -d)
export LVSCTL_STATE_DIR=$work/state
labs=()
cleanup() {
    status=$?
    for inv in "${labs[@]}"; do "$lvsctl" lab destroy "$inv" >/dev/null 2>&1 || status=1; done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

failed=0
report=()
now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# row LABEL SECONDS FLOOR-LABEL FLOOR-SECONDS TARGET(max ratio, or - for none) [EXTRA]
row() {
    local r verdict=""
    r=$(ratio "$2" "$4")
    if [ "$5" != - ]; then
        if awk -v r="$r" -v t="$5" 'BEGIN { exit !(r <= t) }'; then verdict="ok (<= $5)"; else
            verdict="MISSED (target <= $5)"
            failed=1
        fi
    fi
    report+=("$(printf '%-44s %8.1f  %6s x %-22s %s %s' "$1" "$2" "$r" "$3" "$verdict" "${6:-}")")
    printf '%s\n' "${report[-1]}" >&2
}
note() {
    report+=("$*")
    printf '%s\n' "$*" >&2
}

# A lab's hosts: NAME=ADDRESS lines in $work/LAB.hosts, written with the inventory.
addr_of() { awk -F= -v h="$2" '$1 == h { print $2 }' "$work/$1.hosts"; }
host_names() { cut -d= -f1 "$work/$1.hosts"; }

# Bare ssh to every host in parallel, from the lab's management namespace, with the lab's keys.
ssh_all() {
    local lab=$1
    shift
    local h pids=()
    for h in $(host_names "$lab"); do
        ip netns exec "lvsctl-$lab" ssh -F "/run/lvsctl/labs/$lab/ssh_config" "$@" "root@$(addr_of "$lab" "$h")" true &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
}
# floor_new LAB: seconds for `ssh true` to every host with new sessions.
floor_new() {
    local t0
    t0=$(now)
    ssh_all "$1" -o ControlMaster=no -o ControlPath=none
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
}
# floor_kept LAB: the same over connections opened beforehand (not counted), closed afterwards.
floor_kept() {
    local lab=$1 t0 t
    local cp="$work/cm-%C"
    ssh_all "$lab" -o ControlMaster=yes -o "ControlPath=$cp" -o ControlPersist=120 -f -N
    t0=$(now)
    ssh_all "$lab" -o ControlMaster=no -o "ControlPath=$cp"
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    ssh_all "$lab" -o "ControlPath=$cp" -O exit 2>/dev/null || true
    echo "$t"
}

# Execs so far on every host of LAB, one "HOST N" line each.
execs() {
    local h
    for h in $(host_names "$1"); do
        echo "$h $(grep -c 'Starting session: command ' "/run/lvsctl/labs/$1/hosts/$h/sshd.log" || true)"
    done
}
# timed LAB EXEC-TARGETS -- lvsctl ARGS…: runs lvsctl, sets $secs, $cpu (the controller's user +
# system seconds) and $exec_verdict (each host's execs against TARGETS: "N" for every host, or
# "client=1,lvs=2,*=0").
timed() {
    local lab=$1 want=$2
    shift 3
    local before after out t0 t1
    before=$(execs "$lab")
    t0=$(now)
    local tf="$work/times"
    if ! (
        TIMEFORMAT='%U %S'
        { time "$lvsctl" "$@" >"$work/out" 2>"$work/err"; } 2>"$tf"
    ); then
        cat "$work/out" "$work/err" >&2
        echo "bench: lvsctl $* failed" >&2
        exit 1
    fi
    t1=$(now)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    cpu=$(awk '{ printf "%.3f", $1 + $2 }' "$tf")
    after=$(execs "$lab")
    # Where the time went: the slowest agent's own time (from --output json) and the controller's CPU.
    local agent=""
    if [[ " $* " == *" --output json "* ]]; then
        agent=$(jq -r '[.hosts[].report.duration_ms // 0] | max / 1000 | "agent \(.) s, "' "$work/out" 2>/dev/null || true)
    fi
    exec_verdict="execs ok"
    local bad
    bad=$(join <(echo "$before" | sort) <(echo "$after" | sort) | awk -v want="$want" '
        BEGIN { n = split(want, parts, ","); for (i = 1; i <= n; i++) {
            if (split(parts[i], kv, "=") == 2) w[kv[1]] = kv[2]; else w["*"] = parts[i] } }
        { d = $3 - $2; t = ($1 in w) ? w[$1] : w["*"]; if (d != t) printf "%s=%d(target %d) ", $1, d, t }')
    if [ -n "$bad" ]; then
        exec_verdict="execs MISSED: $bad"
        failed=1
    fi
    exec_verdict="$exec_verdict (${agent}controller CPU $cpu s)"
}

# A DR lab: client ──front── router ──back── lvs (VIP 192.168.188.100), web1 … webN.
dr_inventory() {
    local lab=$1 n=$2 net=$3 inv=$work/$1.toml
    {
        echo "name = \"$lab\""
        echo 'mode = "dr"'
        echo '[hosts.client]'
        echo 'role = "client"'
        echo "ssh = \"$net.6\""
        echo 'gateway = "192.168.10.200"'
        echo 'interfaces = { eth0 = ["192.168.10.6/24"] }'
        echo '[hosts.router]'
        echo 'role = "router"'
        echo "ssh = \"$net.200\""
        echo 'interfaces = { eth0 = ["192.168.188.200/24"], eth1 = ["192.168.10.200/24"] }'
        echo '[hosts.lvs]'
        echo 'role = "director"'
        echo "ssh = \"$net.8\""
        echo 'gateway = "192.168.188.200"'
        echo 'interfaces = { eth0 = ["192.168.188.8/24"] }'
        local back='"router:eth0", "lvs:eth0"' i
        for i in $(seq "$n"); do
            echo "[hosts.web$i]"
            echo 'role = "real-server"'
            echo "ssh = \"$net.$((10 + i))\""
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
    {
        echo "client=$net.6"
        echo "router=$net.200"
        echo "lvs=$net.8"
        for i in $(seq "$n"); do echo "web$i=$net.$((10 + i))"; done
    } >"$work/$lab.hosts"
    echo "$inv"
}

create() {
    local inv=$1 t0
    labs+=("$inv")
    t0=$(now)
    "$lvsctl" lab create "$inv" >/dev/null
    echo "bench: lab $(basename "$inv" .toml) created in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s" >&2
}
destroy() {
    "$lvsctl" lab destroy "$1" >/dev/null
    local keep=()
    for l in "${labs[@]}"; do [ "$l" = "$1" ] || keep+=("$l"); done
    labs=("${keep[@]}")
}

# Figures of the floor lab that the hosts mode compares with.
small_hosts=0
small_up=0
small_cpu=0

bench_floor() {
    local lab=bfloor n=8 inv
    inv=$(dr_inventory $lab $n 10.252.0)
    create "$inv"
    local hosts=$((n + 3)) fnew fkept
    note ""
    note "floor: DR lab, $hosts hosts ($n real servers), --parallel 8"
    fnew=$(floor_new $lab)
    fkept=$(floor_kept $lab)
    row "floor: ssh true, new sessions" "$fnew" "itself" "$fnew" -
    row "floor: ssh true, kept connections" "$fkept" "itself" "$fkept" -
    timed $lab 1 -- up "$inv"
    row "up, first contact (agent uploaded)" "$secs" "floor" "$fnew" 1.5 "$exec_verdict"
    small_hosts=$hosts small_up=$secs small_cpu=$cpu
    timed $lab 1 -- up "$inv"
    row "up again, nothing to change" "$secs" "kept floor" "$fkept" 1.3 "$exec_verdict"
    timed $lab 1 -- status "$inv"
    row "status" "$secs" "kept floor" "$fkept" - "$exec_verdict"
    timed $lab "client=1,lvs=2,0" -- verify --requests $((5 * n)) "$inv"
    row "verify ($((5 * n)) requests)" "$secs" "kept floor" "$fkept" - "$exec_verdict"
    timed $lab 1 -- doctor "$inv"
    row "doctor" "$secs" "kept floor" "$fkept" - "$exec_verdict"
    timed $lab 1 -- up --ssh-persist 0 "$inv"
    row "up again, new sessions" "$secs" "floor" "$fnew" - "$exec_verdict"
    timed $lab 1 -- down --ssh-persist 0 "$inv"
    row "down, new sessions" "$secs" "floor" "$fnew" 1.2 "$exec_verdict"
    destroy "$inv"
}

bench_scale() {
    local lab=bscale n_rs=10 n_svc=1000 inv=$work/bscale.toml net=10.253.0
    {
        echo "name = \"$lab\""
        echo 'mode = "nat"'
        echo '[hosts.client]'
        echo 'role = "client"'
        echo "ssh = \"$net.6\""
        echo 'interfaces = { eth0 = ["192.168.10.6/24"] }'
        echo '[hosts.lvs]'
        echo 'role = "director"'
        echo "ssh = \"$net.8\""
        echo 'interfaces = { eth0 = ["192.168.10.8/24"], eth1 = ["10.10.0.1/24"] }'
        local i s back='"lvs:eth1"' rs=""
        for i in $(seq $n_rs); do
            echo "[hosts.web$i]"
            echo 'role = "real-server"'
            echo "ssh = \"$net.$((10 + i))\""
            echo "interfaces = { eth0 = [\"10.10.0.$((10 + i))/24\"] }"
            back="$back, \"web$i:eth0\""
            rs="$rs${rs:+, }{ host = \"web$i\" }"
        done
        for s in $(seq 0 $((n_svc - 1))); do
            printf '[[services]]\nname = "s%d"\nvip = "192.168.10.100"\nport = %d\nscheduler = "rr"\nreal_servers = [%s]\n' \
                "$s" $((10000 + s)) "$rs"
        done
        echo '[lab]'
        echo "segments = { front = [\"client:eth0\", \"lvs:eth0\"], back = [$back] }"
    } >"$inv"
    {
        echo "client=$net.6"
        echo "lvs=$net.8"
        for i in $(seq $n_rs); do echo "web$i=$net.$((10 + i))"; done
    } >"$work/$lab.hosts"
    # The same rules for ipvsadm: what lvsctl installs (NAT: masquerading, weight 1).
    local rules=$work/rules
    for s in $(seq 0 $((n_svc - 1))); do
        echo "-A -t 192.168.10.100:$((10000 + s)) -s rr"
        for i in $(seq $n_rs); do echo "-a -t 192.168.10.100:$((10000 + s)) -r 10.10.0.$((10 + i)):$((10000 + s)) -m -w 1"; done
    done >"$rules"
    local n_rules n_dest
    n_rules=$(wc -l <"$rules")
    n_dest=$((n_svc * n_rs))
    create "$inv"
    local dns=lvsctl-$lab.lvs fnew fkept
    note ""
    note "scale: NAT lab, $((n_rs + 2)) hosts, $n_svc services x $n_rs real servers = $n_dest destinations ($n_rules ipvsadm rules)"
    fnew=$(floor_new $lab)
    # The director alone, over a kept connection.
    local cp=$work/scale-cm
    local ssh_lvs=(ip netns exec "lvsctl-$lab" ssh -F "/run/lvsctl/labs/$lab/ssh_config" -o "ControlPath=$cp" "root@$net.8")
    "${ssh_lvs[@]}" -o ControlMaster=yes -o ControlPersist=120 -f -N
    local t0
    t0=$(now)
    "${ssh_lvs[@]}" -o ControlMaster=no true
    fkept=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    "${ssh_lvs[@]}" -O exit 2>/dev/null || true
    row "floor: ssh true, new sessions, $((n_rs + 2)) hosts" "$fnew" "itself" "$fnew" -
    row "floor: ssh true, kept connection, director" "$fkept" "itself" "$fkept" -

    # ipvsadm -R of the same rules on the director's kernel, then a process per rule.
    t0=$(now)
    ip netns exec "$dns" ipvsadm -R <"$rules"
    local restore
    restore=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    [ "$(ip netns exec "$dns" ipvsadm -Ln | grep -c -- '->' || true)" -ge "$n_dest" ] || {
        echo "bench: ipvsadm -R did not install the rules" >&2
        exit 1
    }
    ip netns exec "$dns" ipvsadm -C
    local sample=$((100 * (n_rs + 1)))
    t0=$(now)
    # One ipvsadm process per rule, from a shell already in the director's namespace.
    head -n "$sample" "$rules" | ip netns exec "$dns" sh -c 'while read -r rule; do ipvsadm $rule || exit 1; done'

    local per_rule
    per_rule=$(awk -v a="$t0" -v b="$(now)" -v n="$sample" 'BEGIN { printf "%.5f", (b - a) / n }')
    ip netns exec "$dns" ipvsadm -C
    local reference
    reference=$(awk -v a="$restore" -v b="$fkept" 'BEGIN { printf "%.3f", a + b }')
    row "ipvsadm -R, $n_rules rules" "$restore" "itself" "$restore" -
    row "ipvsadm process per rule (x $n_rules)" "$(awk -v p="$per_rule" -v n="$n_rules" 'BEGIN { printf "%.3f", p * n }')" \
        "itself" "$(awk -v p="$per_rule" -v n="$n_rules" 'BEGIN { printf "%.3f", p * n }')" - \
        "($(awk -v p="$per_rule" 'BEGIN { printf "%.1f", p * 1000 }') ms per rule, timed on $sample)"

    timed $lab 1 -- up "$inv"
    row "up, whole lab, first contact" "$secs" "floor" "$fnew" - "$exec_verdict"
    timed $lab 1 -- up "$inv"
    row "up again, whole lab" "$secs" "floor" "$fnew" - "$exec_verdict"
    timed $lab "lvs=1,0" -- down --host lvs --output json "$inv"
    row "down, director alone" "$secs" "ipvsadm -R + kept floor" "$reference" 1.2 "$exec_verdict"
    # The director's up from nothing (agent installed, connection kept), its memory sampled.
    local hwm=$work/hwm
    : >"$hwm"
    (
        for _ in $(seq 6000); do
            for p in $(pgrep -f 'lvsctl agent serve' || true); do
                awk '/VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || true
            done
            sleep 0.1
        done
    ) >>"$hwm" &
    local sampler=$!
    timed $lab "lvs=1,0" -- up --host lvs --output json "$inv"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local up_lvs=$secs
    row "up, director alone ($n_dest destinations)" "$secs" "ipvsadm -R + kept floor" "$reference" 1.2 "$exec_verdict"
    local speedup
    speedup=$(awk -v s="$secs" -v p="$per_rule" -v n="$n_rules" 'BEGIN { printf "%.1f", p * n / s }')
    if awk -v s="$speedup" 'BEGIN { exit !(s >= 50) }'; then note "  the director's up is ${speedup} x faster than a process per rule: ok (>= 50)"; else
        note "  the director's up is ${speedup} x faster than a process per rule: MISSED (target >= 50)"
        failed=1
    fi
    local peak
    peak=$(sort -n "$hwm" | tail -n 1)
    if [ -n "$peak" ] && ((peak < 64 * 1024)); then note "  agent peak memory (VmHWM) $((peak / 1024)) MB: ok (< 64)"; else
        note "  agent peak memory (VmHWM) ${peak:-unknown} kB: MISSED (target < 64 MB)"
        failed=1
    fi
    [ "$(ip netns exec "$dns" ipvsadm -Ln | grep -c -- '->' || true)" -ge "$n_dest" ] || {
        echo "bench: lvsctl up did not install the destinations" >&2
        exit 1
    }
    timed $lab "lvs=1,0" -- up --host lvs --output json "$inv"
    row "up again, director alone" "$secs" "its up" "$up_lvs" 0.2 "$exec_verdict"
    # What a no-op up cannot skip: reading the whole table (one dump per service), as ipvsadm does.
    t0=$(now)
    ip netns exec "$dns" ipvsadm -Ln >/dev/null
    local listing
    listing=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    row "ipvsadm -Ln of the $n_dest destinations" "$listing" "its up" "$up_lvs" -
    timed $lab "lvs=1,0" -- status --host lvs --output json "$inv"
    row "status, director alone" "$secs" "its up" "$up_lvs" - "$exec_verdict"
    timed $lab 1 -- down "$inv"
    row "down, whole lab" "$secs" "floor" "$fnew" - "$exec_verdict"
    destroy "$inv"
}

bench_hosts() {
    local lab=bhosts n=37 inv
    inv=$(dr_inventory $lab $n 10.254.0)
    create "$inv"
    local hosts=$((n + 3)) fnew
    note ""
    note "hosts: DR lab, $hosts hosts, --parallel 8"
    fnew=$(floor_new $lab)
    row "floor: ssh true, new sessions" "$fnew" "itself" "$fnew" -
    timed $lab 1 -- up "$inv"
    local up=$secs up_cpu=$cpu
    row "up, first contact" "$secs" "floor" "$fnew" - "$exec_verdict"
    timed $lab 1 -- up "$inv"
    row "up again" "$secs" "floor" "$fnew" - "$exec_verdict"
    timed $lab 1 -- down "$inv"
    row "down" "$secs" "floor" "$fnew" - "$exec_verdict"
    if ((small_hosts > 0)); then
        local per_small per_big
        per_small=$(awk -v c="$small_cpu" -v h="$small_hosts" 'BEGIN { printf "%.3f", c / h }')
        per_big=$(awk -v c="$up_cpu" -v h="$hosts" 'BEGIN { printf "%.3f", c / h }')
        row "controller CPU per host, first up (s)" "$per_big" "$small_hosts-host run's" "$per_small" 1.5
        local waves_small waves_big
        waves_small=$(((small_hosts + 7) / 8))
        waves_big=$(((hosts + 7) / 8))
        row "first up per wave of 8 hosts (s)" "$(awk -v t="$up" -v w="$waves_big" 'BEGIN { printf "%.3f", t / w }')" \
            "$small_hosts-host run's" "$(awk -v t="$small_up" -v w="$waves_small" 'BEGIN { printf "%.3f", t / w }')" - \
            "($waves_big waves against $waves_small)"
    else
        note "  controller CPU per host, first up: $(awk -v c="$up_cpu" -v h="$hosts" 'BEGIN { printf "%.3f", c / h }') s (run 'all' to compare)"
    fi
    destroy "$inv"
}

case $mode in
    all) bench_floor && bench_scale && bench_hosts ;;
    floor) bench_floor ;;
    scale) bench_scale ;;
    hosts) bench_hosts ;;
esac

echo
echo "lvsctl benchmark ($mode): kernel $(uname -r), $(nproc) CPUs"
printf '%-44s %8s  %s\n' "what" "wall s" "ratio to its floor, target"
printf '%s\n' "${report[@]}"
if ((failed)); then
    echo "bench: a target was missed" >&2
fi
exit "$failed"
