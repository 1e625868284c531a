#!/bin/sh
# /usr/local/sbin/lvsctl-nat-onearm.sh: host lvs (director) of LVS lab nat-onearm, rendered by lvsctl 0.1.0.
#
# A standalone equivalent of `lvsctl up` / `lvsctl down` for this host, for machines that cannot
# run lvsctl:   /usr/local/sbin/lvsctl-nat-onearm.sh start | stop | status
# The unit lvsctl-nat-onearm.service runs `start` at boot and `stop` on `systemctl stop`.
# Needs: iproute2, modprobe, ipvsadm, nft (nftables); run as root.
#
# Unlike lvs_dr_rs.sh-style scripts, `stop` does not write 0 everywhere: `start` records the value
# every sysctl had before it changed it (in $STATE, kept across reboots: the sysctl.d file sets
# the lab's values again at boot) and what it added since boot (in $RUNSTATE); `stop` restores
# exactly those values and removes only what `start` added.
set -u
STATE=/var/lib/lvsctl-sh/nat-onearm.state
RUNSTATE=/run/lvsctl-sh/nat-onearm.state
# Routes carry lvsctl's protocol number (`proto lvsctl` in the agent's words), as the agent's do.
PROTO=76

die() { echo "$0: $*" >&2; exit 1; }
HOST=lvs
say() { printf '%s: %s\n' "$HOST" "$*"; }
record() { printf '%s\n' "$*" >> "$RUNSTATE"; }
proc_path() { printf '/proc/sys/%s' "$(printf '%s' "$1" | tr './' '/.')"; }

load_module() { # name
    [ -d "/sys/module/$1" ] && return 0
    modprobe "$1" || die "cannot load module $1"
    record module "$1"
    say "module $1 loaded"
}

set_sysctl() { # key value
    p=$(proc_path "$1")
    [ -e "$p" ] || die "sysctl $1 does not exist on this kernel"
    old=$(cat "$p")
    [ "$old" = "$2" ] && return 0
    # The first prior value is the one to restore: after a reboot the sysctl.d file has set the
    # lab's value again, and the value from before the first start is already recorded.
    grep -q "^sysctl $1 " "$STATE" || printf 'sysctl %s %s\n' "$1" "$old" >> "$STATE"
    printf '%s\n' "$2" > "$p" || die "cannot set $1"
    say "sysctl $1: $old -> $2"
}

restore_sysctls() {
    [ -s "$STATE" ] || return 0
    sed '1!G;h;$!d' "$STATE" | while read -r kind key value; do
        [ "$kind" = sysctl ] || continue
        # Only keys this script sets (net.*, no path of their own): the state file is data,
        # never a way to write elsewhere in /proc/sys.
        case $key in net.*) ;; *) say "sysctl $key in $STATE is not one this script sets: left alone"; continue ;; esac
        case $key in *[!A-Za-z0-9._-]*|*..*) say "sysctl $key in $STATE is not a key: left alone"; continue ;; esac
        [ "$(cat "$(proc_path "$key")" 2>/dev/null)" = "$value" ] && continue
        printf '%s\n' "$value" > "$(proc_path "$key")" && say "sysctl $key restored to $value"
    done
}

gue_port() { # port [-6]
    ip fou show | grep -qx "port $1 gue${2:+ $2}" && return 0
    ip fou add port "$1" gue ${2:+"$2"} || die "cannot open GUE port $1"
    record gue "$1" "${2:-}"
    say "GUE port $1${2:+ (IPv6)} open"
}

link_up() { # dev
    ip -o link show dev "$1" up | grep -q . && return 0
    ip link set dev "$1" up || die "cannot bring $1 up"
    record link "$1"
    say "link $1 up"
}

add_address() { # dev cidr [label]
    # `to A/32` matches exactly this address (a /24 would match any address of the subnet).
    ip -o -4 addr show dev "$1" to "${2%/*}/32" | grep -q . && return 0
    if [ -n "${3:-}" ]; then
        ip addr add "$2" dev "$1" label "$3" || die "cannot add $2 to $1"
    else
        ip addr add "$2" dev "$1" || die "cannot add $2 to $1"
    fi
    record address "$1" "$2"
    say "address $2 on $1 added"
}

