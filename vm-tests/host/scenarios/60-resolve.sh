# Kata guest addresses, found in the guest by `kata-volume resolve` (a lookup only: the daemon
# and the kernel's dm/mount state are not involved): every disk pinned at a PCI slot by its
# PCI path (checked by its serial), the virtio-scsi disk by target:lun (checked by its
# content), a disk hot-plugged through QMP while resolve is already waiting for it, a slot
# where nothing comes (a clear timeout, no process left), and a CCW address (no CCW bus).
field() { jq -r "$1" <<<"$2"; }
info_of() { sed -n "s/^$1 //p" <<<"$2"; }

expect_clean "before"

# ---- the pinned disks, by PCI path
[[ -n $DISK_SLOTS ]] || fail "no DISK_SLOTS from the harness"
for pair in $DISK_SLOTS; do
  serial=${pair%=*} slot=${pair#*=}
  out=$(ctl resolve --source-type virtio_pci "$slot") || fail "resolve of PCI path $slot exited $?: $out"
  node=$(field .node "$out")
  info=$(ctl disk-info "$node") || fail "$node (from $slot) is not a block device in the guest: $info"
  say "PCI path $slot -> $node (serial $(info_of serial "$info"), $(field .sysfs_path "$out"))"
  [[ $(info_of serial "$info") == "$serial" ]] ||
    fail "PCI path $slot resolved to $node, whose serial is '$(info_of serial "$info")', want $serial"
  want_var=$(tr 'a-z0-9-' 'A-Z0-9_' <<<"$serial")_DISK
  [[ $node == "${!want_var}" ]] || fail "PCI path $slot resolved to $node, the guest finds $serial at ${!want_var}"
  [[ $(field .sysfs_path "$out") =~ ^/sys/devices/pci0000:00/0000:00:$slot\.0/virtio[0-9]+/block/${node#/dev/}$ ]] ||
    fail "sysfs path $(field .sysfs_path "$out") is not under slot $slot"
  [[ $(field '"\(.major):\(.minor)"' "$out") == "$(info_of devnum "$info")" ]] ||
    fail "resolve says $(field '"\(.major):\(.minor)"' "$out"), the node is $(info_of devnum "$info")"
  [[ $(field .node_present "$out") == true ]] || fail "node_present is not true for $node (devtmpfs)"
done

# ---- the virtio-scsi disk, by target:lun
addr=$SCSI_TARGET:$SCSI_LUN
out=$(ctl resolve --source-type scsi "$addr") || fail "resolve of SCSI $addr exited $?: $out"
node=$(field .node "$out")
info=$(ctl disk-info "$node") || fail "$node (from SCSI $addr) is not a block device: $info"
say "SCSI $addr -> $node ($(field .sysfs_path "$out"))"
[[ $node =~ ^/dev/sd[a-z]+$ ]] || fail "SCSI $addr resolved to $node, not a SCSI disk"
[[ $(info_of first "$info") == "$SCSI_MARKER" ]] || fail "$node starts with '$(info_of first "$info")', want $SCSI_MARKER"
[[ $(field .sysfs_path "$out") =~ /[0-9]+:0:$SCSI_TARGET:$SCSI_LUN/block/${node#/dev/}$ ]] ||
  fail "sysfs path $(field .sysfs_path "$out") is not SCSI $addr"
out=$(ctl resolve --source-type scsi --timeout 1s "$SCSI_TARGET:$((SCSI_LUN + 1))") && fail "a LUN nobody has resolved: $out"
empty=$SCSI_TARGET:$((SCSI_LUN + 1))
[[ $out == "error: Disk $empty (scsi) did not appear within 1 s (last seen: no SCSI device *:0:$empty on any host)" ]] ||
  fail "unexpected answer for an empty LUN: $out"

# ---- a disk hot-plugged while resolve waits for it (slot 10)
ctl resolve-start hp --source-type virtio_pci --timeout 60s 10 || fail "could not start resolve in the guest"
sleep 1.5
ctl resolve-running hp >/dev/null || fail "resolve ended before anything was plugged: $(ctl resolve-result hp 1)"
qmp add-disk --node hp1 --id hpdev --file "$WORK/images/hotplug.img" --serial hot --addr 0x10 ||
  fail "QMP could not hot-plug the disk"
out=$(ctl resolve-result hp 60) || fail "resolve of the hot-plugged disk exited $?: $out"
node=$(field .node "$out")
waited=$(field .waited_ms "$out")
info=$(ctl disk-info "$node") || fail "$node (hot-plugged) is not a block device: $info"
say "hot-plugged slot 10 -> $node after $waited ms, found by $(field .found_by "$out") ($(field .sysfs_path "$out"))"
[[ $(info_of serial "$info") == hot ]] || fail "the hot-plugged disk's node $node has serial '$(info_of serial "$info")'"
[[ $(info_of first "$info") == "$HOTPLUG_MARKER" ]] || fail "$node starts with '$(info_of first "$info")'"
[[ $(field .sysfs_path "$out") =~ ^/sys/devices/pci0000:00/0000:00:10\.0/virtio[0-9]+/block/ ]] ||
  fail "sysfs path $(field .sysfs_path "$out") is not slot 10"
((waited >= 1000)) || fail "resolve waited only $waited ms: it did not wait for the plug"
qmp del-disk --node hp1 --id hpdev --timeout 30 || fail "QMP could not unplug the disk"
gone=$(ctl block-gone "${node#/dev/}" 20) || fail "after the unplug: $gone"

# ---- a slot where nothing comes: a clear timeout, nothing left
t0=$(date +%s.%N)
out=$(ctl resolve --source-type virtio_pci --timeout 2s 11) && fail "resolve of an empty slot succeeded: $out"
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
say "empty slot 11: $out (${took}s)"
[[ $out == "error: Disk 11 (virtio_pci) did not appear within 2 s (last seen: no PCI device 0000:00:11.0)" ]] ||
  fail "unexpected answer for an empty slot: $out"
awk -v t="$took" 'BEGIN { exit !(t >= 2 && t < 15) }' || fail "the 2 s timeout took ${took}s"
left=$(ctl resolvers)
[[ $left == none ]] || fail "resolve processes left in the guest: $left"

# ---- no CCW bus on x86
out=$(ctl resolve --source-type ccw 0.0.0005) && fail "a CCW address resolved: $out"
[[ $out == "error: Disk 0.0.0005 (virtio_ccw) cannot be found: no CCW bus on this machine" ]] ||
  fail "unexpected answer for a CCW address: $out"

expect_clean "after"
say "ok"
