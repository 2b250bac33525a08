# Issue 11, item 4, on the real kernel: a removal that fails after the unmount leaves an
# entry behind, which must never answer "already present" with nothing mounted. The
# teardown is made to fail for real: /dev/mapper/<name> is replaced by a non-empty directory,
# so the unmount and the dm removal succeed and the node's removal fails (EISDIR). Then the
# volume is not listed; a re-add while the obstacle stays fails (the removal cannot be
# finished) and mounts nothing; once it is gone a re-add finishes the removal and mounts for
# real (the kernel's mount table, a file read through it), and only then is a further add
# "already present".
MP=$MOUNT_ROOT/vmtest-stale/layer
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")
kvh add --json --source "$TARFS512_DISK" --mount-point "$MP" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "add exited $KVH_RC"
name=$(jq -r .dm_name "$KVH_OUT")
# a removing entry is not listed, so the driver's cleanup would not see it: finish it here
at_exit ctl node-untrap "$name"
at_exit kvh remove --mount-point "$MP"
ctl node-trap "$name" || fail "the agent could not put a directory in place of /dev/mapper/$name"
kvh remove --mount-point "$MP"
refused_with INTERNAL "Failed to remove the dm device" "the remove whose node cannot go"
guest_state
[[ -z $(ctl mountinfo "$MP") ]] || fail "the failed remove did not unmount $MP"
[[ -z $(kata_dms) ]] || fail "the failed remove left the dm devices $(kata_dms | tr '\n' ' ')"
list_json
[[ -z $(listed .mount_point) ]] || fail "a volume half torn down is listed: $(listed .mount_point | tr '\n' ' ')"
say "the removal failed after the unmount; nothing listed"

kvh add --json --source "$TARFS512_DISK" --mount-point "$MP" --option "$OPT_512"
refused_with INTERNAL "did not finish" "a re-add while the removal cannot be finished"
[[ -z $(ctl mountinfo "$MP") ]] || fail "the refused re-add mounted something at $MP"

ctl node-untrap "$name" || fail "the agent could not remove the directory"
kvh add --json --source "$TARFS512_DISK" --mount-point "$MP" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "the re-add after the obstacle went exited $KVH_RC"
[[ $(jq -r .already_present "$KVH_OUT") == false ]] || fail "the re-add answered already_present with nothing mounted"
on_dm_over "$MP" "$name" "$TARFS512_DISK"
read_is "$MP/hello.txt" "hello from erofs via dm-verity"
list_json
[[ $(listed .mount_point) == "$MP" ]] || fail "the daemon lists '$(listed .mount_point | tr '\n' ' ')', want $MP"
kvh add --json --source "$TARFS512_DISK" --mount-point "$MP" --option "$OPT_512"
[[ $KVH_RC == 0 && $(jq -r .already_present "$KVH_OUT") == true ]] || fail "the same add again: exit $KVH_RC, not already_present"
# two adds are two claims (as the agent counts storages): two removes
kvh remove --mount-point "$MP"
[[ $KVH_RC == 0 ]] || fail "remove exited $KVH_RC"
[[ $(listed .mount_point) == "$MP" ]] || fail "the first of two removes took the volume down"
kvh remove --mount-point "$MP"
[[ $KVH_RC == 0 ]] || fail "the second remove exited $KVH_RC"
expect_clean "after"
expect_root_as "after" "$root_before"
say "ok"
