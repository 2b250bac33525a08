# tarfs layout: 512-byte data blocks, 4 KiB hash blocks, hash tree in the same disk after the
# data. Mount, check what the kernel built, read every file, unmount.
MP=$MOUNT_ROOT/vmtest-tarfs-512
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT

t0=$(now)
kv_mount "$OPT_512" "$TARFS512_DISK" "$MP"
metric mount_request_s "$(since "$t0")"
say "request to mounted: $(since "$t0") s"
check_verity_mount "$MP" "$TARFS512_DISK" "$TABLE_512"
name=$(json_field dm_name)
check_files "$MP"
kv_umount "$MP"
check_gone "$MP" "$name"
say "ok"
