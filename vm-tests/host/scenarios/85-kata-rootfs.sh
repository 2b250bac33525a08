# Issue 12: a container rootfs as the CCv0 runtime asks for it: a dmverity Storage per layer
# (top, mid, base: disks at their pinned PCI slots), then an overlayfs Storage (lowerdir= top
# first, upper and work directories to create). The rootfs shows overlayfs' rules (whiteouts,
# an opaque directory, the top's copy wins); writes land in the upper directory, never in a
# layer. A second container shares the base layer (the same mount, "already present") over
# another disk. Container 1 is removed in the upstream order (its volumes first: released,
# still under its rootfs; then the overlay, which takes them along but leaves the shared
# layer to container 2), container 2 in the reverse order (the overlay, then its volumes).
# Nothing is left: no dm device, mount, node or directory.
C1=vmtest-c1 C2=vmtest-c2
R1=$MOUNT_ROOT/$C1/rootfs R2=$MOUNT_ROOT/$C2/rootfs
V4K=$VERITY_DIR/$ROOT_4K
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")

say "--- container 1: three layers, then the overlay"
for n in top mid base; do
  add_dmverity "$(layer_opt "$n")" virtio_pci "$(slot_of "layer-$n")" "$(layer_mp "$n")"
  [[ $KVH_RC == 0 ]] || fail "the $n layer's dmverity Storage exited $KVH_RC"
  on_dm_over "$(layer_mp "$n")" "$(jq -r .dm_name "$KVH_OUT")" "$(layer_disk "$n")"
done
base_dm=$(jq -r .dm_name "$KVH_OUT")
add_overlay "$C1" "$(layer_mp top)" "$(layer_mp mid)" "$(layer_mp base)"
[[ $KVH_RC == 0 ]] || fail "the overlayfs Storage exited $KVH_RC"
check_overlay "$C1" "$(layer_mp top)" "$(layer_mp mid)" "$(layer_mp base)"
check_layer_view "$R1"
check_writes "$C1"

say "--- container 2: verity4k over the shared base layer"
add_dmverity "$OPT_4K" virtio_pci "$(slot_of verity4k)" "$V4K"
[[ $KVH_RC == 0 ]] || fail "verity4k's dmverity Storage exited $KVH_RC"
add_dmverity "$OPT_LAYER_base" virtio_pci "$(slot_of layer-base)" "$(layer_mp base)"
[[ $KVH_RC == 0 && $(jq -r .already_present "$KVH_OUT") == true && $(jq -r .dm_name "$KVH_OUT") == "$base_dm" ]] ||
  fail "the shared layer again: exit $KVH_RC, already_present $(jq -r .already_present "$KVH_OUT"), dm $(jq -r .dm_name "$KVH_OUT") (want $base_dm)"
add_overlay "$C2" "$V4K" "$(layer_mp base)"
[[ $KVH_RC == 0 ]] || fail "container 2's overlayfs Storage exited $KVH_RC"
check_overlay "$C2" "$V4K" "$(layer_mp base)"
read_is "$R2/hello.txt" "hello from erofs via dm-verity"
read_is "$R2/shared.txt" "shared.txt from base"
read_is "$R2/gone.txt" "gone.txt from base"
read_is "$R2/opaque/old1.txt" "old1 from base"
[[ $(tree_of "$R2") != *written.txt* ]] || fail "container 1's write shows in container 2"
guest_state
[[ $(kata_dms | wc -l) == 4 && $(ctl mountinfo "$(layer_mp base)" | grep -c .) == 1 ]] ||
  fail "want 4 dm devices and one mount of the shared layer: $(tr '\n' ';' <"$TMP/state")"

say "--- container 1 goes, upstream order: its volumes, then its overlay"
for n in top mid base; do
  kvh remove --json --mount-point "$(layer_mp "$n")"
  [[ $KVH_RC == 0 ]] || fail "remove of the $n layer exited $KVH_RC"
  [[ -n $(ctl mountinfo "$(layer_mp "$n")") ]] || fail "the $n layer went from under container 1's rootfs"
done
read_is "$R1/written.txt" "by-$C1"
read_is "$R1/data/c.txt" "c from mid"
list_json
# Each add is one claim, as the agent counts storages: the base layer was added twice (once per
# container), so container 1's removal gives back its claim and container 2's still holds it.
[[ $(listed .mount_point | sort) == "$(printf '%s\n' "$R1" "$R2" "$V4K" "$(layer_mp base)" | sort)" ]] ||
  fail "listed after the layers' removal: $(listed .mount_point | tr '\n' ' ')"
kvh remove --json --mount-point "$R1"
[[ $KVH_RC == 0 ]] || fail "remove of container 1's rootfs exited $KVH_RC"
[[ -z $(ctl mountinfo "$R1") ]] || fail "$R1 is still mounted"
for n in top mid; do
  [[ -z $(ctl mountinfo "$(layer_mp "$n")") ]] || fail "the $n layer is still mounted after container 1 went"
done
[[ -n $(ctl mountinfo "$(layer_mp base)") ]] || fail "the shared base layer went with container 1"
read_is "$R2/base.txt" "base layer"
guest_state
[[ $(kata_dms | wc -l) == 2 && $(kata_nodes | wc -l) == 2 ]] || fail "want 2 dm devices and nodes left (base, verity4k): $(tr '\n' ';' <"$TMP/state")"
! ctl tree "$VV_DIR/containers/$C1" >/dev/null || fail "container 1's upper and work directories are still there"

say "--- container 2 goes, in the reverse order: its overlay, then its volumes"
kvh remove --json --mount-point "$R2"
[[ $KVH_RC == 0 ]] || fail "remove of container 2's rootfs exited $KVH_RC"
[[ -z $(ctl mountinfo "$R2") ]] || fail "$R2 is still mounted"
[[ -n $(ctl mountinfo "$(layer_mp base)") ]] || fail "the base layer went with the rootfs before container 2's own removal of it"
[[ -n $(ctl mountinfo "$V4K") ]] || fail "verity4k went with the rootfs before its own removal"
kvh remove --json --mount-point "$V4K"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "remove of verity4k: exit $KVH_RC"
kvh remove --json --mount-point "$(layer_mp base)"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] ||
  fail "remove of the base layer, its last claim: exit $KVH_RC, removed $(jq -r .removed "$KVH_OUT") (want true)"
[[ -z $(ctl mountinfo "$(layer_mp base)") ]] || fail "the base layer is still mounted after its last claim went"
kvh remove --json --mount-point "$(layer_mp base)"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == false ]] ||
  fail "a further remove of the base layer: exit $KVH_RC, removed $(jq -r .removed "$KVH_OUT") (want false)"
list_json
[[ -z $(listed .mount_point) ]] || fail "the daemon lists $(listed .mount_point | tr '\n' ' ')"
expect_clean "after"
expect_root_as "after" "$root_before"
say "ok"
