# shellcheck shell=bash
# Scenarios that need a boot of their own, because the guest is meant not to survive them:
#   corruption-restart   serve --corruption-mode restart: reading a corrupted block restarts
#   corruption-panic     serve --corruption-mode panic: reading a corrupted block panics
# or because they load a module with other parameters (guest/boots/NAME.sh, which print
# their own VMTEST-PASS/FAIL line):
#   require-signatures   dm_verity require_signatures=1: unsigned tables are refused
# The guest (guest/corruption.sh) mounts the corrupted disk through the daemon and reads the
# corrupted file; QEMU runs with -no-reboot and panic=-1, so a restart or a panic ends it.
# The verdict comes from the console: the dm table carries the mode's verity argument, the
# read was attempted, then the kernel's restart or panic line followed and nothing else did.

BOOT_SCENARIOS+=" require-signatures"

# run_boot_scenario NAME: boots, judges, appends the verdict to HOST_LOG
run_boot_scenario() {
  local name=$1 console=$WORK/$1.console.log why
  echo "VMTEST-PLAN $name" >>"$HOST_LOG"
  VM_TIMEOUT=$((${VM_TIMEOUT:-300} < 120 ? ${VM_TIMEOUT:-300} : 120)) boot_vm "$name" "$console"
  case $name in
    corruption-*) why=$(judge_corruption_boot "${name#corruption-}" "$console" "$QEMU_RC") ;;
    *) why=$(judge_own_verdict "$name" "$console" "$QEMU_RC") ;;
  esac
  {
    if [[ -z $why ]]; then
      echo "VMTEST-PASS $name"
    else
      echo "VMTEST-FAIL $name: $why"
      tr -d '\r' <"$console" | tail -n 20 | sed "s/^/  [$name] /"
    fi
    echo "VMTEST-TIME $name $QEMU_WALL"
  } >>"$HOST_LOG"
  grep -E '^VMTEST-(PASS|FAIL) ' "$HOST_LOG" | tail -n 1 >&2
}

# judge_corruption_boot MODE CONSOLE QEMU_STATUS: prints why it failed (nothing: passed)
judge_corruption_boot() {
  local mode=$1 log after arg want
  log=$(tr -d '\r' <"$2")
  case $mode in
    restart) arg=restart_on_corruption want="reboot: Restarting system" ;;
    panic) arg=panic_on_corruption want="Kernel panic - not syncing: dm-verity device corrupted" ;;
  esac
  after=$(sed -n '/^VMTEST-CORRUPTION-READ /,$p' <<<"$log")
  if grep -q '^VMTEST-CORRUPTION-SETUP-FAILED' <<<"$log"; then
    sed -n 's/^VMTEST-CORRUPTION-SETUP-FAILED //p' <<<"$log" | head -n 1
  elif ! grep -q "^VMTEST-CORRUPTION-TABLE .* verity .* 1 $arg\$" <<<"$log"; then
    echo "the dm table does not end with '1 $arg': $(sed -n 's/^VMTEST-CORRUPTION-TABLE //p' <<<"$log")"
  elif [[ -z $after ]]; then
    echo "the guest never read the corrupted file"
  elif grep -q '^VMTEST-CORRUPTION-SURVIVED' <<<"$after"; then
    echo "the guest survived the read: $(sed -n 's/^VMTEST-CORRUPTION-SURVIVED //p' <<<"$after")"
  elif grep -qx VMTEST-END <<<"$after"; then
    echo "the guest went on to VMTEST-END"
  elif ! grep -qE 'verity: .*data block [0-9]+ is corrupted' <<<"$after"; then
    echo "no dm-verity corruption message after the read"
  elif ! grep -qF "$want" <<<"$after"; then
    echo "no '$want' on the console after the read"
  elif [[ $mode == restart ]] && grep -q 'Kernel panic' <<<"$after"; then
    echo "the kernel panicked instead of restarting"
  elif [[ $3 != 0 ]]; then
    echo "qemu ended with status $3 (124: it was killed after the timeout), not by the guest's restart"
  fi
}

# judge_own_verdict NAME CONSOLE QEMU_STATUS: a boot whose guest script prints its verdict;
# prints why it failed (nothing: passed)
judge_own_verdict() {
  local log
  log=$(tr -d '\r' <"$2")
  if grep -q "^VMTEST-FAIL $1: " <<<"$log"; then
    sed -n "s/^VMTEST-FAIL $1: //p" <<<"$log" | head -n 1
  elif ! grep -qx "VMTEST-PASS $1" <<<"$log"; then
    echo "no verdict from the guest (qemu status $3)"
  elif ! grep -qx VMTEST-END <<<"$log"; then
    echo "the guest did not reach VMTEST-END (qemu status $3)"
  fi
}
