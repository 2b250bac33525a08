# 4 KiB data and hash blocks, tree in the same disk. The option comes on stdin ("-").
MP=$MOUNT_ROOT/vmtest-verity-4k
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT

echo "\$ echo \$OPT_4K | $KV mount --json - --device $VERITY4K_DISK $MP"
KV_RC=0
echo "$OPT_4K" | "$KV" mount --json - --device "$VERITY4K_DISK" "$MP" >"$KV_OUT" 2>"$KV_ERR" || KV_RC=$?
sed 's/^/  out: /' "$KV_OUT"
sed 's/^/  err: /' "$KV_ERR"
[ "$KV_RC" = 0 ] || fail "mount with the option on stdin exited $KV_RC: $(head -c 300 "$KV_ERR")"
check_verity_mount "$MP" "$VERITY4K_DISK" "$TABLE_4K"
name=$(json_field dm_name)
check_files "$MP"
kv_umount "$MP"
check_gone "$MP" "$name"
say "ok"
