#!/usr/bin/env bash
# A real S3 server for tests and development: single-node Ceph (mon + 1 OSD + radosgw) on
# 127.0.0.1, every byte of state under STATE_DIR.
#
# Usage: [RGW_PORT=7480] [MON_PORT=3300] [AK=.. SK=..] scripts/s3-server.sh up|down|status [STATE_DIR]
#   up      create the cluster on first use, start whatever is not running, create the S3
#           user; safe to repeat. Prints "ready" once GET / answers on RGW_PORT.
#   down    stop the daemons this STATE_DIR started (by their pid files).
#   status  exit 0 when all three daemons of STATE_DIR are running.
# Environment:
#   RGW_PORT  S3 endpoint port (default 7480, later the port of the last run).
#   MON_PORT  monitor port (default 3300); fixed when the cluster is created.
#   OSD_PORT_MIN, OSD_PORT_MAX  the range the OSD binds its 4 ports in (default 6800-7300);
#           the OSD skips ports already taken, so two clusters can share the range.
#   OBJSTORE  memstore (default: fastest start; data survives a clean "down", not a crash)
#             or bluestore (an 8 GiB sparse image; survives kill -9).
#   AK, SK    access and secret key of the S3 user (default relayaccess / relaysecret123).
#   WAIT_SECONDS  how long to wait for each daemon (default 120).
# Requires: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
set -euo pipefail

ACTION=${1:-}
C=${2:-${TMPDIR:-/tmp}/tongban-s3}
OSD_PORT_MIN=${OSD_PORT_MIN:-6800}
OSD_PORT_MAX=${OSD_PORT_MAX:-7300}
OBJSTORE=${OBJSTORE:-memstore}
AK=${AK:-relayaccess}
SK=${SK:-relaysecret123}
WAIT_SECONDS=${WAIT_SECONDS:-120}
DAEMONS=(client.rgw.a osd.0 mon.a)
T0=$EPOCHREALTIME

say() { printf '%s %.1fs\n' "$1" "$(bc_sub "$EPOCHREALTIME" "$T0")"; }
bc_sub() { awk -v a="$1" -v b="$2" 'BEGIN { print a - b }'; }
die() { echo "s3-server: $*" >&2; exit 1; }

# alive = the pid file names a live (non-zombie) process whose command line contains $2;
# checking the command line keeps a recycled pid from being mistaken for (or killed as) ours.
pidalive() {
  local p st
  p=$(cat "$1" 2>/dev/null) || return 1
  [[ -r /proc/$p/stat ]] || return 1
  st=$(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f1)
  [[ $st != Z ]] && grep -q -a -- "$2" "/proc/$p/cmdline"
}

binary_of() {
  case $1 in
    mon.a) echo ceph-mon ;;
    osd.0) echo ceph-osd ;;
    client.rgw.a) echo radosgw ;;
  esac
}

http_ok() {
  # GET / on the gateway without curl: bash's /dev/tcp is always there.
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$RGW_PORT"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 5 line <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ $line == HTTP/1.[01]\ 200* ]]
}

wait_for() {  # wait_for DESCRIPTION LOGNAME COMMAND...
  local what=$1 log=$2 deadline
  shift 2
  deadline=$((SECONDS + WAIT_SECONDS))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "s3-server: $what did not come up within ${WAIT_SECONDS}s; last log lines:" >&2
      tail -20 "$C/log/$log.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

check_binaries() {
  local b missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}; install with:
  apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
}

create_cluster() {
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  # Written to a temporary name first, so an interrupted create is redone, not half-used.
  cat >"$CONF.new" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = $OSD_PORT_MIN
ms bind port max = $OSD_PORT_MAX
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
client mount timeout = 30
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
paxos propose interval = 0.05
paxos min wait = 0.01
osd crush chooseleaf type = 0
run dir = $C/run
admin socket = $C/run/\$name.asok
pid file = $C/run/\$name.pid
log file = $C/log/\$name.log
keyring = $C/keyring
mon data avail warn = 1
mon data avail crit = 0
[mon.a]
mon data = $C/mon
[osd.0]
osd data = $C/osd0
osd objectstore = $OBJSTORE
bluestore block path = $C/osd0-block.img
bluestore block create = true
bluestore block size = 8589934592
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
osd memory target = 939524096
memstore device bytes = 4294967296
# memstore writes its data out only on a full (not a fast) shutdown.
osd fast shutdown = false
[client.rgw.a]
rgw data = $C/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = 127.0.0.1
rgw enable usage log = false
EOF
  rm -rf "$C/mon" "$C/osd0" "$C/keyring" "$C/monmap" "$C/osd0-block.img"
  mkdir -p "$C"/{mon,osd0,run,log,rgw}
  local k="$C/keyring"
  ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$k" --gen-key -n client.rgw.a \
    --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" \
    "$C/monmap" >/dev/null
  ceph-mon -c "$CONF.new" --mkfs -i a --monmap "$C/monmap" --keyring "$k"
  mv "$CONF.new" "$CONF"
  say "mon created"
}

