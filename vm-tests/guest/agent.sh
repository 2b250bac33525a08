#!/bin/sh
# The guest's control agent for the host-driven daemon scenarios (vm-tests/lib/host.sh).
# `nc -ll -p 7001 -e /vmtest/agent.sh` runs it once per connection: it greets, reads one
# command line, answers, and ends with "VMTEST-CTL-RC <status>". It never sets up volumes:
# it runs, kills and restarts the daemon, and reports what the kernel shows.
#   disks                       "<serial> /dev/vdX" for each test disk
#   state                       dm devices, /dev/mapper nodes, our mounts, loop devices, daemon
#   ids                         "<mount point> <first line of id.txt>" for each of our mounts
#   dm-status NAME              dmsetup status (the kernel's V/C)
#   dm-info NAME                dmsetup info (state: ACTIVE, DEFERRED REMOVE, open count)
#   daemon-start PROFILE        (re)start the daemon with a policy profile: main | hostile
#   daemon-stop                 SIGTERM, wait for the exit
#   kill9-arm N SECS            in the background: once N volumes are mounted (or after SECS),
#                               kill -9 the daemon
#   kill9-result                wait for that kill; say when it happened
#   daemon-rss                  VmRSS of the daemon (kB)
#   daemon-log N                last N lines of the daemon's log
#   hostile-setup | hostile-cleanup   traps for the hostile scenario (symlink, foreign mount)
#   resolve ARGS…               kata-volume resolve --json ARGS… (it only looks up a disk)
#   resolve-start ID ARGS…      the same in the background; resolve-running ID: still waiting?
#   resolve-result ID [SECS]    wait for it (default 60 s); its output, and its status as ours
#   resolvers                   kata-volume resolve processes still running
#   disk-info /dev/NAME         serial, first line, sysfs path and device number of a disk
#   block-gone NAME [SECS]      wait until /sys/block/NAME is gone (an unplugged disk)
#   dm-table NAME               dmsetup table
#   devname MAJ:MIN             the kernel's name of a block device, and its dm name if any
#   mountinfo PATH              the mountinfo lines at PATH, the top mount last
#   tree PATH | read PATH | sha256 PATH   what lies below PATH; a file's first line, digest
#   write PATH WORD | remove PATH         a container writing into its rootfs (mount root only)
#   foreign-mount PATH [DIR…] | foreign-umount PATH   another party's tmpfs at PATH
#   rmtree PATH                 remove a directory tree a scenario made (mount root only)
#   node-trap NAME | node-untrap NAME     /dev/mapper/NAME made a directory, and back
#   done                        the host is finished: the guest powers off
. /vmtest/lib.sh
. /vmtest/params.sh
. /vmtest/probes.sh
DAEMON_PORT=7000
PID_FILE=/tmp/daemon.pid
PROFILE_FILE=/tmp/daemon.profile
DAEMON_LOG=/tmp/daemon.log
STATE_DIR=/run/kata-volume

daemon_pid() {
  local p st
  p=$(cat "$PID_FILE" 2>/dev/null) || return 1
  st=$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ] && echo "$p"
}

profile_args() {
  local a="--listen tcp://0.0.0.0:$DAEMON_PORT --state-dir $STATE_DIR --log-format json"
  a="$a --allow-files --allowed-source /dev/vd* --allowed-source /dev/sd* --allowed-source $SMALL_DIR/*"
  case $1 in
    main) echo "$a" ;;
    # broad source patterns, so the checks behind them (device type, file kind) are what
    # refuses; only the tarfs root hash is trusted
    hostile) echo "$a --allowed-source /dev/* --allowed-source /proc/* --trusted-root-hash $ROOT_512" ;;
    *) return 1 ;;
  esac
}

daemon_stop() {
  local p i=0
  p=$(daemon_pid) || return 0
  kill -TERM "$p"
  while daemon_pid >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  daemon_pid >/dev/null && { echo "daemon $p did not exit after SIGTERM"; return 1; }
  echo "daemon $p stopped"
}

