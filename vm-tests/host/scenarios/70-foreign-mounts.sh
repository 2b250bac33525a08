# Issue 11, item 1, on the real kernel: another party's mount (a tmpfs standing for the
# container rootfs the agent made) at vmtest-fm-c1/rootfs: an add inside it (an existing
# directory, or a new one the daemon would have to make there) or above it is refused with
# INVALID_ARGUMENT, and the foreign mount is left exactly as it was; beside it an add works.
# Then a mount of ours hidden by a mount over its parent directory: the remove fails
# honestly (the volume, its device and its entry stay), and succeeds once that mount is gone.
C1=$MOUNT_ROOT/vmtest-fm-c1
ROOTFS=$C1/rootfs
C2=$MOUNT_ROOT/vmtest-fm-c2
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")
at_exit ctl foreign-umount "$ROOTFS"
at_exit ctl foreign-umount "$C2"
at_exit ctl rmtree "$C1"

say "--- a foreign mount at $ROOTFS"
ctl foreign-mount "$ROOTFS" etc || fail "the agent could not make the foreign mount"
foreign_before=$(tree_of "$ROOTFS")
kvh add --json --source "$TARFS512_DISK" --mount-point "$ROOTFS/etc" --option "$OPT_512"
refused_with INVALID_ARGUMENT "lies inside another mount" "an add at a directory inside the foreign mount"
kvh add --json --source "$TARFS512_DISK" --mount-point "$ROOTFS/new/dir" --option "$OPT_512"
refused_with INVALID_ARGUMENT "lies inside another mount" "an add at a new directory inside the foreign mount"
kvh add --json --source "$TARFS512_DISK" --mount-point "$C1" --option "$OPT_512"
refused_with INVALID_ARGUMENT "has something mounted below it" "an add above the foreign mount"
top=$(ctl mountinfo "$ROOTFS")
[[ $(wc -l <<<"$top") == 1 && $top == *" - tmpfs vmtest-foreign "* ]] ||
  fail "the foreign mount at $ROOTFS is not as it was: $top"
[[ $(tree_of "$ROOTFS") == "$foreign_before" ]] ||
  fail "the foreign mount's content changed: $(tree_of "$ROOTFS" | tr '\n' ' ')"
guest_state
[[ -z $(all_dms) && $(our_mounts) == "$ROOTFS" ]] ||
  fail "after the refusals: dm devices '$(all_dms | tr '\n' ' ')', mounts '$(our_mounts | tr '\n' ' ')'"
list_json
[[ -z $(listed .mount_point) ]] || fail "the daemon lists $(listed .mount_point | tr '\n' ' ')"
say "refused, the foreign mount untouched"
kvh add --json --source "$TARFS512_DISK" --mount-point "$C1/layer" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "an add beside the foreign mount exited $KVH_RC"
kvh remove --mount-point "$C1/layer"
[[ $KVH_RC == 0 ]] || fail "its remove exited $KVH_RC"
ctl foreign-umount "$ROOTFS" || fail "the foreign mount could not be taken down"
ctl rmtree "$C1" || fail "cannot remove $C1"
expect_clean "after the foreign mount"

say "--- a mount of ours hidden by a mount over its parent"
kvh add --json --source "$TARFS512_DISK" --mount-point "$C2/layer" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "add at $C2/layer exited $KVH_RC"
name=$(jq -r .dm_name "$KVH_OUT")
# the covering tmpfs has a layer/ of its own: the path resolves there, and unmounting it
# says EINVAL ("not a mount point") while the mount table still lists ours
ctl foreign-mount "$C2" layer || fail "the agent could not mount over $C2"
kvh remove --mount-point "$C2/layer"
refused_with INTERNAL "hides it" "the remove of a hidden mount"
guest_state
[[ $(kata_dms) == "$name" && $(kata_nodes) == "$name" ]] ||
  fail "after the refused remove: dm devices '$(kata_dms | tr '\n' ' ')', nodes '$(kata_nodes | tr '\n' ' ')', want $name"
[[ $(ctl mountinfo "$C2/layer") == *" - erofs /dev/mapper/$name "* ]] ||
  fail "our mount at $C2/layer is no longer in the mount table: $(ctl mountinfo "$C2/layer")"
list_json
[[ $(listed .mount_point) == "$C2/layer" ]] ||
  fail "after the refused remove the daemon lists '$(listed .mount_point | tr '\n' ' ')', want $C2/layer"
say "the volume, its device and its entry stay"
ctl foreign-umount "$C2" || fail "the covering mount could not be taken down"
kvh remove --json --mount-point "$C2/layer"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "the remove after the cover went: exit $KVH_RC"
expect_clean "after"
expect_root_as "after" "$root_before"
say "ok"
