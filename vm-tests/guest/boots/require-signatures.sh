# A boot of its own (vmtest.mode=require-signatures, lib/boots.sh): dm-verity loaded with the
# module parameter require_signatures=1, as a guest that wants the kernel to refuse any table
# without a root-hash signature. The kernel itself (dmsetup, not our binary) must refuse an
# unsigned table; `kata-volume mount` must be refused for an unsigned volume with a message
# naming the module parameter, and for a signed one with ENOKEY (the kernel trusts only
# Debian's key), both PERMISSION_DENIED's reasons, with nothing left. Prints its own verdict:
# VMTEST-PASS require-signatures or VMTEST-FAIL require-signatures: <why>.
MP=$MOUNT_ROOT/vmtest-require-signatures
SIG=io.katacontainers.volume.root_hash_sig
rm -f "$REASON_FILE"

checks() {
  local m table
  m=$(grep '^dm-verity\.' /vmtest/modules.list) || fail "dm-verity is not among the loaded modules"
  rmmod dm_verity || fail "cannot unload dm_verity"
  insmod "/lib/modules/$m" require_signatures=1 || fail "insmod $m require_signatures=1 failed"
  say "dm_verity reloaded with require_signatures=1 (parameter reads: $(cat /sys/module/dm_verity/parameters/require_signatures 2>/dev/null || echo 'not readable'))"

  # the kernel alone: dmsetup with the unsigned table of the verity4k disk
  table=$(echo "$TABLE_4K" | sed "s/DEV DEV/$(devnum "$VERITY4K_DISK") $(devnum "$VERITY4K_DISK")/")
  if dms create vmtest-unsigned --readonly --table "$table" >/tmp/dms.out 2>&1; then
    dms remove vmtest-unsigned
    fail "the kernel accepted an unsigned table with require_signatures=1"
  fi
  say "dmsetup create with the unsigned table: refused ($(tail -n 1 /tmp/dms.out))"
  dmesg | grep -i verity | tail -n 2 | sed 's/^/  dmesg: /'
  dms remove vmtest-unsigned >/dev/null 2>&1

  # our binary: the unsigned volume, then the signed one in kernel mode
  kv mount --json "$OPT_4K" --device "$VERITY4K_DISK" "$MP"
  [ "$KV_RC" = 1 ] || fail "the unsigned volume: exit $KV_RC, want 1"
  grep -q "requires root-hash signatures (dm_verity.require_signatures=1)" "$KV_ERR" ||
    fail "the unsigned volume's error does not name the module parameter: $(cat "$KV_ERR")"
  kv mount --json --kernel-signatures --driver-option "$SIG=$SIG_4K" "$OPT_4K" --device "$VERITY4K_DISK" "$MP"
  [ "$KV_RC" = 1 ] || fail "the signed volume (signer unknown to the kernel): exit $KV_RC, want 1"
  grep -q "(ENOKEY)" "$KV_ERR" || fail "the signed volume's error is not the kernel's ENOKEY: $(cat "$KV_ERR")"
  dmesg | grep -i verity | tail -n 2 | sed 's/^/  dmesg: /'
  [ -z "$(all_dm)" ] || fail "dm devices left: $(all_dm | tr '\n' ' ')"
  [ -z "$(ls /dev/mapper | grep -v '^control$')" ] || fail "nodes left: $(ls /dev/mapper | tr '\n' ' ')"
  [ -z "$(mounts_at "$MP")" ] || fail "$MP is mounted"
  [ "$(grep -c 'kata-volume:' /proc/keys)" = 0 ] || fail "signature keys left: $(grep 'kata-volume:' /proc/keys)"
  touch /tmp/require-signatures.done
}

rm -f /tmp/require-signatures.done
(checks) 2>&1 | sed 's/^/  [require-signatures] /'
if [ -e "$REASON_FILE" ]; then
  echo "VMTEST-FAIL require-signatures: $(head -n 1 "$REASON_FILE")"
elif [ ! -e /tmp/require-signatures.done ]; then
  echo "VMTEST-FAIL require-signatures: the checks stopped without a reason"
else
  echo "VMTEST-PASS require-signatures"
fi
