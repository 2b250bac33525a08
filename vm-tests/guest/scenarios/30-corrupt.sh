# One flipped byte inside big/seq.txt: the mount works, intact files read fine, the corrupted
# file gives EIO, the kernel logs the corrupted data block and the status turns to C.
MP=$MOUNT_ROOT/vmtest-corrupt
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT

dmesg -c >/dev/null
kv_mount "$OPT_512" "$CORRUPT_DISK" "$MP"
check_verity_mount "$MP" "$CORRUPT_DISK" "$TABLE_512"
name=$(json_field dm_name)
[ "$(cat "$MP/$INTACT_FILE")" = "hello from erofs via dm-verity" ] || fail "intact file $INTACT_FILE unreadable"
if cat "$MP/$CORRUPT_FILE" >/dev/null 2>/tmp/read.err; then
  fail "read of the corrupted $CORRUPT_FILE succeeded"
fi
say "read error: $(cat /tmp/read.err)"
grep -qE 'I/O error|Input/output error' /tmp/read.err || fail "read failed, but not with an I/O error: $(cat /tmp/read.err)"
dmesg | grep 'verity.*corrupted' | head -n 3 | sed 's/^/kernel: /'
dmesg | grep -q "verity.*data block $CORRUPT_BLOCK is corrupted" ||
  fail "kernel log does not report data block $CORRUPT_BLOCK as corrupted"
st=$(dms status "$name")
say "status: $st"
[ "${st##* }" = C ] || fail "status does not end with C after the corruption: $st"
kv_umount "$MP"
check_gone "$MP" "$name"
say "ok"
