# A hostile host against the real daemon, restarted with a broad policy (sources /dev/*,
# /proc/*, the layer folder; files allowed; only the tarfs root hash trusted), so that what
# refuses is the check behind the patterns: the device type, the file kind, the confinement
# of the mount point, verification, trust, the mount flags, the decoder, the limits. Each
# request must get exit 1 with an `error:` line and the expected status code (every case runs;
# the failed ones are listed at the end, an accepted one is removed again); afterwards the
# same daemon still serves and the kernel has no dm device, node, mount or loop device, and
# the daemon no volume, that were not there before. A control request then works, and a
# conflicting one at its mount point is refused.
OK_MP=$MOUNT_ROOT/vmtest-hostile-ok
DEV=$TARFS512_DISK
J512=$(base64 -d <<<"${OPT_512#io.katacontainers.volume=}")
opt_of() { printf 'io.katacontainers.volume=%s' "$(printf '%s' "$1" | base64 -w0)"; }
with() { opt_of "$(jq -c "$1" <<<"$J512")"; } # OPT_512 with a jq edit of its JSON
CASES=0
BAD=()
# refused NAME CODE ADD_ARGS…: the add must be refused with exactly CODE (one per case: a
# refusal for another reason than the one the case is about would hide a hole)
refused() {
  local name=$1 want=$2 code mp a prev=
  shift 2
  say "--- case $name"
  CASES=$((CASES + 1))
  kvh add "$@"
  code=$(sed -n 's/^error: .*(\([A-Z_]*\))$/\1/p' "$KVH_ERR" | head -n 1)
  if [[ $KVH_RC == 0 ]]; then
    BAD+=("$name: accepted")
    for a in "$@"; do [[ $prev == --mount-point ]] && mp=$a; prev=$a; done
    guest_state
    say "FAILED: accepted ($(st mount | awk -v m="$mp" '$1 == m { print $3, $4 }')); removing it again"
    kvh remove --mount-point "$mp"
  elif [[ $KVH_RC != 1 ]] || ! grep -q '^error: ' "$KVH_ERR"; then
    BAD+=("$name: exit $KVH_RC")
  elif [[ $code != "$want" ]]; then
    BAD+=("$name: ${code:-no status}, want $want")
    say "FAILED: ${code:-no status}, want $want"
  fi
}
# the kernel's and the daemon's view, without the daemon's pid
snapshot() { guest_state && grep -v '^daemon ' "$TMP/state" && list_json && listed .mount_point; }

setup=$(ctl hostile-setup) || fail "the agent could not set up the traps"
# pass or fail, the traps go and the main daemon comes back (both idempotent), so a failure
# here does not spill into the scenarios after it
at_exit ctl hostile-cleanup
at_exit ctl daemon-start main
# the /dev/mem cases (the source and the symlink to it) must run, not drop out
[[ $setup == *"has /dev/mem"* ]] || fail "the guest has no /dev/mem character device: $setup"
say "traps: $MOUNT_ROOT/vmtest-evil -> /etc, a tmpfs at $MOUNT_ROOT/vmtest-foreign, $SMALL_DIR/a-directory, $SMALL_DIR/mem-link.img -> /dev/mem ($setup)"
ctl daemon-start hostile | sed 's/^/agent: /'
((PIPESTATUS[0] == 0)) || fail "the daemon did not start with the hostile profile"
guest_state
pid=$(daemon_pid)
before=$(snapshot)

# the mount point: traversal, outside the root, symlink escapes, someone else's mount
refused traversal INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/../../etc" --option "$OPT_512"
refused traversal-inner INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-a/../../../tmp/x" --option "$OPT_512"
refused outside-root PERMISSION_DENIED --source "$DEV" --mount-point /etc/vmtest --option "$OPT_512"
refused the-root-itself PERMISSION_DENIED --source "$DEV" --mount-point "$MOUNT_ROOT" --option "$OPT_512"
refused symlink-escape INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-evil/x" --option "$OPT_512"
refused symlink-mount-point INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-evil" --option "$OPT_512"
refused foreign-mount ALREADY_EXISTS --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-foreign" --option "$OPT_512"
# the source: character devices, a kernel file, a directory, a symlink to a device
refused dev-null INVALID_ARGUMENT --source /dev/null --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512"
refused dev-mem INVALID_ARGUMENT --source /dev/mem --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512"
refused proc-kcore INVALID_ARGUMENT --source /proc/kcore --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512"
refused directory INVALID_ARGUMENT --source "$SMALL_DIR/a-directory" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512"
refused symlink-to-mem INVALID_ARGUMENT --source "$SMALL_DIR/mem-link.img" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512"
# the volume: unverified, untrusted, mount flags
refused unverified PERMISSION_DENIED --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$(with 'del(.dm_verity)')"
refused untrusted-root PERMISSION_DENIED --source "$VERITY4K_DISK" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_4K"
for o in rw exec dev suid; do
  refused "option-$o" PERMISSION_DENIED --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$(with ".options = [\"$o\"]")"
