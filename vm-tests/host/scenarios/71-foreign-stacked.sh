# Issue 11, item 2, on the real kernel: another party's mount stacked on a mount of ours.
# RemoveStorage never unmounts it: refused with ALREADY_EXISTS naming the other mount, both
# mounts stay, as do our dm device, its node and the daemon's entry (listed); once the other
# mount is gone, the remove takes ours down and leaves nothing. The same for a container
# rootfs (an overlay over a verified layer) under another party's mount.
MP=$MOUNT_ROOT/vmtest-stack/layer
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")
at_exit ctl foreign-umount "$MP"
kvh add --json --source "$TARFS512_DISK" --mount-point "$MP" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "add exited $KVH_RC"
name=$(jq -r .dm_name "$KVH_OUT")
ctl foreign-mount "$MP" || fail "the agent could not mount over $MP"
kvh remove --mount-point "$MP"
refused_with ALREADY_EXISTS "holds another mount on top of ours (vmtest-foreign, tmpfs)" "the remove under a foreign mount"
mounts=$(ctl mountinfo "$MP")
say "at $MP: $(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") print $(i + 1), $(i + 2) }' <<<"$mounts" | tr '\n' ';')"
[[ $(wc -l <<<"$mounts") == 2 && $(head -n 1 <<<"$mounts") == *" - erofs /dev/mapper/$name "* &&
  $(tail -n 1 <<<"$mounts") == *" - tmpfs vmtest-foreign "* ]] || fail "the two mounts at $MP are not both there: $mounts"
read_is "$MP/.foreign" foreign
guest_state
[[ $(kata_dms) == "$name" && $(kata_nodes) == "$name" ]] ||
  fail "dm devices '$(kata_dms | tr '\n' ' ')', nodes '$(kata_nodes | tr '\n' ' ')', want $name"
list_json
[[ $(listed .mount_point) == "$MP" ]] || fail "after the refused remove the daemon lists '$(listed .mount_point | tr '\n' ' ')', want $MP"
ctl foreign-umount "$MP" || fail "the foreign mount could not be taken down"
read_is "$MP/hello.txt" "hello from erofs via dm-verity"
kvh remove --json --mount-point "$MP"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "the remove after the foreign mount went: exit $KVH_RC"
expect_clean "after the volume"

say "--- the same on a container rootfs (an overlay over the base layer)"
ROOTFS=$MOUNT_ROOT/vmtest-stack-c/rootfs
at_exit ctl foreign-umount "$ROOTFS"
add_dmverity "$OPT_LAYER_base" virtio_pci "$(slot_of layer-base)" "$(layer_mp base)"
[[ $KVH_RC == 0 ]] || fail "the base layer's add exited $KVH_RC"
add_overlay vmtest-stack-c "$(layer_mp base)"
[[ $KVH_RC == 0 ]] || fail "the rootfs's add exited $KVH_RC"
ctl foreign-mount "$ROOTFS" || fail "the agent could not mount over $ROOTFS"
kvh remove --mount-point "$ROOTFS"
refused_with ALREADY_EXISTS "holds another mount on top of ours (vmtest-foreign, tmpfs)" "the rootfs's remove under a foreign mount"
mounts=$(ctl mountinfo "$ROOTFS")
[[ $(wc -l <<<"$mounts") == 2 && $(head -n 1 <<<"$mounts") == *" - overlay overlay "* ]] ||
  fail "the overlay and the foreign mount at $ROOTFS are not both there: $mounts"
list_json
[[ $(listed .mount_point | sort) == "$(printf '%s\n' "$(layer_mp base)" "$ROOTFS" | sort)" ]] ||
  fail "after the refused remove the daemon lists '$(listed .mount_point | tr '\n' ' ')'"
ctl foreign-umount "$ROOTFS" || fail "the foreign mount could not be taken down"
read_is "$ROOTFS/base.txt" "base layer"
for mp in "$ROOTFS" "$(layer_mp base)"; do
  kvh remove --json --mount-point "$mp"
  [[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "the remove of $mp: exit $KVH_RC"
done
expect_clean "after"
expect_root_as "after" "$root_before"
say "ok"