# Taking a link down flushes its IPv6 addresses (keep_addr_on_down is 0 by default): the global
# ones it held (not this script's: stop removed those first) are put back, nodad as they were.
link_down() { # dev
    held=$(ip -o -6 addr show dev "$1" scope global | awk '{ f = "-"; for (i = 5; i <= NF; i++) if ($i == "nodad") f = "nodad"; print $4 "," f }')
    ip link set dev "$1" down || return 0
    for x in $held; do
        a=${x%,*}
        case $a in *[!0-9a-fA-F:/]*) continue ;; esac
        ip -6 addr show dev "$1" to "$a" | grep -q . && continue
        if [ "${x#*,}" = nodad ]; then ip -6 addr add "$a" dev "$1" nodad; else ip -6 addr add "$a" dev "$1"; fi
    done
    say "link $1 down"
}

add_address6() { # dev cidr [deprecated]
    # IPv6: `to A/128` matches exactly this address; added without duplicate address detection
    # (usable at once), and deprecated (never a source address) where the plan says so.
    ip -o -6 addr show dev "$1" to "${2%/*}/128" | grep -q . && return 0
    if [ "${3:-}" = deprecated ]; then
        ip -6 addr add "$2" dev "$1" nodad preferred_lft 0 || die "cannot add $2 to $1"
    else
        ip -6 addr add "$2" dev "$1" nodad || die "cannot add $2 to $1"
    fi
    record address "$1" "$2"
    say "address $2 on $1 added"
}

# The route's gateway and advmss as `ip route show` prints them: "GATEWAY ADVMSS".
route_words() {
    awk '$2 == "via" { m = ""; for (i = 1; i < NF; i++) if ($i == "advmss") m = $(i + 1); print $3, m; exit }'
}

set_route6() { # destination gateway [dev] [advmss]
    # The kernel stores an IPv6 route's metric 0 as 1024: that slot is the one to replace (a
    # router advertisement's default route takes it too); its expiry is not kept.
    prior=$(ip -6 route show exact "$1" | awk '/ metric 1024( |$)/ { for (i = 1; i <= NF; i++) { if ($i == "expires") { i++; continue } printf "%s ", $i } print ""; exit }')
    [ "$(printf '%s\n' "$prior" | route_words)" = "$2 ${4:-}" ] && return 0
    if [ -n "$prior" ]; then
        ip -6 route replace "$1" via "$2" ${3:+dev "$3"} proto $PROTO ${4:+advmss "$4"} || die "cannot route $1 via $2"
        record route-replaced6 "$1" "$prior"
    else
        ip -6 route add "$1" via "$2" ${3:+dev "$3"} proto $PROTO ${4:+advmss "$4"} || die "cannot route $1 via $2"
        record route6 "$1" "$2"
    fi
    say "route $1 via $2${4:+ advmss $4}"
}

set_route() { # destination gateway [advmss]
    # Only the route of metric 0 is the one to replace: routes of other metrics (NetworkManager's
    # 100, networkd's 1024) stay as they are, and the metric-0 route added here wins over them.
    prior=$(ip -4 route show exact "$1" | awk '!/ metric / { print; exit }')
    [ "$(printf '%s\n' "$prior" | route_words)" = "$2 ${3:-}" ] && return 0
    if [ -n "$prior" ]; then
        ip route replace "$1" via "$2" proto $PROTO ${3:+advmss "$3"} || die "cannot route $1 via $2"
        record route-replaced "$1" "$prior"
    else
        ip route add "$1" via "$2" proto $PROTO ${3:+advmss "$3"} || die "cannot route $1 via $2"
        record route "$1" "$2"
    fi
    say "route $1 via $2${3:+ advmss $3}"
}