osd_up() { $CEPH osd stat 2>/dev/null | grep -q "1 up"; }

conf_port() {  # conf_port KEY-PREFIX: the port at the end of that ceph.conf line
  sed -n "s/^$1.*:\([0-9]*\)\$/\1/p" "$CONF"
}

start() {  # start NAME BINARY ARGS...: the daemons fork; their start-up chatter goes to a log
  local name=$1
  shift
  "$@" >>"$C/log/start.log" 2>&1 || {
    tail -20 "$C/log/start.log" >&2
    tail -20 "$C/log/$name.log" >&2 || true
    die "$name failed to start"
  }
}

up() {
  check_binaries
  mkdir -p "$C"
  if [[ -f $CONF ]]; then
    # The monitor's address is baked into its map when the cluster is created.
    local created
    created=$(conf_port "mon host")
    [[ -z ${MON_PORT:-} || $MON_PORT == "$created" ]] ||
      die "$C was created with MON_PORT=$created, not $MON_PORT"
    MON_PORT=$created
    local last
    last=$(conf_port "rgw frontends")
    if [[ -n ${RGW_PORT:-} && $RGW_PORT != "$last" ]]; then
      ! pidalive "$C/run/client.rgw.a.pid" radosgw ||
        die "radosgw of $C already serves port $last; run down before changing RGW_PORT"
      sed -i "s/^rgw frontends = .*/rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT/" "$CONF"
    fi
    RGW_PORT=$(conf_port "rgw frontends")
  else
    MON_PORT=${MON_PORT:-3300}
    RGW_PORT=${RGW_PORT:-7480}
    create_cluster
  fi

  # memstore keeps its data only through a clean stop; after a crash the cluster's map
  # names placement groups the OSD no longer has, and the gateway would hang on them.
  if [[ -f $C/osd0/fsid && ! -f $C/osd0.stopped-cleanly ]] &&
    grep -q "^osd objectstore = memstore" "$CONF" && ! pidalive "$C/run/osd.0.pid" ceph-osd; then
    die "the memstore OSD of $C was not stopped cleanly, so its data is gone; delete $C" \
      "(or create it with OBJSTORE=bluestore to keep data through crashes)"
  fi

  pidalive "$C/run/mon.a.pid" ceph-mon || start mon.a ceph-mon -c "$CONF" -i a
  say "mon started"

  if [[ ! -f $C/osd0/fsid ]]; then
    local uuid id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$($CEPH osd new "$uuid" 0)
    ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" >"$C/log/osd-mkfs.log" 2>&1 ||
      { cat "$C/log/osd-mkfs.log" >&2; die "osd mkfs failed"; }
    touch "$C/osd0.stopped-cleanly"
    say "osd created"
  fi
  pidalive "$C/run/osd.0.pid" ceph-osd || start osd.0 ceph-osd -c "$CONF" -i 0
  rm -f "$C/osd0.stopped-cleanly"
  wait_for "the OSD" osd.0 osd_up
  say "osd up"

  pidalive "$C/run/client.rgw.a.pid" radosgw || start client.rgw.a radosgw -c "$CONF" -n client.rgw.a
  wait_for "radosgw on 127.0.0.1:$RGW_PORT" client.rgw.a http_ok
  say "rgw up"

  # The user keeps the keys it was created with; a mismatch would fail every request later.
  local info
  if info=$(radosgw-admin -c "$CONF" -n client.admin user info --uid relay 2>/dev/null); then
    grep -q "\"access_key\": \"$AK\"" <<<"$info" ||
      die "the S3 user of $C has other keys than AK=$AK"
  else
    radosgw-admin -c "$CONF" -n client.admin user create --uid relay --display-name relay \
      --access-key "$AK" --secret "$SK" >/dev/null
  fi
  say "ready on http://127.0.0.1:$RGW_PORT"
}

down() {
  local n f p
  for n in "${DAEMONS[@]}"; do
    f="$C/run/$n.pid"
    pidalive "$f" "$(binary_of "$n")" || continue
    p=$(cat "$f")
    kill -TERM "$p"
    for _ in $(seq 1 100); do
      pidalive "$f" "$(binary_of "$n")" || break
      sleep 0.1
    done
    if pidalive "$f" "$(binary_of "$n")"; then
      kill -KILL "$p"
    elif [[ $n == osd.0 ]]; then
      touch "$C/osd0.stopped-cleanly"
    fi
  done
}

status() {
  local n
  for n in "${DAEMONS[@]}"; do
    pidalive "$C/run/$n.pid" "$(binary_of "$n")" || { echo "$n: stopped"; return 1; }
  done
  echo "running"
}

CONF="$C/ceph.conf"
CEPH="ceph -c $CONF --connect-timeout 30"
case $ACTION in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status [STATE_DIR]" ;;
esac