daemon_start() {
  local args p
  args=$(profile_args "$1") || { echo "unknown profile '$1'"; return 2; }
  if p=$(daemon_pid) && [ "$(cat "$PROFILE_FILE")" = "$1" ]; then
    echo "daemon $p already running with profile $1"
    return 0
  fi
  daemon_stop || return 1
  echo "=== start, profile $1: kata-volume serve $args" >>"$DAEMON_LOG"
  set -f # the patterns are for the daemon, not for this shell
  # shellcheck disable=SC2086
  "$KV" serve $args </dev/null >>"$DAEMON_LOG" 2>&1 &
  echo $! >"$PID_FILE"
  set +f
  echo "$1" >"$PROFILE_FILE"
  # serving once it answers (it binds first, then reconciles, then serves)
  "$KV" version --addr "tcp://127.0.0.1:$DAEMON_PORT" --retry-for 20 >/dev/null 2>&1 ||
    { echo "daemon does not answer"; tail -n 5 "$DAEMON_LOG"; return 1; }
  echo "daemon $(cat "$PID_FILE") serving, profile $1"
}

# armed before the host sends its batch, so the kill cannot come after the batch
kill9_watch() {
  local want=$1 secs=$2 p=$3 t0 n i=0 why=
  t0=$(now)
  # a tight loop: the daemon mounts a volume every few milliseconds
  while n=$(grep -c " $MOUNT_ROOT/" /proc/self/mountinfo); [ "$n" -lt "$want" ]; do
    i=$((i + 1))
    [ $((i % 50)) = 0 ] && awk -v a="$t0" -v b="$(now)" -v s="$secs" 'BEGIN { exit !(b - a >= s) }' &&
      why=" (timed out waiting for $want)" && break
  done
  kill -9 "$p"
  echo "killed $p $(since "$t0") s after arming, when $n volume(s) were mounted$why ($(grep -c " $MOUNT_ROOT/" /proc/self/mountinfo) right after the kill)"
}

kill9_result() {
  local i=0
  while [ ! -s /tmp/kill9.result ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
  cat /tmp/kill9.result 2>/dev/null || { echo "no kill happened"; return 1; }
}

state() {
  local d p
  p=$(daemon_pid) && echo "daemon $p $(cat "$PROFILE_FILE")" || echo "daemon -"
  for d in /sys/block/dm-*; do
    [ -e "$d/dm/name" ] && echo "dm $(cat "$d/dm/name") ${d##*/}"
  done
  for d in /dev/mapper/*; do
    [ "${d##*/}" = control ] || [ ! -e "$d" ] || echo "node ${d##*/}"
  done
  mounts_under "$MOUNT_ROOT" | awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print "mount", $5, $3, $(i + 1), $6; next } }'
  loops_in_use | sed 's/^/loop /'
}

hostile_setup() {
  mkdir -p /etc "$MOUNT_ROOT" "$SMALL_DIR/a-directory"
  ln -sfn /etc "$MOUNT_ROOT/vmtest-evil"
  ln -sfn /dev/mem "$SMALL_DIR/mem-link.img"
  mkdir -p "$MOUNT_ROOT/vmtest-foreign"
  [ -n "$(mounts_at "$MOUNT_ROOT/vmtest-foreign")" ] || mount -t tmpfs -o size=1m foreign "$MOUNT_ROOT/vmtest-foreign"
  # the /dev/mem cases need the node: made here when devtmpfs has none (mem is 1:1)
  [ -e /dev/mem ] || mknod /dev/mem c 1 1
  [ -c /dev/mem ] && echo "has /dev/mem" || echo "no /dev/mem"
}

# resolve-start ID …: one background `kata-volume resolve`, its results in /tmp/resolve.ID.*
resolve_start() {
  local id=$1
  shift
  case $id in *[!a-z0-9]* | "") echo "bad id '$id'"; return 2 ;; esac
  rm -f /tmp/resolve."$id".*
  ("$KV" resolve --json "$@" >/tmp/resolve."$id".out 2>/tmp/resolve."$id".err
    echo $? >/tmp/resolve."$id".tmp && mv /tmp/resolve."$id".tmp /tmp/resolve."$id".rc) </dev/null >/dev/null 2>&1 &
  echo $! >/tmp/resolve."$id".pid
  echo "started resolve $id: $*"
}

resolve_running() {
  [ ! -e /tmp/resolve."$1".rc ] && [ -e /tmp/resolve."$1".pid ] && kill -0 "$(cat /tmp/resolve."$1".pid)" 2>/dev/null &&
    { echo running; return 0; }
  echo "not running"
  return 1
}

resolve_result() {
  local i=0 n=$((${2:-60} * 10))
  while [ ! -e /tmp/resolve."$1".rc ] && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
  [ -e /tmp/resolve."$1".rc ] || { echo "resolve $1 still running after ${2:-60}s"; return 98; }
  cat /tmp/resolve."$1".out /tmp/resolve."$1".err
  return "$(cat /tmp/resolve."$1".rc)"
}

