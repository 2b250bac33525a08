# Who vouches for a root hash (issue 13), on the stock Debian kernel, through a daemon of this
# scenario's own (a unix socket, its own state folder; every volume removed and the daemon
# stopped at the end) restarted with each policy, and through the CLI:
#  1. allowlist: a verified-layers.toml listing the tarfs layer (required). The daemon logs the
#     file's sha256; the listed layer mounts (the kernel's table is the expected one, status
#     V); the verity4k layer is refused with PERMISSION_DENIED, naming the allowlist, and
#     nothing new appears in the kernel. The CLI's mount under the same allowlist reports the
#     table it read back, equal to the kernel's.
#  2. the same list inside an initdata document (sha512): its digest is logged (= sha512sum),
#     and it admits the verity4k layer, not the tarfs one.
#  3. userspace signatures (the signer trusted, signatures required): the verity4k layer with
#     its signature mounts; unsigned, or with the tarfs layer's signature, it is refused; the
#     verity4k layer's own request and signature sent with the tarfs disk (the host swapped
#     disks) passes the allowlist and the signature, and dm-verity refuses the data.
#  4. kernel signatures, no signer in userspace: the kernel trusts only Debian's key, so the
#     layer's valid signature is refused with ENOKEY, and the tarfs layer's signature (the
#     certificate embedded) sent with the verity4k layer with EKEYREJECTED — both
#     PERMISSION_DENIED, with no dm device, node, mount or signature key left.
SOCK=unix:///run/kv-trust.sock
STATE=/run/kata-volume-trust
T=/tmp/trust
MP=$MOUNT_ROOT/vmtest-trust
SIG=io.katacontainers.volume.root_hash_sig
mkdir -p "$T"

