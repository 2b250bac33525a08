# direct_block volume: a plain erofs disk (no dm-verity), mounted ro,nodev,nosuid as it is.
MP=$MOUNT_ROOT/vmtest-direct-block
trap '$KV umount --any "$MP" >/dev/null 2>&1' EXIT

kv mount --json --allow-unverified "$OPT_PLAIN" --device "$PLAIN_DISK" "$MP"
[ "$KV_RC" = 0 ] || fail "mount exited $KV_RC: $(head -c 300 "$KV_ERR")"
[ "$(mounts_at "$MP" | wc -l)" = 1 ] || fail "$(mounts_at "$MP" | wc -l) mounts at $MP (want 1)"
line=$(mounts_at "$MP")
mm=$(echo "$line" | awk '{ print $3 }')
opts=$(echo "$line" | awk '{ print $6 }')
say "mounted: dev $mm, options $opts, dm: $(cat "/sys/dev/block/$mm/dm/name" 2>/dev/null || echo none)"
for o in ro nodev nosuid; do
  echo ",$opts," | grep -q ",$o," || fail "mount options $opts lack $o"
done
# the data must come from that disk: directly, or through a dm device that sits on it
if [ "$mm" != "$(devnum "$PLAIN_DISK")" ]; then
  ls "/sys/dev/block/$mm/slaves" 2>/dev/null | grep -qx "${PLAIN_DISK##*/}" ||
    fail "mounted device $mm is neither $PLAIN_DISK nor on top of it"
fi
check_files "$MP"
kv umount --any "$MP"
[ "$KV_RC" = 0 ] || fail "umount --any $MP exited $KV_RC: $(head -c 300 "$KV_ERR")"
[ -z "$(mounts_at "$MP")" ] || fail "$MP still mounted after umount"
say "ok"
