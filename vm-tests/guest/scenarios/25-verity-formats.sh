# The dm_verity formats beyond the seed producers' (issue 12): a salt, hash type 0 (also with
# sha1, whose digests version 0 packs back to back) and a veritysetup superblock before the
# tree. Each image is a file (loop device); the kernel must accept the table — version, salt,
# start block past the superblock — and every read must verify.
MP=$MOUNT_ROOT/vmtest-formats
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT
mkdir -p "$SMALL_DIR"

for id in $FORMAT_IDS; do
  img=$SMALL_DIR/fmt-$id.img
  cp "/vmtest/formats/$id.img" "$img" || fail "cannot copy the $id image"
  eval "opt=\$OPT_FORMAT_$id; table=\$FORMAT_TABLE_$id"
  say "-- $id: $(echo "$table" | cut -d' ' -f4,7-9,11,14)"
  kv_mount "$opt" "$img" "$MP" --allow-files --allowed-source "$SMALL_DIR/*"
  loop=$(loops_in_use | awk -v f="$img" '$2 == f { print $1; exit }')
  [ -n "$loop" ] || fail "$id: no loop device backed by $img"
  check_verity_mount "$MP" "/dev/$loop" "$table"
  name=$(json_field dm_name)
  [ "$(cat "$MP/id.txt")" = "verity formats layer" ] || fail "$id: id.txt differs"
  got=$(sha256sum <"$MP/big.txt" | cut -d' ' -f1)
  [ "$got" = "$FORMAT_FILE_SHA" ] || fail "$id: big.txt sha256 $got, want $FORMAT_FILE_SHA"
  st=$(dms status "$name")
  case "$st" in *" V") ;; *) fail "$id: status after reading everything is '$st', want V" ;; esac
  kv_umount "$MP"
  check_gone "$MP" "$name"
  rm -f "$img"
done
say "ok"
