# The same request twice (same volume, same mount point): the second succeeds and changes
# nothing (one dm device, one mount). Two umounts (the second finds nothing) leave nothing.
MP=$MOUNT_ROOT/vmtest-idempotent
trap '$KV umount "$MP" >/dev/null 2>&1; $KV umount "$MP" >/dev/null 2>&1' EXIT

before=$(kata_dm_names | wc -l)
kv_mount "$OPT_4K" "$VERITY4K_DISK" "$MP"
check_verity_mount "$MP" "$VERITY4K_DISK" "$TABLE_4K"
name=$(json_field dm_name)
kv_mount "$OPT_4K" "$VERITY4K_DISK" "$MP"
after=$(kata_dm_names | wc -l)
[ "$after" = $((before + 1)) ] || fail "$((after - before)) new kata dm devices after two requests (want 1): $(kata_dm_names | tr '\n' ';')"
[ "$(mounts_at "$MP" | wc -l)" = 1 ] || fail "$(mounts_at "$MP" | wc -l) mounts at $MP after two requests"
check_verity_mount "$MP" "$VERITY4K_DISK" "$TABLE_4K"
[ "$(json_field dm_name)" = "$name" ] || fail "second request names dm device '$(json_field dm_name)', first '$name'"
kv_umount "$MP"
kv_umount "$MP"
check_gone "$MP" "$name"
say "ok"
