# shellcheck shell=bash
# Boot the test VM and turn its console log into a verdict.

# serial name -> image file; the guest finds each disk by its serial. Each sits at a fixed PCI
# slot on the root bus, so Kata's PCI path for it is known: tarfs512 is "05", and so on. The
# three container image layers (lib/layers.sh) sit at 0b, 0c and 0d, as a runtime would have
# hot-plugged them before sending their Storages; Kata main's multi-layer disks (a GPT disk
# of three layers, a whole-disk layer) at 0e and 0f.
DISKS=(tarfs512 verity4k corrupt plain layer-base layer-mid layer-top ml-gpt ml-whole)
declare -A DISK_FILE=([tarfs512]=tarfs512.img [verity4k]=verity4k.img [corrupt]=corrupt.img [plain]=plain.erofs
  [layer-base]=layers/base.img [layer-mid]=layers/mid.img [layer-top]=layers/top.img
  [ml-gpt]=multilayer/gpt.img [ml-whole]=multilayer/whole.img)
declare -A DISK_SLOT=([tarfs512]=05 [verity4k]=06 [corrupt]=07 [plain]=08
  [layer-base]=0b [layer-mid]=0c [layer-top]=0d [ml-gpt]=0e [ml-whole]=0f)
# A virtio-scsi controller at slot 0a with one disk (scsi.img) at SCSI id 2, LUN 1: Kata's
# SCSI address "2:1". Slots 10 and up stay free for disks hot-plugged through QMP.
SCSI_SLOT=0a SCSI_TARGET=2 SCSI_LUN=1
# The QMP socket of the main boot (lib/qmp.py talks to it; the host scenarios hot-plug)
QMP_SOCK=$WORK/qmp.sock

# Scenarios come in three kinds: the guest's own (guest/scenarios/NN-name.sh, run by /init),
# the host-driven daemon ones (host/scenarios/NN-name.sh, lib/host.sh) and the boots of their
# own (BOOT_SCENARIOS, lib/boots.sh). Names are unique across them.
BOOT_SCENARIOS="corruption-restart corruption-panic"

scenario_names() { # DIR: the names of the NN-name.sh files in it
  local f names=()
  for f in "$1"/[0-9][0-9]-*.sh; do
    f=${f##*/}
    f=${f%.sh}
    names+=("${f#[0-9][0-9]-}")
  done
  echo "${names[*]}"
}

# VM_SCENARIOS must name existing scenarios (checked before anything is built). Sets
# SEL_GUEST, SEL_HOST, SEL_BOOTS: the selected names of each kind (all when unset).
check_scenarios() {
  local s all_guest all_host
  VM_SCENARIOS=${VM_SCENARIOS:-}
  VM_SCENARIOS=${VM_SCENARIOS//,/ }
  all_guest=$(scenario_names "$HERE/guest/scenarios")
  all_host=$(scenario_names "$HERE/host/scenarios")
  if [[ -z $VM_SCENARIOS ]]; then
    SEL_GUEST=$all_guest SEL_HOST=$all_host SEL_BOOTS=$BOOT_SCENARIOS
    return
  fi
  SEL_GUEST= SEL_HOST= SEL_BOOTS=
  for s in $VM_SCENARIOS; do
    if [[ " $all_guest " == *" $s "* ]]; then
      SEL_GUEST+=" $s"
    elif [[ " $all_host " == *" $s "* ]]; then
      SEL_HOST+=" $s"
    elif [[ " $BOOT_SCENARIOS " == *" $s "* ]]; then
      SEL_BOOTS+=" $s"
    else
      die "VM_SCENARIOS: no scenario '$s' (have: $all_guest $all_host $BOOT_SCENARIOS)"
    fi
  done
}

# boot_vm MODE CONSOLE [QEMU_ARGS…]: MODE is the guest's vmtest.mode; the console goes to
# CONSOLE; sets QEMU_RC, QEMU_WALL
boot_vm() {
  local mode=$1 console=$2 append i=0 s bios=() drives=() t0
  shift 2
  # no_timer_check: under software emulation on a loaded host the kernel's IO-APIC timer
  # check can fail and panic the boot ("IO-APIC + timer doesn't work!"); seen in CI-like load.
  append="console=ttyS0 panic=-1 quiet no_timer_check vmtest.mode=$mode vmtest.timeout=${VM_SCENARIO_TIMEOUT:-90}"
  if [[ $mode == tests ]]; then
    [[ -n ${VM_SCENARIOS:-} ]] && append+=" vmtest.only=$(tr ' ' ',' <<<"${SEL_GUEST:- none}" | sed 's/^,//')"
    [[ -n $SEL_HOST ]] && append+=" vmtest.host=1 vmtest.hosttimeout=${VM_TIMEOUT:-300}"
  fi
  [[ -n ${VM_KERNEL_LOG:-} ]] && append+=" vmtest.klog=1"
  [[ -f /usr/share/qemu/qboot.rom ]] && bios=(-bios /usr/share/qemu/qboot.rom)
  for s in "${DISKS[@]}"; do
    drives+=(-drive "file=$WORK/images/${DISK_FILE[$s]},if=none,id=d$i,format=raw,readonly=on"
      -device "virtio-blk-pci,drive=d$i,serial=$s,addr=0x${DISK_SLOT[$s]}")
    i=$((i + 1))
  done
  drives+=(-device "virtio-scsi-pci,id=scsi0,addr=0x$SCSI_SLOT"
    -drive "file=$WORK/images/scsi.img,if=none,id=s0,format=raw,readonly=on"
    -device "scsi-hd,bus=scsi0.0,drive=s0,scsi-id=$SCSI_TARGET,lun=$SCSI_LUN,serial=scsi$SCSI_TARGET$SCSI_LUN")
  if [[ $mode == tests ]]; then
    rm -f "$QMP_SOCK"
    drives+=(-qmp "unix:$QMP_SOCK,server=on,wait=off")
  fi
  # shellcheck disable=SC2206 # VM_QEMU_ARGS is meant to be word-split
  local qemu=(qemu-system-x86_64 -accel tcg "${bios[@]}" -m "${VM_MEM:-512M}" -smp "${VM_SMP:-1}"
    -nodefaults -no-user-config -nographic -serial stdio -monitor none -no-reboot
    -kernel "$VMLINUZ" -initrd "$INITRD" -append "$append" "${drives[@]}" "$@" ${VM_QEMU_ARGS:-})
  log "booting ($mode): ${qemu[*]}"
  # live view: everything for the demo, the benchmark or with VM_VERBOSE=1, else the results
  local filter=(grep -a --line-buffered -E '^VMTEST-(PASS|FAIL)')
  [[ $mode == demo || $mode == bench || -n ${VM_VERBOSE:-} ]] && filter=(cat)
  t0=$(date +%s.%N)
  set +e
  timeout "${VM_TIMEOUT:-300}" "${qemu[@]}" </dev/null 2>&1 | tee "$console" | sed -u 's/\r$//' | "${filter[@]}"
  QEMU_RC=${PIPESTATUS[0]}
  set -e
  QEMU_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [[ $QEMU_RC == 124 ]]; then
    log "the VM did not power off within VM_TIMEOUT=${VM_TIMEOUT:-300}s; killed"
  elif [[ $QEMU_RC != 0 ]]; then
    log "qemu exited with status $QEMU_RC"
  fi
}