disk_info() {
  local n=${1#/dev/}
  [ -b "$1" ] || { echo "no block device $1"; return 1; }
  echo "serial $(cat "/sys/block/$n/serial" 2>/dev/null || echo -)"
  echo "first $(head -n 1 "$1" | head -c 64)"
  echo "sysfs $(readlink -f "/sys/block/$n")"
  echo "devnum $(devnum "$1")"
}

resolvers() {
  local p c found=
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
    case $c in *kata-volume\ resolve\ *) echo "${p#/proc/} $c"; found=1 ;; esac
  done
  [ -n "$found" ] || echo none
}

block_gone() {
  local i=0 n=$((${2:-20} * 10))
  while [ -e "/sys/block/$1" ] && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
  [ ! -e "/sys/block/$1" ] && [ ! -e "/dev/$1" ] && { echo "gone"; return 0; }
  echo "/sys/block/$1 or /dev/$1 still there"
  return 1
}

hostile_cleanup() {
  umount "$MOUNT_ROOT/vmtest-foreign" 2>/dev/null
  rm -rf "$MOUNT_ROOT/vmtest-evil" "$MOUNT_ROOT/vmtest-foreign" "$SMALL_DIR/a-directory" "$SMALL_DIR/mem-link.img"
  echo "cleaned"
}

echo VMTEST-CTL-HELLO
read -r cmd args || exit 0
set -f # the arguments are words, not patterns
# shellcheck disable=SC2086
set -- $args
set +f
a1=${1:-} a2=${2:-}
rc=0
case $cmd in
  disks) for s in $(cat /vmtest/disks.list); do echo "$s $(disk "$s")"; done ;;
  state) state ;;
  ids) for mp in $(mounts_under "$MOUNT_ROOT" | awk '{ print $5 }'); do echo "$mp $(head -n 1 "$mp/id.txt" 2>&1)"; done ;;
  dm-status) dms status "$a1" || rc=1 ;;
  dm-info) dms info "$a1" || rc=1 ;;
  daemon-start) daemon_start "$a1" || rc=$? ;;
  daemon-stop) daemon_stop || rc=$? ;;
  kill9-arm)
    if p=$(daemon_pid); then
      rm -f /tmp/kill9.result
      (kill9_watch "$a1" "$a2" "$p" >/tmp/kill9.tmp 2>&1; mv /tmp/kill9.tmp /tmp/kill9.result) </dev/null >/dev/null 2>&1 &
      echo "armed: kill -9 $p once $a1 volume(s) are mounted"
    else
      echo "no daemon"
      rc=1
    fi
    ;;
  kill9-result) kill9_result || rc=1 ;;
  daemon-rss) p=$(daemon_pid) && awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" || rc=1 ;;
  daemon-log) tail -n "${a1:-40}" "$DAEMON_LOG" ;;
  hostile-setup) hostile_setup ;;
  hostile-cleanup) hostile_cleanup ;;
  resolve) "$KV" resolve --json "$@" 2>&1 || rc=$? ;;
  resolve-start) resolve_start "$@" || rc=$? ;;
  resolve-running) resolve_running "$a1" || rc=$? ;;
  resolve-result) resolve_result "$a1" "$a2" || rc=$? ;;
  resolvers) resolvers ;;
  disk-info) disk_info "$a1" || rc=$? ;;
  block-gone) block_gone "$a1" "$a2" || rc=$? ;;
  dm-table) dms table "$a1" || rc=1 ;;
  devname) probe_devname "$a1" || rc=$? ;;
  mountinfo) probe_mountinfo "$a1" ;;
  tree) probe_tree "$a1" || rc=$? ;;
  read) probe_read "$a1" || rc=$? ;;
  sha256) probe_sha256 "$a1" || rc=$? ;;
  write) probe_write "$a1" "$a2" || rc=$? ;;
  remove) probe_remove "$a1" || rc=$? ;;
  foreign-mount) foreign_mount "$@" || rc=$? ;;
  foreign-umount) foreign_umount "$a1" || rc=$? ;;
  rmtree) rmtree "$a1" || rc=$? ;;
  node-trap) node_trap "$a1" || rc=$? ;;
  node-untrap) node_untrap "$a1" || rc=$? ;;
  done) touch /tmp/host-done && echo "powering off" ;;
  *) echo "unknown command '$cmd'"; rc=2 ;;
esac
echo "VMTEST-CTL-RC $rc"