done
# the encoding: not base64, not JSON, too deep, too big, none or two volume options
refused bad-base64 INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option 'io.katacontainers.volume=%%not*base64%%'
refused not-json INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$(opt_of '{"volume_type": "layer_raw_block", ')"
refused deep-json INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" \
  --option "$(opt_of "$(jq -c '.' <<<"$J512" | sed "s/}\$/,\"x\":$(printf '[%.0s' {1..5000})$(printf ']%.0s' {1..5000})}/")")"
opt_of "$(jq -c ".padding = \"$(head -c 100000 /dev/zero | tr '\0' x)\"" <<<"$J512")" >"$TMP/big.option"
KVH_STDIN=$TMP/big.option refused oversized PERMISSION_DENIED \
  --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option -
refused no-volume-option INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option ro
refused two-volume-options INVALID_ARGUMENT --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512" --option "$OPT_512"
# mount flags as the Storage's own options, next to the volume option
refused storage-option-rw PERMISSION_DENIED --source "$DEV" --mount-point "$MOUNT_ROOT/vmtest-h1" --option "$OPT_512" --option rw

say "$CASES hostile requests, $((CASES - ${#BAD[@]})) refused as expected"
kvh version
[[ $KVH_RC == 0 ]] || fail "the daemon does not answer after the hostile requests"
after=$(snapshot)
[[ $(daemon_pid) == "$pid" ]] || fail "the daemon $pid is gone (now: '$(daemon_pid)')"
[[ $after == "$before" ]] || fail "the system changed: before: $(tr '\n' ';' <<<"$before") after: $(tr '\n' ';' <<<"$after")"
say "daemon $pid still serving; no dm device, node, mount, loop device or volume appeared"

say "--- control: the trusted volume works; a different volume at its mount point is a conflict"
kvh add --json --source "$DEV" --mount-point "$OK_MP" --option "$OPT_512"
[[ $KVH_RC == 0 ]] || fail "the control request exited $KVH_RC"
refused conflict ALREADY_EXISTS --source "$CORRUPT_DISK" --mount-point "$OK_MP" --option "$OPT_512"
kvh add --json --source "$DEV" --mount-point "$OK_MP" --option "$OPT_512"
[[ $KVH_RC == 0 && $(jq -r .already_present "$KVH_OUT") == true ]] || fail "the same request again: exit $KVH_RC, not already_present"
[[ $(jq -r .refcount "$KVH_OUT") == 2 ]] || fail "two adds are two claims: refcount $(jq -r .refcount "$KVH_OUT")"
# each add is one claim (as the agent counts storages): the first remove gives one back
kvh remove --mount-point "$OK_MP"
[[ $KVH_RC == 0 ]] || fail "remove exited $KVH_RC"
[[ $(snapshot) != "$before" ]] || fail "the first of two removes took the volume down"
kvh remove --mount-point "$OK_MP"
[[ $KVH_RC == 0 ]] || fail "the second remove exited $KVH_RC"
[[ $(snapshot) == "$before" ]] || fail "after the control: $(snapshot | tr '\n' ';')"

ctl hostile-cleanup >/dev/null
ctl daemon-start main | sed 's/^/agent: /'
((${#BAD[@]} == 0)) || fail "${#BAD[@]} of $CASES hostile requests not refused as expected: $(printf '%s; ' "${BAD[@]}" | sed 's/; $//')"
say "ok: $CASES hostile requests refused"
