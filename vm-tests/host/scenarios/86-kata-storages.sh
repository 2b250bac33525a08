# Issue 12, the host side: `kata-volume storages` turns a nydus-snapshotter mount (type
# fuse.nydus-overlayfs, one io.katacontainers.volume= option per layer, top first) into the
# Storages a runtime sends, with --source-map to the layers' pinned PCI slots, and
# `kata-volume add --storages` sends them in order: the guest gets the same rootfs as a
# CCv0 runtime's (ccv0 convention: removed volumes first, then the overlay) or this
# project's (virtual-volume convention: removed in the reverse order). A list whose last
# layer never arrives fails after the disk timeout and takes back what it added: nothing
# left.
SNAP=/var/lib/containerd-nydus/snapshots
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")

# storages_for CID CONVENTION BASE_ADDRESS: the Storages for CID's nydus mount into $TMP/CID.json
storages_for() {
  local cid=$1 conv=$2 base=$3 n args=()
  args=(--container-id "$cid" --convention "$conv" --mount-type fuse.nydus-overlayfs
    --mount-option "workdir=$SNAP/$cid/work" --mount-option "upperdir=$SNAP/$cid/fs"
    --mount-option "lowerdir=$SNAP/3/fs:$SNAP/2/fs:$SNAP/1/fs")
  for n in top mid base; do args+=(--mount-option "$(layer_opt "$n")"); done
  args+=(--source-map "$LAYER_HOST_top=virtio_pci:$(slot_of layer-top)"
    --source-map "$LAYER_HOST_mid=virtio_pci:$(slot_of layer-mid)" --source-map "$LAYER_HOST_base=$base")
  echo "\$ kata-volume storages --container-id $cid --convention $conv … (3 layers)"
  "$HOST_KV" storages "${args[@]}" >"$TMP/$cid.json" 2>"$TMP/storages.err" ||
    fail "kata-volume storages exited $?: $(head -c 300 "$TMP/storages.err")"
  say "  $(jq -c '[.[] | {driver, source, mount_point}]' "$TMP/$cid.json" | head -c 600)"
}
mps_of() { jq -r '.[].mount_point' "$TMP/$1.json"; }

say "--- ccv0: container vmtest-c3"
storages_for vmtest-c3 ccv0 "virtio_pci:$(slot_of layer-base)"
[[ $(jq -r '[.[].driver] | join(" ")' "$TMP/vmtest-c3.json") == "dmverity dmverity dmverity overlayfs" ]] ||
  fail "the drivers are $(jq -r '[.[].driver] | join(" ")' "$TMP/vmtest-c3.json")"
[[ $(jq -r '[.[:3][].source] | join(" ")' "$TMP/vmtest-c3.json") == "$(slot_of layer-top) $(slot_of layer-mid) $(slot_of layer-base)" ]] ||
  fail "the layers' sources are not the top, mid and base slots"
[[ $(jq -r '.[3].options | map(select(startswith("lowerdir="))) | join(" ")' "$TMP/vmtest-c3.json") == \
  "lowerdir=$(layer_mp top) lowerdir=$(layer_mp mid) lowerdir=$(layer_mp base)" ]] || fail "the overlay's lowerdirs are not top, mid, base"
kvh add --json --storages "$TMP/vmtest-c3.json"
[[ $KVH_RC == 0 ]] || fail "add --storages exited $KVH_RC"
[[ $(jq -r '[.[].mount_point] | join(" ")' "$KVH_OUT") == "$(mps_of vmtest-c3 | tr '\n' ' ' | sed 's/ $//')" ]] ||
  fail "the answers are not the four Storages in order"
for n in top mid base; do on_dm_over "$(layer_mp "$n")" "$(jq -r ".[] | select(.mount_point == \"$(layer_mp "$n")\") | .dm_name" "$KVH_OUT")" "$(layer_disk "$n")"; done
check_overlay vmtest-c3 "$(layer_mp top)" "$(layer_mp mid)" "$(layer_mp base)"
check_layer_view "$MOUNT_ROOT/vmtest-c3/rootfs"
check_writes vmtest-c3
for mp in $(mps_of vmtest-c3); do
  kvh remove --mount-point "$mp"
  [[ $KVH_RC == 0 ]] || fail "remove of $mp exited $KVH_RC"
done
expect_clean "after vmtest-c3"
expect_root_as "after vmtest-c3" "$root_before"

say "--- virtual-volume: container vmtest-c4"
storages_for vmtest-c4 virtual-volume "virtio_pci:$(slot_of layer-base)"
[[ $(jq -r '[.[:3][] | .options[] | select(startswith("io.katacontainers.volume="))] | length' "$TMP/vmtest-c4.json") == 3 &&
  $(jq -r '[.[:3][].driver_options[]] | unique | join(" ")' "$TMP/vmtest-c4.json") == source_type=virtio_pci ]] ||
  fail "the virtual-volume Storages do not carry the volume option and source_type=virtio_pci"
kvh add --json --storages "$TMP/vmtest-c4.json"
[[ $KVH_RC == 0 ]] || fail "add --storages exited $KVH_RC"
check_overlay vmtest-c4 "$(layer_mp top)" "$(layer_mp mid)" "$(layer_mp base)"
check_layer_view "$MOUNT_ROOT/vmtest-c4/rootfs"
for mp in $(mps_of vmtest-c4 | tac); do
  kvh remove --mount-point "$mp"
  [[ $KVH_RC == 0 ]] || fail "remove of $mp exited $KVH_RC"
done
expect_clean "after vmtest-c4"
expect_root_as "after vmtest-c4" "$root_before"

say "--- all or nothing: the base layer's disk never comes (slot 13)"
storages_for vmtest-c5 ccv0 virtio_pci:13
kvh add --json --storages "$TMP/vmtest-c5.json"
[[ $KVH_RC == 1 ]] || fail "add --storages with a missing disk exited $KVH_RC, want 1"
grep -q "^error: Storage 3 of 4 .*(the 2 Storages added before it were removed): Disk 13 (virtio_pci) did not appear within 10 s" "$KVH_ERR" ||
  fail "the error does not name the failing Storage, the two it took back and the missing disk"
guest_state
list_json
[[ -z $(listed .mount_point) ]] || fail "the daemon lists $(listed .mount_point | tr '\n' ' ')"
expect_clean "after the failed list"
expect_root_as "after" "$root_before"
say "ok"