add_nft_table() { # table json-file
    if nft list table inet "$1" >/dev/null 2>&1; then
        say "nftables table inet $1 exists: left as it is"
        return 0
    fi
    nft -j -f "$2" || die "cannot load nftables table inet $1 from $2"
    record nft "$1"
    say "nftables table inet $1 loaded"
}

# A service is a flag and a target: -t|-u|--sctp-service VIP:PORT, or -f MARK with "-6" as
# family for an IPv6 firewall-mark service ("" otherwise).
add_service() { # flag target family scheduler [options...]
    flag=$1 addr=$2 fam=$3 sched=$4; shift 4
    if ipvsadm -L -n "$flag" "$addr" ${fam:+"$fam"} >/dev/null 2>&1; then
        say "IPVS service $addr exists: left as it is"
        return 0
    fi
    ipvsadm -A "$flag" "$addr" ${fam:+"$fam"} -s "$sched" "$@" || die "cannot add IPVS service $addr"
    record service "$flag" "$addr" "$fam"
    say "IPVS service $addr added"
}

add_dest() { # flag target family rip:port options...
    flag=$1 addr=$2 fam=$3 rip=$4; shift 4
    if ipvsadm -L -n "$flag" "$addr" ${fam:+"$fam"} | awk -v r="$rip" '$1 == "->" && $2 == r { found = 1 } END { exit !found }'; then
        return 0
    fi
    ipvsadm -a "$flag" "$addr" ${fam:+"$fam"} -r "$rip" "$@" || die "cannot add real server $rip to $addr"
    record dest "$flag" "$addr" "$rip" "$fam"
    say "IPVS destination $rip of $addr added"
}

start() {
    mkdir -p "$(dirname "$STATE")" "$(dirname "$RUNSTATE")" || die "cannot create the state directories"
    if [ -e "$RUNSTATE" ]; then
        grep -qx started "$RUNSTATE" && { say "already started (since boot: $RUNSTATE)"; return 0; }
        die "an earlier start did not finish ($RUNSTATE): run stop first"
    fi
    : > "$RUNSTATE"
    touch "$STATE"
    load_module ip_vs
    load_module ip_vs_rr
    load_module nft_ct
    load_module nft_nat
    load_module nft_chain_nat
    set_sysctl net.ipv4.ip_forward 1
    set_sysctl net.ipv4.vs.conntrack 1
    set_sysctl net.ipv6.conf.all.forwarding 1
    set_sysctl net.ipv4.vs.expire_nodest_conn 1
    link_up eth0
    add_address eth0 192.168.188.8/24 eth0:lvs
    add_address6 eth0 2001:db8:188::8/64
    add_address eth0 192.168.188.100/32 eth0:lvs
    add_address6 eth0 2001:db8:188::100/128
    set_route default 192.168.188.200
    set_route6 default 2001:db8:188::200
    add_nft_table lvsctl-nat-onearm /etc/lvsctl/nat-onearm/nftables.json
    add_service -t '[2001:db8:188::100]:80' '' rr
    add_dest -t '[2001:db8:188::100]:80' '' '[2001:db8:20::81]:80' -m -w 1
    add_dest -t '[2001:db8:188::100]:80' '' '[2001:db8:20::82]:8080' -m -w 1
    add_service -t 192.168.188.100:80 '' rr
    add_dest -t 192.168.188.100:80 '' 10.20.0.81:80 -m -w 1
    add_dest -t 192.168.188.100:80 '' 10.20.0.82:8080 -m -w 1
    record started
    say "started"
}

