#!/bin/sh
# lvsctl-nat-web1.sh: host web1 (real-server) of LVS lab nat, rendered by lvsctl 0.1.0.
#
# A standalone equivalent of `lvsctl up` / `lvsctl down` for this host, for machines that cannot
# run lvsctl:   sh lvsctl-nat-web1.sh start | stop | status
# Needs: iproute2, modprobe; run as root.
#
# Unlike lvs_dr_rs.sh-style scripts, `stop` does not write 0 everywhere: `start` records in
# $STATE the value every sysctl had before it changed it, and which addresses, routes and IPVS
# entries it added; `stop` restores exactly those values and removes only what `start` added.
set -u
STATE=/var/lib/lvsctl-sh/nat-web1.state

die() { echo "$0: $*" >&2; exit 1; }
say() { echo "web1: $*"; }
record() { printf '%s\n' "$*" >> "$STATE"; }
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
    record sysctl "$1" "$old"
    printf '%s\n' "$2" > "$p" || die "cannot set $1"
    say "sysctl $1: $old -> $2"
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

set_route() { # destination gateway
    prior=$(ip -4 route show exact "$1" | head -n 1)
    [ "$(printf '%s\n' "$prior" | awk '$2 == "via" { print $3 }')" = "$2" ] && return 0
    ip route replace "$1" via "$2" || die "cannot route $1 via $2"
    if [ -n "$prior" ]; then record route-replaced "$1" "$prior"; else record route "$1" "$2"; fi
    say "route $1 via $2"
}

start() {
    mkdir -p "$(dirname "$STATE")" || die "cannot create $(dirname "$STATE")"
    [ -s "$STATE" ] && die "already started ($STATE exists): run stop first"
    : > "$STATE"
    link_up eth0
    add_address eth0 10.10.0.81/24 eth0:lvs
    set_route default 10.10.0.1
    say "started"
}

stop() {
    [ -e "$STATE" ] || { say "not started (no $STATE)"; return 0; }
    # Undo in reverse order of start.
    sed '1!G;h;$!d' "$STATE" | while read -r kind a b c; do
        case $kind in
            sysctl) printf '%s\n' "$b" > "$(proc_path "$a")" && say "sysctl $a restored to $b" ;;
            link) ip link set dev "$a" down && say "link $a down" ;;
            address) ip addr del "$b" dev "$a" 2>/dev/null; say "address $b on $a removed" ;;
            route) ip route del "$a" via "$b" 2>/dev/null; say "route $a removed" ;;
            route-replaced) ip route replace $b $c && say "route $a restored" ;;
            service) ipvsadm -D "$a" "$b" 2>/dev/null; say "IPVS service $b removed" ;;
            dest) ipvsadm -d "$a" "$b" -r "$c" 2>/dev/null; say "IPVS destination $c of $b removed" ;;
            module) modprobe -r "$a" 2>/dev/null && say "module $a unloaded" ;;
        esac
    done
    rm -f "$STATE"
    say "stopped"
}

status() {
    if [ -s "$STATE" ]; then say "started (state in $STATE)"; else say "not started"; fi
    if ip -o -4 addr show dev eth0 to 10.10.0.81/32 2>/dev/null | grep -q .; then echo "  address 10.10.0.81/24 on eth0: present"; else echo "  address 10.10.0.81/24 on eth0: MISSING"; fi
    echo "  route default: $(ip -4 route show exact default | head -n 1)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
