# Different layers in parallel: 16 small layers (files on a tmpfs, so each needs its own
# loop device) added at once give 16 dm devices, 16 mounts with the right content and 16
# loop devices; removing them all at once leaves nothing.
N=16
expect_clean "before"
for i in $(seq -f %02g 1 $N); do
  spawn "add$i" add --json --source "$SMALL_DIR/$i.img" --mount-point "$MOUNT_ROOT/vmtest-par-$i" --option "$(small_opt "$i")"
done
batch_wait
((BATCH_OK == N)) || fail "$BATCH_FAILED of $N parallel adds failed"

list_json
[[ $(listed .mount_point | wc -l) == "$N" ]] || fail "the daemon lists $(listed .mount_point | wc -l) volumes, want $N"
[[ $(listed .dm_name | sort -u | wc -l) == "$N" ]] || fail "$(listed .dm_name | sort -u | wc -l) distinct dm names listed, want $N"
[[ $(listed .refcount | sort -u) == 1 ]] || fail "refcounts $(listed .refcount | sort -u | tr '\n' ' '), want 1 everywhere"
[[ $(listed .root_hash | sort) == "$(for i in $(seq -f %02g 1 $N); do v=SMALL_ROOT_$i; echo "${!v}"; done | sort)" ]] ||
  fail "the listed root hashes are not the $N layers' ones"

guest_state
say "kernel: $(all_dms | wc -l) dm devices, $(our_mounts | wc -l) mounts, $(small_loops | wc -l) loop devices on the layers"
[[ $(all_dms) == "$(listed .dm_name | sort)" ]] || fail "dm devices in the kernel ($(all_dms | tr '\n' ' ')) differ from the listed ones"
[[ $(kata_nodes) == "$(all_dms)" ]] || fail "/dev/mapper nodes ($(kata_nodes | tr '\n' ' ')) differ from the dm devices"
[[ $(our_mounts) == "$(listed .mount_point | sort)" ]] || fail "mounted: $(our_mounts | tr '\n' ' ')"
[[ $(small_loops) == "$(for i in $(seq -f %02g 1 $N); do echo "$SMALL_DIR/$i.img"; done)" ]] ||
  fail "loop devices on: $(small_loops | tr '\n' ' '), want one per layer"
[[ $(st mount | awk '{ print $2 }' | sort -u | wc -l) == "$N" ]] || fail "the $N mounts do not sit on $N devices"
ids=$(ctl ids) || fail "the agent did not answer 'ids'"
bad=$(awk '{ n = $1; sub(/.*vmtest-par-/, "", n); if ($0 !~ (" small layer " n "$")) print }' <<<"$ids")
[[ -z $bad ]] || fail "wrong content under: $bad"
say "each mount shows its own layer's id.txt"

for i in $(seq -f %02g 1 $N); do
  spawn "rm$i" remove --mount-point "$MOUNT_ROOT/vmtest-par-$i"
done
batch_wait
((BATCH_OK == N)) || fail "$BATCH_FAILED of $N parallel removes failed"
list_json
[[ -z $(listed .mount_point) ]] || fail "still listed after the removes: $(listed .mount_point | tr '\n' ' ')"
expect_clean "after the removes"
say "ok"
