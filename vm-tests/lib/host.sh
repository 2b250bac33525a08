# shellcheck shell=bash
# The host side of the daemon scenarios (vm-tests/host/scenarios/NN-name.sh). The guest's
# daemon is reached from the host with the project's own client over QEMU's user-mode
# network: restrict=on (the guest reaches nothing), two port forwards bound to 127.0.0.1:
#   KV_PORT  -> guest :7000   kata-volume serve --listen tcp://0.0.0.0:7000
#   CTL_PORT -> guest :7001   guest/agent.sh: kernel state, start/kill the daemon, power off
# run_host_driver runs in the background while the VM boots: it waits for the agent (the
# guest runs its own scenarios first), runs the selected host scenarios, then says "done",
# and the guest powers off. Its results go to HOST_LOG in the console's VMTEST-* format.

GUEST_KV_PORT=7000
GUEST_CTL_PORT=7001

# a port nothing listens on, on 127.0.0.1
free_port() {
  local p i
  for i in {1..50}; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found"
}

# Sets KV_PORT, CTL_PORT, NET_ARGS (qemu arguments for the user-mode network).
host_net_setup() {
  KV_PORT=$(free_port)
  CTL_PORT=$(free_port)
  [[ $KV_PORT != "$CTL_PORT" ]] || CTL_PORT=$(free_port)
  NET_ARGS=(-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$KV_PORT-:$GUEST_KV_PORT,hostfwd=tcp:127.0.0.1:$CTL_PORT-:$GUEST_CTL_PORT"
    -device virtio-net-pci,netdev=n0,romfile=)
}

