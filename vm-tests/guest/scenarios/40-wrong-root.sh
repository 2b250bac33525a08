# A root hash that does not match the disk: the request fails cleanly (exit 1, "error:"),
# and nothing is left behind: no dm device, no /dev/mapper node, no mount. Then the right
# root hash on the same disk and mount point works: the failure was the hash, and the failed
# attempt left nothing in the way (a leaked device or name would block this retry).
MP=$MOUNT_ROOT/vmtest-wrong-root
trap '$KV umount "$MP" >/dev/null 2>&1' EXIT

dm_before=$(all_dm | tr '\n' ' ')
nodes_before=$(ls /dev/mapper | grep '^kata-volume-' | tr '\n' ' ')
kv mount --json "$OPT_WRONG" --device "$TARFS512_DISK" "$MP"
[ "$KV_RC" = 1 ] || fail "mount with a wrong root hash exited $KV_RC, want 1"
grep -q '^error: ' "$KV_ERR" || fail "no 'error: …' line on stderr"
# The error says what happened (the image does not match the root hash), naming the hash and
# the device, not a bare "Input/output error".
grep -q "does not match root hash $ROOT_WRONG" "$KV_ERR" ||
  fail "the error does not name the mismatch and the root hash: $(cat "$KV_ERR")"
grep -q "$TARFS512_DISK" "$KV_ERR" || fail "the error does not name the device: $(cat "$KV_ERR")"
[ "$(all_dm | tr '\n' ' ')" = "$dm_before" ] || fail "dm devices before: '$dm_before', after: '$(all_dm | tr '\n' ' ')'"
[ "$(ls /dev/mapper | grep '^kata-volume-' | tr '\n' ' ')" = "$nodes_before" ] ||
  fail "a /dev/mapper/kata-volume-* node was left behind: $(ls /dev/mapper | tr '\n' ' ')"
[ -z "$(mounts_at "$MP")" ] || fail "$MP is mounted after a failed request"

say "control: the right root hash, same disk, same mount point"
kv_mount "$OPT_512" "$TARFS512_DISK" "$MP"
check_verity_mount "$MP" "$TARFS512_DISK" "$TABLE_512"
name=$(json_field dm_name)
kv_umount "$MP"
check_gone "$MP" "$name"
say "ok"
