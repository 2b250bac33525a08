# CheckStorage: a good volume reads V before and after a full read of every block; the
# corrupted disk (same root hash, one flipped byte) reads V until the full read, which fails
# with the read error and turns the status to C, as the kernel's own status says.
GOOD=$MOUNT_ROOT/vmtest-check-good
BAD=$MOUNT_ROOT/vmtest-check-bad
expect_clean "before"
kvh add --json --source "$TARFS512_DISK" --mount-point "$GOOD" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "add of the good volume exited $KVH_RC"
kvh add --json --source "$CORRUPT_DISK" --mount-point "$BAD" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "add of the corrupted disk exited $KVH_RC (the mount itself must work)"
bad_dm=$(jq -r .dm_name "$KVH_OUT")

kvh check --json --mount-point "$GOOD"
[[ $KVH_RC == 0 && $(jq -r .status "$KVH_OUT") == V ]] || fail "check of the good volume: exit $KVH_RC, status $(jq -r .status "$KVH_OUT")"
kvh check --full --json --mount-point "$GOOD"
[[ $KVH_RC == 0 && $(jq -r .status "$KVH_OUT") == V ]] || fail "check --full of the good volume: exit $KVH_RC, status $(jq -r .status "$KVH_OUT")"
[[ $(jq -r .bytes_read "$KVH_OUT") == "$DATA_SIZE" ]] || fail "check --full read $(jq -r .bytes_read "$KVH_OUT") bytes, the volume has $DATA_SIZE"
[[ $(jq -r .read_error "$KVH_OUT") == null ]] || fail "check --full of the good volume reports a read error"

kvh check --json --mount-point "$BAD"
[[ $KVH_RC == 0 && $(jq -r .status "$KVH_OUT") == V ]] || fail "check of the corrupted disk before any read: exit $KVH_RC, status $(jq -r .status "$KVH_OUT") (want V: nothing read yet)"
kvh check --full --json --mount-point "$BAD"
[[ $KVH_RC == 1 ]] || fail "check --full of the corrupted disk exited $KVH_RC, want 1"
[[ $(jq -r .status "$KVH_OUT") == C ]] || fail "check --full of the corrupted disk: status $(jq -r .status "$KVH_OUT"), want C"
err=$(jq -r .read_error "$KVH_OUT")
grep -qiE 'input/output error|I/O error|EIO' <<<"$err" || fail "the read error '$err' is not an I/O error"
grep -q '^error: ' "$KVH_ERR" || fail "no 'error: …' line on stderr"
st_bad=$(ctl dm-status "$bad_dm") || fail "dmsetup status $bad_dm failed in the guest"
say "kernel: $st_bad"
[[ ${st_bad##* } == C ]] || fail "the kernel's status of $bad_dm is '$st_bad', want C at the end"
kvh check --json --mount-point "$GOOD"
[[ $(jq -r .status "$KVH_OUT") == V ]] || fail "the good volume's status changed to $(jq -r .status "$KVH_OUT")"

kvh remove --mount-point "$GOOD"
kvh remove --mount-point "$BAD"
expect_clean "after the removes"
say "ok"
