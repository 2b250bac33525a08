# Mount several volumes (dm-verity on disks, file-backed via loop, direct), then unmount
# everything under the mount root - including anything earlier scenarios left - and check
# that nothing is left: no kata dm device or node, no mount, no loop device of ours.
IMG_DIR=/run/vmtest-images
mkdir -p "$IMG_DIR"
cat "$VERITY4K_DISK" >"$IMG_DIR/verity4k.img" || fail "cannot copy the 4k image"
kv_mount "$OPT_512" "$TARFS512_DISK" "$MOUNT_ROOT/vmtest-teardown-a"
kv_mount "$OPT_4K" "$VERITY4K_DISK" "$MOUNT_ROOT/vmtest-teardown-b"
kv_mount "$OPT_4K" "$IMG_DIR/verity4k.img" "$MOUNT_ROOT/vmtest-teardown-c" \
  --allow-files --allowed-source "$IMG_DIR/*"
kv_mount "$OPT_PLAIN" "$PLAIN_DISK" "$MOUNT_ROOT/vmtest-teardown-d" --allow-unverified
say "kata dm devices: $(kata_dm_names | tr '\n' ';')"
say "loop devices: $(loops_in_use | tr '\n' ';')"

# a mount that is not on one of our dm devices is left alone without --any: a direct volume,
# and another tool's mount
for mp in "$MOUNT_ROOT/vmtest-teardown-d" /proc; do
  kv umount "$mp"
  [ "$KV_RC" = 1 ] || fail "umount $mp without --any exited $KV_RC, expected 1"
  grep -q "left alone" "$KV_ERR" || fail "umount $mp: no refusal message"
  [ -n "$(mounts_at "$mp")" ] || fail "umount $mp without --any unmounted it"
done

# every mount point the suite may have used, plus whatever is mounted under the root
for mp in $( (ls -d "$MOUNT_ROOT"/vmtest-*/ 2>/dev/null | sed 's:/$::'; mounts_under "$MOUNT_ROOT" | awk '{ print $5 }') | sort -u); do
  kv umount --any "$mp"
  [ "$KV_RC" = 0 ] || fail "umount --any $mp exited $KV_RC: $(head -c 300 "$KV_ERR")"
done
kv_umount "$MOUNT_ROOT/vmtest-never-mounted"

left=$(kata_dm_names)
[ -z "$left" ] || fail "kata dm devices left: $(echo "$left" | tr '\n' ';')"
left=$(ls /dev/mapper | grep '^kata-volume-')
[ -z "$left" ] || fail "/dev/mapper nodes left: $(echo "$left" | tr '\n' ' ')"
left=$(mounts_under "$MOUNT_ROOT" | awk '{ print $5 }')
[ -z "$left" ] || fail "still mounted: $(echo "$left" | tr '\n' ' ')"
left=$(loops_in_use | grep " $IMG_DIR/")
[ -z "$left" ] || fail "loop devices still attached: $(echo "$left" | tr '\n' ';')"
rm -f "$IMG_DIR/verity4k.img"
say "ok"
