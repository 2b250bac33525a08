# Issue 12: disks named by their guest address, through the daemon, in the CCv0 runtime's
# dmverity Storage (driver dmverity, verity_info=<the volume's dm_verity JSON>, source_type,
# the address as source, upstream's mount point verity/<root hash>): the pinned disks by PCI
# path (the right disk: another slot's disk does not verify), the virtio-scsi
# disk by target:lun, a disk hot-plugged through QMP after the request was sent (the daemon
# waits, then mounts it), and a slot where nothing comes (a clear timeout naming the
# address after the default 10 s, nothing left).
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")

say "--- pinned disks by PCI path"
for pair in "tarfs512 $ROOT_512 $OPT_512" "verity4k $ROOT_4K $OPT_4K"; do
  read -r serial root opt <<<"$pair"
  slot=$(slot_of "$serial")
  want_var=$(tr 'a-z0-9-' 'A-Z0-9_' <<<"$serial")_DISK
  add_dmverity "$opt" virtio_pci "$slot" "$VERITY_DIR/$root"
  [[ $KVH_RC == 0 ]] || fail "the dmverity Storage for PCI path $slot exited $KVH_RC"
  [[ $(jq -r .source "$KVH_OUT") == "${!want_var}" ]] ||
    fail "PCI path $slot was resolved to $(jq -r .source "$KVH_OUT"), the guest has $serial at ${!want_var}"
  on_dm_over "$VERITY_DIR/$root" "$(jq -r .dm_name "$KVH_OUT")" "${!want_var}"
  [[ $DM_TABLE == *" sha256 $root -" ]] || fail "the table does not carry the root hash $root"
  read_is "$VERITY_DIR/$root/hello.txt" "hello from erofs via dm-verity"
done
# verity4k's verity_info with tarfs512's slot: that disk's hash tree is not this root hash's
add_dmverity "$OPT_4K" virtio_pci "$(slot_of tarfs512)" "$MOUNT_ROOT/vmtest-wrong-slot"
refused_with PERMISSION_DENIED "root hash" "verity4k's volume at tarfs512's slot"
for root in "$ROOT_512" "$ROOT_4K"; do
  kvh remove --mount-point "$VERITY_DIR/$root"
  [[ $KVH_RC == 0 ]] || fail "remove of $VERITY_DIR/$root exited $KVH_RC"
done
expect_clean "after the PCI paths"

say "--- the virtio-scsi disk by target:lun"
add_dmverity "$OPT_SCSI" scsi "$SCSI_TARGET:$SCSI_LUN" "$VERITY_DIR/$SCSI_ROOT"
[[ $KVH_RC == 0 ]] || fail "the dmverity Storage for SCSI $SCSI_TARGET:$SCSI_LUN exited $KVH_RC"
node=$(jq -r .source "$KVH_OUT")
[[ $node =~ ^/dev/sd[a-z]+$ ]] || fail "SCSI $SCSI_TARGET:$SCSI_LUN was resolved to $node"
on_dm_over "$VERITY_DIR/$SCSI_ROOT" "$(jq -r .dm_name "$KVH_OUT")" "$node"
read_is "$VERITY_DIR/$SCSI_ROOT/id.txt" "scsi layer"
[[ $(ctl disk-info "$node" | sed -n 's/^first //p') == "$SCSI_MARKER" ]] || fail "$node does not start with the SCSI disk's marker"
kvh remove --mount-point "$VERITY_DIR/$SCSI_ROOT"
[[ $KVH_RC == 0 ]] || fail "remove exited $KVH_RC"
expect_clean "after the SCSI disk"

say "--- a disk hot-plugged at slot 12 after the request was sent"
MP=$VERITY_DIR/$SMALL_ROOT_05
dmverity_args "$(small_opt 05)" virtio_pci 12 "$MP"
t0=$(date +%s.%N)
at_exit kvh remove --mount-point "$MP"
at_exit qmp del-disk --node hv1 --id hvdev --timeout 30
spawn hot add --json "${DMV_ARGS[@]}"
sleep 2
[[ ! -e $TMP/batch/hot.rc ]] || fail "the add ended before the disk was plugged: $(cat "$TMP/batch/hot.err")"
guest_state
[[ -z $(all_dms) && -z $(our_mounts) ]] || fail "something was set up before the disk came: $(tr '\n' ';' <"$TMP/state")"
qmp add-disk --node hv1 --id hvdev --file "$WORK/images/small/05.img" --serial hotv --addr 0x12 ||
  fail "QMP could not hot-plug the disk"
batch_wait
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
((BATCH_OK == 1)) || fail "the add waiting for slot 12 failed"
out=$TMP/last-batch/hot.out
node=$(jq -r .source "$out")
say "slot 12 -> $node after ${took}s"
[[ $(ctl disk-info "$node" | sed -n 's/^serial //p') == hotv ]] || fail "$node is not the hot-plugged disk"
awk -v t="$took" 'BEGIN { exit !(t >= 2) }' || fail "the add answered after ${took}s: it did not wait for the plug"
on_dm_over "$MP" "$(jq -r .dm_name "$out")" "$node"
read_is "$MP/id.txt" "small layer 05"
kvh remove --mount-point "$MP"
[[ $KVH_RC == 0 ]] || fail "remove exited $KVH_RC"
qmp del-disk --node hv1 --id hvdev --timeout 30 || fail "QMP could not unplug the disk"
ctl block-gone "${node#/dev/}" 20 >/dev/null || fail "$node is still there after the unplug"
expect_clean "after the hot-plugged disk"

say "--- slot 13, where nothing comes"
t0=$(date +%s.%N)
add_dmverity "$(small_opt 06)" virtio_pci 13 "$VERITY_DIR/$SMALL_ROOT_06"
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
refused_with INTERNAL "Disk 13 (virtio_pci) did not appear within 10 s (last seen: no PCI device 0000:00:13.0)" "a disk that never comes"
awk -v t="$took" 'BEGIN { exit !(t >= 10 && t < 30) }' || fail "the 10 s timeout took ${took}s"
expect_clean "after the timeout"
list_json
[[ -z $(listed .mount_point) ]] || fail "the daemon lists $(listed .mount_point | tr '\n' ' ')"
expect_root_as "after" "$root_before"
say "ok"
