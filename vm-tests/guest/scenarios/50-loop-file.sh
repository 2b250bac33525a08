# A file-backed image: the tarfs image copied onto a tmpfs and given as a regular file; the
# binary attaches a read-only loop device itself and detaches it on umount.
MP=$MOUNT_ROOT/vmtest-loop-file
IMG_DIR=/run/vmtest-images
IMG=$IMG_DIR/tarfs512.img
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT

mkdir -p "$IMG_DIR"
cat "$TARFS512_DISK" >"$IMG" || fail "cannot copy $TARFS512_DISK to $IMG"
say "image file: $IMG, $(stat -c %s "$IMG") bytes"
# The CLI applies the daemon's default policy: no file sources unless allowed (even one an
# allowed-source pattern matches).
kv mount --json "$OPT_512" --device "$IMG" "$MP" --allowed-source "$IMG_DIR/*"
[ "$KV_RC" = 1 ] || fail "a file source without --allow-files exited $KV_RC, expected 1"
grep -q "file-backed volumes are not allowed" "$KV_ERR" || fail "no refusal message: $(cat "$KV_ERR")"
[ -z "$(mounts_at "$MP")" ] && [ ! -e "$MP" ] || fail "the refused mount left $MP behind"
[ -z "$(loops_in_use | awk -v f="$IMG" '$2 == f')" ] || fail "the refused mount attached a loop device"
kv_mount "$OPT_512" "$IMG" "$MP" --allow-files --allowed-source "$IMG_DIR/*"
loop=$(loops_in_use | awk -v f="$IMG" '$2 == f { print $1; exit }')
[ -n "$loop" ] || fail "no loop device backed by $IMG (in use: $(loops_in_use | tr '\n' ';'))"
say "loop device: /dev/$loop"
[ "$(cat "/sys/block/$loop/ro")" = 1 ] || fail "/dev/$loop is not read-only"
check_verity_mount "$MP" "/dev/$loop" "$TABLE_512"
name=$(json_field dm_name)
check_files "$MP"
kv_umount "$MP"
check_gone "$MP" "$name"
left=$(loops_in_use | awk -v f="$IMG" '$2 == f')
[ -z "$left" ] || fail "loop device still attached after umount: $left"
rm -f "$IMG"
say "ok"