# ctl COMMAND [ARGS…]: one request to the guest's agent; prints its answer, returns its
# status. slirp accepts a connection before the guest listens and then drops it: only a
# connection that delivered the agent's greeting counts, so retrying until then is safe.
# CTL_WAIT: how long to keep trying to connect (s). Status 99: no complete answer.
ctl() {
  local out rc deadline=$((SECONDS + ${CTL_WAIT:-15}))
  while :; do
    rc=0
    out=$(timeout "${CTL_TIMEOUT:-120}" bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 97
      IFS= read -r -t 5 hello <&3 || exit 98
      [[ ${hello%$'"'\r'"'} == VMTEST-CTL-HELLO ]] || exit 98
      printf "%s\n" "$2" >&3
      cat <&3' _ "$CTL_PORT" "$*" 2>/dev/null) || rc=$?
    [[ $rc == 97 || $rc == 98 ]] || break
    ((SECONDS < deadline)) && [[ ! -e $WORK/qemu.exited ]] || return 99
    sleep 0.3
  done
  out=${out//$'\r'/}
  rc=$(sed -n 's/^VMTEST-CTL-RC //p' <<<"$out" | tail -n 1)
  sed '/^VMTEST-CTL-RC /d' <<<"$out"
  [[ -n $rc ]] || return 99
  return "$rc"
}

# Runs one host scenario file with a time limit; prints its verdict lines.
run_host_scenario() {
  local f=$1 name t0 rc why
  name=${f##*/}
  name=${name%.sh}
  name=${name#[0-9][0-9]-}
  rm -f "$HOST_REASON"
  t0=$(date +%s.%N)
  echo "--- $name"
  timeout "${VM_SCENARIO_TIMEOUT:-90}" bash -c \
    '. "$1/lib/common.sh"; . "$1/lib/hostcheck.sh"; . "$WORK/images/params.sh"; . "$2"' _ "$HERE" "$f" \
    </dev/null 2>&1 | sed -u "s/^/  [$name] /"
  rc=${PIPESTATUS[0]}
  if [[ $rc == 0 && ! -e $HOST_REASON ]]; then
    echo "VMTEST-PASS $name"
    echo "VMTEST-PASS $name" >&3
  else
    why=$(head -n 1 "$HOST_REASON" 2>/dev/null)
    [[ $rc == 124 ]] && why="timed out after ${VM_SCENARIO_TIMEOUT:-90}s; $why"
    [[ -n $why ]] || why="exited $rc without a reason"
    CTL_WAIT=3 ctl daemon-log 15 2>&1 | sed "s/^/  [$name] daemon: /"
    remove_everything | sed "s/^/  [$name] cleanup: /"
    echo "VMTEST-FAIL $name: $why"
    echo "VMTEST-FAIL $name: $why" >&3
  fi
  echo "VMTEST-TIME $name $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
}

# After a failed scenario: remove every volume the daemon lists, so the next one starts clean
# (what the daemon does not know about stays, and the next scenario will say so).
remove_everything() {
  local mp addr=tcp://127.0.0.1:$KV_PORT
  for mp in $("$HOST_KV" list --addr "$addr" --json --retry-for 2 | jq -r '.volumes[].mount_point'); do
    "$HOST_KV" remove --addr "$addr" --retry-for 2 --mount-point "$mp" 2>&1 || echo "cannot remove $mp"
  done | tail -n 3
}

# run_host_driver SCENARIO_NAMES…: stdout is HOST_LOG; fd 3 the live view.
run_host_driver() {
  local n f t0 disks failed_all=
  set +e +o pipefail # a background copy of vm-tests/run: a failing scenario must not end it
  echo "VMTEST-PLAN $*"
  t0=$(date +%s.%N)
  # the guest answers once its own scenarios are done
  if ! disks=$(CTL_WAIT=${VM_TIMEOUT:-300} ctl disks); then
    failed_all="the guest's control agent never answered on 127.0.0.1:$CTL_PORT"
  elif ! CTL_WAIT=5 ctl daemon-start main | sed 's/^/  [daemon] /'; then
    failed_all="the daemon did not start in the guest"
  fi
  echo "VMTEST-METRIC host_wait_for_guest_s $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  if [[ -n $failed_all ]]; then
    CTL_WAIT=3 ctl daemon-log 20 2>&1 | sed 's/^/  [daemon] /'
    for n in "$@"; do echo "VMTEST-FAIL $n: $failed_all" | tee /dev/fd/3; done
  else
    # the guest's disks by serial, e.g. TARFS512_DISK=/dev/vda
    while read -r s d; do
      [[ -n $s ]] && export "$(tr 'a-z0-9-' 'A-Z0-9_' <<<"$s")_DISK=$d"
    done <<<"$disks"
    # where the disks sit (lib/vm.sh) and the QMP socket, for the resolve scenario
    DISK_SLOTS=$(for s in "${DISKS[@]}"; do printf '%s=%s ' "$s" "${DISK_SLOT[$s]}"; done)
    export KV_PORT CTL_PORT HOST_KV HOST_REASON WORK HERE VM_SCENARIO_TIMEOUT
    export QMP_SOCK DISK_SLOTS SCSI_TARGET SCSI_LUN
    for n in "$@"; do
      for f in "$HERE"/host/scenarios/[0-9][0-9]-"$n".sh; do run_host_scenario "$f"; done
    done
  fi
  echo "VMTEST-METRIC daemon_rss_at_end_kb $(CTL_WAIT=3 ctl daemon-rss || echo -)"
  CTL_WAIT=5 ctl "done" >/dev/null
  echo "VMTEST-HOST-END"
}

# Starts the driver in the background if host scenarios are selected (SEL_HOST): sets
# NET_ARGS and DRIVER_PID; stop_host_driver waits for it after QEMU exits.
start_host_driver() {
  NET_ARGS=()
  DRIVER_PID=
  [[ -n $SEL_HOST ]] || return 0
  host_net_setup
  HOST_KV=${KV_HOST_BIN:-$GUEST_BIN}
  HOST_REASON=$WORK/host.reason
  rm -f "$WORK/qemu.exited"
  log "host scenarios: client $HOST_KV, daemon at tcp://127.0.0.1:$KV_PORT, guest agent at 127.0.0.1:$CTL_PORT"
  # shellcheck disable=SC2086 # SEL_HOST is a word list
  run_host_driver $SEL_HOST 3>&2 >>"$HOST_LOG" 2>&1 &
  DRIVER_PID=$!
}

stop_host_driver() {
  local i
  [[ -n $DRIVER_PID ]] || return 0
  touch "$WORK/qemu.exited"
  for i in {1..150}; do
    kill -0 "$DRIVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  kill "$DRIVER_PID" 2>/dev/null && log "stopped the host driver (still running after QEMU exited)"
  wait "$DRIVER_PID" 2>/dev/null || true
}