stop() {
    if [ -e "$RUNSTATE" ]; then
        # Undo in reverse order of start.
        sed '1!G;h;$!d' "$RUNSTATE" | while read -r kind a b c d; do
            case $kind in
                link) link_down "$a" ;;
                gue) ip fou del port "$a" ${b:+"$b"} 2>/dev/null; say "GUE port $a closed" ;;
                address) ip addr del "$b" dev "$a" 2>/dev/null; say "address $b on $a removed" ;;
                route) ip route del "$a" via "$b" proto $PROTO metric 0 2>/dev/null; say "route $a removed" ;;
                route6) ip -6 route del "$a" via "$b" proto $PROTO 2>/dev/null; say "route $a removed" ;;
                route-replaced)
                    # The prior route's words (b, c and d), as `ip route show` printed them, become arguments
                    # again: only words made of what ip prints, never a glob.
                    case "$b $c $d" in
                        *[!A-Za-z0-9.:/_\ -]*) say "route $a in $RUNSTATE is not a route: not restored" ;;
                        *) (set -f; ip route replace $b $c $d) && say "route $a restored" ;;
                    esac ;;
                route-replaced6)
                    case "$b $c $d" in
                        *[!A-Za-z0-9.:/_\ -]*) say "route $a in $RUNSTATE is not a route: not restored" ;;
                        *) (set -f; ip -6 route replace $b $c $d) && say "route $a restored" ;;
                    esac ;;
                service) ipvsadm -D "$a" "$b" ${c:+"$c"} 2>/dev/null; say "IPVS service $b removed" ;;
                dest) ipvsadm -d "$a" "$b" ${d:+"$d"} -r "$c" 2>/dev/null; say "IPVS destination $c of $b removed" ;;
                nft) nft delete table inet "$a" 2>/dev/null; say "nftables table inet $a removed" ;;
            esac
        done
    elif [ ! -e "$STATE" ]; then
        say "not started (no $RUNSTATE)"
        return 0
    fi
    # Sysctls before modules: the keys of tunl0 go away with ipip.
    restore_sysctls
    if [ -e "$RUNSTATE" ]; then
        sed '1!G;h;$!d' "$RUNSTATE" | while read -r kind a rest; do
            [ "$kind" = module ] && modprobe -r "$a" 2>/dev/null && say "module $a unloaded"
        done
    fi
    rm -f "$RUNSTATE" "$STATE"
    say "stopped"
}

status() {
    if grep -qsx started "$RUNSTATE"; then say "started (state in $RUNSTATE)"; else say "not started"; fi
    printf '  sysctl %s = %s (want %s)\n' net.ipv4.ip_forward "$(cat "$(proc_path net.ipv4.ip_forward)" 2>/dev/null || echo missing)" 1
    printf '  sysctl %s = %s (want %s)\n' net.ipv4.vs.conntrack "$(cat "$(proc_path net.ipv4.vs.conntrack)" 2>/dev/null || echo missing)" 1
    printf '  sysctl %s = %s (want %s)\n' net.ipv6.conf.all.forwarding "$(cat "$(proc_path net.ipv6.conf.all.forwarding)" 2>/dev/null || echo missing)" 1
    printf '  sysctl %s = %s (want %s)\n' net.ipv4.vs.expire_nodest_conn "$(cat "$(proc_path net.ipv4.vs.expire_nodest_conn)" 2>/dev/null || echo missing)" 1
    if ip -o -4 addr show dev eth0 to 192.168.188.8/32 2>/dev/null | grep -q .; then w=present; else w=MISSING; fi
    printf '  address %s on %s: %s\n' 192.168.188.8/24 eth0 "$w"
    if ip -o -6 addr show dev eth0 to 2001:db8:188::8/128 2>/dev/null | grep -q .; then w=present; else w=MISSING; fi
    printf '  address %s on %s: %s\n' 2001:db8:188::8/64 eth0 "$w"
    if ip -o -4 addr show dev eth0 to 192.168.188.100/32 2>/dev/null | grep -q .; then w=present; else w=MISSING; fi
    printf '  address %s on %s: %s\n' 192.168.188.100/32 eth0 "$w"
    if ip -o -6 addr show dev eth0 to 2001:db8:188::100/128 2>/dev/null | grep -q .; then w=present; else w=MISSING; fi
    printf '  address %s on %s: %s\n' 2001:db8:188::100/128 eth0 "$w"
    printf '  route %s: %s\n' default "$(ip -4 route show exact default | head -n 1)"
    printf '  route %s: %s\n' default "$(ip -6 route show exact default | head -n 1)"
    ipvsadm -L -n
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