daemon_down() {
  local p i=0
  p=$(cat "$T/pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null
  while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  rm -f "$T/pid"
}
# daemon_up FLAGS…: the daemon restarted with these policy flags, serving
daemon_up() {
  daemon_down
  "$KV" serve --listen "$SOCK" --state-dir "$STATE" --log-format json "$@" </dev/null >"$T/daemon.log" 2>&1 &
  echo $! >"$T/pid"
  "$KV" version --addr "$SOCK" --retry-for 20 >/dev/null 2>&1 ||
    fail "the daemon did not start with $*: $(tail -n 3 "$T/daemon.log")"
}
cleanup() {
  "$KV" remove --addr "$SOCK" --mount-point "$MP-a" >/dev/null 2>&1
  "$KV" remove --addr "$SOCK" --mount-point "$MP-b" >/dev/null 2>&1
  daemon_down
  "$KV" umount "$MP-cli" >/dev/null 2>&1
  rm -rf "$STATE"
}
trap cleanup EXIT

keys() { grep -c 'kata-volume:' /proc/keys 2>/dev/null || true; }
nodes() { ls /dev/mapper | grep '^kata-volume-' | tr '\n' ' '; }
DM0=$(all_dm | tr '\n' ' ') NODES0=$(nodes)
# clean WHEN: no dm device or node more than at the start, nothing mounted under MP*, no
# signature key in any keyring
clean() {
  [ "$(all_dm | tr '\n' ' ')" = "$DM0" ] || fail "$1: dm devices: $(all_dm | tr '\n' ' '), at the start: $DM0"
  [ "$(nodes)" = "$NODES0" ] || fail "$1: nodes: $(nodes), at the start: $NODES0"
  [ -z "$(mounts_under "$MOUNT_ROOT" | awk -v p="$MP" 'index($5, p) == 1')" ] || fail "$1: still mounted under $MP*"
  [ "$(keys)" = 0 ] || fail "$1: signature keys left: $(grep 'kata-volume:' /proc/keys)"
}
# add MOUNT_POINT DISK OPTION [SIGNATURE]: the daemon's add, --json
add() {
  if [ -n "${4:-}" ]; then
    kv add --addr "$SOCK" --json --source "$2" --mount-point "$1" --option "$3" --driver-option "$SIG=$4"
  else
    kv add --addr "$SOCK" --json --source "$2" --mount-point "$1" --option "$3"
  fi
}
# refused WHY-PATTERN ADD-ARGS…: exit 1, PERMISSION_DENIED, the message matching, nothing left
refused() {
  local why=$1
  shift
  add "$@"
  [ "$KV_RC" = 1 ] || fail "add $1 exited $KV_RC, want 1 ($why)"
  grep -q '(PERMISSION_DENIED)$' "$KV_ERR" || fail "not PERMISSION_DENIED: $(cat "$KV_ERR")"
  grep -q "$why" "$KV_ERR" || fail "the error does not say '$why': $(cat "$KV_ERR")"
  clean "after the refusal '$why'"
}
# logged FIELD VALUE: the daemon's log has a "trust file loaded" (or "initdata loaded") line
# with that field value
logged() {
  grep "\"msg\":\"$1\"" "$T/daemon.log" | grep -q "\"$2\":\"$3\"" ||
    fail "no '$1' line with $2 $3 in the daemon's log: $(grep '"msg":"\(trust file\|initdata\) loaded"' "$T/daemon.log")"
}

clean "before"
say "--- 1. allowlist: verified-layers.toml lists the tarfs layer, required"
printf 'require_verified_layers = true\n[[layer]]\nalgorithm = "SHA256"\nroot_hash = "%s"\n' \
  "$(echo "$ROOT_512" | tr a-f A-F)" >"$T/layers.toml"
daemon_up --verified-layers "$T/layers.toml"
logged "trust file loaded" sha256 "$(sha256sum "$T/layers.toml" | cut -d' ' -f1)"
add "$MP-a" "$TARFS512_DISK" "$OPT_512"
[ "$KV_RC" = 0 ] || fail "the listed layer was refused: $(cat "$KV_ERR")"
check_verity_mount "$MP-a" "$TARFS512_DISK" "$TABLE_512" kernel-only
dm_before=$(all_dm | tr '\n' ' ')
add "$MP-b" "$VERITY4K_DISK" "$OPT_4K"
[ "$KV_RC" = 1 ] && grep -q "is not in the allowlist of verified layers (PERMISSION_DENIED)$" "$KV_ERR" ||
  fail "the unlisted layer: exit $KV_RC, $(cat "$KV_ERR")"
[ "$(all_dm | tr '\n' ' ')" = "$dm_before" ] || fail "a dm device appeared for the refused layer"
kv remove --addr "$SOCK" --mount-point "$MP-a"
[ "$KV_RC" = 0 ] || fail "remove exited $KV_RC"
clean "after the allowlist"
say "the CLI under the same allowlist reports the table it read back"
kv_mount "$OPT_512" "$TARFS512_DISK" "$MP-cli" --verified-layers "$T/layers.toml"
check_verity_mount "$MP-cli" "$TARFS512_DISK" "$TABLE_512"
kv_umount "$MP-cli"
kv mount --json --verified-layers "$T/layers.toml" "$OPT_4K" --device "$VERITY4K_DISK" "$MP-cli"
[ "$KV_RC" = 1 ] && grep -q "is not in the allowlist" "$KV_ERR" || fail "the CLI mounted the unlisted layer: $KV_RC"
clean "after the CLI"

say "--- 2. the allowlist inside initdata (sha512), listing the verity4k layer"
{
  printf 'version = "0.1.0"\nalgorithm = "sha512"\n[data]\n"verified-layers.toml" = %s\n' "'''"
  printf 'require_verified_layers = true\n[[layer]]\nalgorithm = "sha256"\nroot_hash = "%s"\n' "$ROOT_4K"
  printf "'''\n"
} >"$T/initdata.toml"
daemon_up --initdata "$T/initdata.toml"
logged "initdata loaded" digest "$(sha512sum "$T/initdata.toml" | cut -d' ' -f1)"
add "$MP-b" "$VERITY4K_DISK" "$OPT_4K"
[ "$KV_RC" = 0 ] || fail "the layer initdata lists was refused: $(cat "$KV_ERR")"
check_verity_mount "$MP-b" "$VERITY4K_DISK" "$TABLE_4K" kernel-only
kv remove --addr "$SOCK" --mount-point "$MP-b"
refused "is not in the allowlist" "$MP-a" "$TARFS512_DISK" "$OPT_512"

say "--- 3. signatures checked in userspace: the signer trusted, signatures required"
echo "$TRUST_SIGNER_PEM" | base64 -d >"$T/signer.pem"
daemon_up --trusted-signer "$T/signer.pem" --require-signatures \
  --trusted-root-hash "$ROOT_512" --trusted-root-hash "$ROOT_4K"
logged "trust file loaded" sha256 "$(sha256sum "$T/signer.pem" | cut -d' ' -f1)"
add "$MP-b" "$VERITY4K_DISK" "$OPT_4K" "$SIG_4K"
[ "$KV_RC" = 0 ] || fail "the signed layer was refused: $(cat "$KV_ERR")"
check_verity_mount "$MP-b" "$VERITY4K_DISK" "$TABLE_4K" kernel-only
kv remove --addr "$SOCK" --mount-point "$MP-b"
clean "after the signed layer"
refused "is not signed" "$MP-b" "$VERITY4K_DISK" "$OPT_4K"
refused "made over other data" "$MP-b" "$VERITY4K_DISK" "$OPT_4K" "$SIG_512"
# the host swaps disks: the verity4k layer's request and signature with the tarfs disk
refused "does not match root hash $ROOT_4K" "$MP-b" "$TARFS512_DISK" "$OPT_4K" "$SIG_4K"

say "--- 4. kernel signatures: the kernel alone judges (it trusts only Debian's key)"
daemon_up --kernel-signatures --require-signatures
refused "(ENOKEY)" "$MP-b" "$VERITY4K_DISK" "$OPT_4K" "$SIG_4K"
dmesg | grep -i verity | tail -n 2 | sed 's/^/  dmesg: /'
refused "(EKEYREJECTED)" "$MP-b" "$VERITY4K_DISK" "$OPT_4K" "$SIG_512"
dmesg | grep -i verity | tail -n 2 | sed 's/^/  dmesg: /'
refused "is not signed" "$MP-b" "$VERITY4K_DISK" "$OPT_4K"
daemon_down
rm -rf "$STATE"
clean "at the end"
say "ok"
