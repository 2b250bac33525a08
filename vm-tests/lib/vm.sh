# shellcheck shell=bash
# Boot the test VM and turn its console log into a verdict.

# serial name -> image file; the guest finds each disk by its serial
DISKS=(tarfs512 verity4k corrupt plain)
declare -A DISK_FILE=([tarfs512]=tarfs512.img [verity4k]=verity4k.img [corrupt]=corrupt.img [plain]=plain.erofs)

scenario_names() {
  local f names=()
  for f in "$HERE"/guest/scenarios/[0-9][0-9]-*.sh; do
    f=${f##*/}
    f=${f%.sh}
    names+=("${f#[0-9][0-9]-}")
  done
  echo "${names[*]}"
}

# VM_SCENARIOS must name existing scenarios (checked before anything is built)
check_scenarios() {
  VM_SCENARIOS=${VM_SCENARIOS:-}
  VM_SCENARIOS=${VM_SCENARIOS//,/ }
  local s
  for s in $VM_SCENARIOS; do
    compgen -G "$HERE/guest/scenarios/[0-9][0-9]-$s.sh" >/dev/null ||
      die "VM_SCENARIOS: no scenario '$s' (have: $(scenario_names))"
  done
}

# boot_vm MODE (tests|demo): console in $CONSOLE; sets QEMU_RC, QEMU_WALL
boot_vm() {
  local mode=$1 append i=0 s bios=() drives=() t0
  append="console=ttyS0 panic=-1 quiet vmtest.mode=$mode vmtest.timeout=${VM_SCENARIO_TIMEOUT:-90}"
  [[ -n ${VM_SCENARIOS:-} ]] && append+=" vmtest.only=${VM_SCENARIOS// /,}"
  [[ -n ${VM_KERNEL_LOG:-} ]] && append+=" vmtest.klog=1"
  [[ -f /usr/share/qemu/qboot.rom ]] && bios=(-bios /usr/share/qemu/qboot.rom)
  for s in "${DISKS[@]}"; do
    drives+=(-drive "file=$WORK/images/${DISK_FILE[$s]},if=none,id=d$i,format=raw,readonly=on"
      -device "virtio-blk-pci,drive=d$i,serial=$s")
    i=$((i + 1))
  done
  # shellcheck disable=SC2206 # VM_QEMU_ARGS is meant to be word-split
  local qemu=(qemu-system-x86_64 -accel tcg "${bios[@]}" -m "${VM_MEM:-512M}" -smp 1
    -nodefaults -no-user-config -nographic -serial stdio -monitor none -no-reboot
    -kernel "$VMLINUZ" -initrd "$INITRD" -append "$append" "${drives[@]}" ${VM_QEMU_ARGS:-})
  log "booting: ${qemu[*]}"
  # live view: everything for the demo or with VM_VERBOSE=1, else the result lines
  local filter=(grep -a --line-buffered -E '^VMTEST-(PASS|FAIL)')
  [[ $mode == demo || -n ${VM_VERBOSE:-} ]] && filter=(cat)
  t0=$(date +%s.%N)
  set +e
  timeout "${VM_TIMEOUT:-300}" "${qemu[@]}" </dev/null 2>&1 | tee "$CONSOLE" | sed -u 's/\r$//' | "${filter[@]}"
  QEMU_RC=${PIPESTATUS[0]}
  set -e
  QEMU_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [[ $QEMU_RC == 124 ]]; then
    log "the VM did not power off within VM_TIMEOUT=${VM_TIMEOUT:-300}s; killed"
  elif [[ $QEMU_RC != 0 ]]; then
    log "qemu exited with status $QEMU_RC"
  fi
}

# report: summary, metrics, failing scenarios' context, then exactly "N passed, M failed".
# Returns non-zero on any failure, when no scenario ran, or when the guest never finished.
report() {
  local log n pass=0 failed=0 ended=1 plan why t
  log=$(tr -d '\r' <"$CONSOLE")
  grep -qx VMTEST-END <<<"$log" || ended=
  plan=$(sed -n 's/^VMTEST-PLAN //p' <<<"$log" | tail -n 1)
  # every planned scenario, plus any reported one that was not planned
  plan=$(printf '%s\n' $plan $(sed -nE 's/^VMTEST-(PASS|FAIL) ([^: ]+).*/\2/p' <<<"$log") | awk 'NF && !seen[$0]++')
  echo
  echo "==== results ($CONSOLE)"
  local -a failed_names=()
  for n in $plan; do
    t=$(awk -v n="$n" '$1 == "VMTEST-TIME" && $2 == n { printf " (%ss)", $3 }' <<<"$log")
    if grep -qx "VMTEST-PASS $n" <<<"$log" && ! grep -q "^VMTEST-FAIL $n:" <<<"$log"; then
      printf '  PASS  %-14s%s\n' "$n" "$t"
      pass=$((pass + 1))
    else
      why=$(sed -n "s/^VMTEST-FAIL $n: //p" <<<"$log" | head -n 1)
      printf '  FAIL  %-14s%s: %s\n' "$n" "$t" "${why:-no result (the guest stopped before it)}"
      failed=$((failed + 1))
      failed_names+=("$n")
    fi
  done
  if [[ -z $ended ]]; then
    printf '  FAIL  %-14s: %s\n' vm "the guest never printed VMTEST-END (crash, panic or timeout; qemu status $QEMU_RC)"
    failed=$((failed + 1))
  fi
  echo "==== metrics"
  sed -n 's/^VMTEST-METRIC //p' <<<"$log" | awk '{ printf "  %-20s %s\n", $1, $2 }'
  printf '  %-20s %s\n' host_vm_wall_s "$QEMU_WALL"
  for n in "${failed_names[@]}"; do
    echo "==== context: $n"
    grep -F "  [$n] " <<<"$log" | tail -n "${VM_CONTEXT_LINES:-40}" || true
  done
  if [[ -z $ended ]]; then
    echo "==== last console lines"
    tail -n 30 <<<"$log"
  fi
  # "boot" is setup: it alone does not count as a scenario having run
  local ran
  ran=$(grep -cE '^VMTEST-(PASS|FAIL) ' <<<"$log" || true)
  grep -qE '^VMTEST-(PASS|FAIL) boot\b' <<<"$log" && ran=$((ran - 1))
  ((ran > 0)) || echo "no scenario ran"
  echo "$pass passed, $failed failed"
  ((failed == 0 && ran > 0)) && [[ -n $ended ]]
}
