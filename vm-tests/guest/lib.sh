# Guest helpers for the scenarios (busybox sh). Sourced by /init and by every scenario.
# Conventions: a scenario is a script; it exits 0 to pass; `fail WHY` records the reason and
# exits 1; everything it prints is shown (prefixed) on the console.

MOUNT_ROOT=${MOUNT_ROOT:-/run/kata-containers}
REASON_FILE=/tmp/vmtest.reason
METRICS_FILE=/tmp/vmtest.metrics
MANIFEST=/vmtest/manifest.sha256
KV=${KV:-kata-volume}

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
say() { echo "$*"; }
fail() { echo "$*" >"$REASON_FILE"; echo "FAIL: $*"; exit 1; }
metric() { echo "VMTEST-METRIC $1 $2" >>"$METRICS_FILE"; }

# /dev/vdX whose virtio serial is $1
disk() {
  local b
  for b in /sys/block/vd*; do
    [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${b##*/}"; return 0; }
  done
  return 1
}
# major:minor of a block device node
devnum() {
  set -- $(stat -L -c '%t %T' "$1")
  printf '%d:%d\n' "0x$1" "0x$2"
}

# ---------------------------------------------------------------- the binary under test
# kv ARGS…: run kata-volume; stdout in $KV_OUT (file), stderr in $KV_ERR, exit code in $KV_RC.
KV_OUT=/tmp/kv.out
KV_ERR=/tmp/kv.err
kv() {
  echo "\$ $KV $(echo "$*" | sed 's/io\.katacontainers\.volume=\([A-Za-z0-9+/]\{12\}\)[A-Za-z0-9+/=]*/io.katacontainers.volume=\1…/g')"
  KV_RC=0
  "$KV" "$@" >"$KV_OUT" 2>"$KV_ERR" || KV_RC=$?
  sed 's/^/  out: /' "$KV_OUT" | head -n 20
  sed 's/^/  err: /' "$KV_ERR" | head -n 20
  [ "$KV_RC" = 0 ] || echo "  exit: $KV_RC"
  return 0
}
# value of a string/number field in the JSON on stdout of the last kv call (flat, first match)
json_field() {
  tr '\n' ' ' <"$KV_OUT" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p"
}
# kv_mount OPTION DEVICE MOUNT_POINT [POLICY FLAGS…]: must succeed with --json (the CLI
# applies the daemon's default policy unless flags widen it, e.g. --allow-files)
kv_mount() {
  local opt=$1 dev=$2 mp=$3
  shift 3
  kv mount --json "$@" "$opt" --device "$dev" "$mp"
  [ "$KV_RC" = 0 ] || fail "mount $mp exited $KV_RC: $(head -c 300 "$KV_ERR")"
}
kv_umount() {
  kv umount "$1"
  [ "$KV_RC" = 0 ] || fail "umount $1 exited $KV_RC: $(head -c 300 "$KV_ERR")"
}

# ---------------------------------------------------------------- what the kernel says
# mountinfo lines whose mount point is exactly $1 (fields: 3 = maj:min, 5 = mount point,
# 6 = per-mount options, then optional fields, "-", fstype, source, super options)
mounts_at() { awk -v m="$1" '$5 == m' /proc/self/mountinfo; }
mounts_under() { awk -v r="$1" 'index($5, r "/") == 1 || $5 == r' /proc/self/mountinfo; }
# names of dm devices that look like ours
kata_dm_names() {
  local d
  for d in /sys/block/dm-*; do
    [ -e "$d/dm/name" ] || continue
    case "$(cat "$d/dm/name")" in kata-volume-*) echo "$(cat "$d/dm/name") ${d##*/}" ;; esac
  done
}
all_dm() { ls /sys/block | grep '^dm-' || true; }
loops_in_use() {
  local l
  for l in /sys/block/loop*; do
    [ -e "$l/loop/backing_file" ] && echo "${l##*/} $(cat "$l/loop/backing_file")"
  done
  return 0
}
dms() { DM_DISABLE_UDEV=1 dmsetup "$@"; }

# check_verity_mount MOUNT_POINT DISK EXPECTED_TABLE: one read-only erofs mount of a
# kata-volume-* verity device over DISK (a /dev node), with the expected table, status V;
# the last kv call's --json output agrees, unless the 4th argument is kernel-only.
check_verity_mount() {
  local mp=$1 disk=$2 want=$3 line n mm name opts fstype got st slaves ddev
  n=$(mounts_at "$mp" | wc -l)
  [ "$n" = 1 ] || fail "$n mounts at $mp (want 1)"
  line=$(mounts_at "$mp")
  mm=$(echo "$line" | awk '{ print $3 }')
  opts=$(echo "$line" | awk '{ print $6 }')
  fstype=$(echo "$line" | awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }')
  say "mounted: dev $mm, fstype $fstype, options $opts"
  [ "$fstype" = erofs ] || fail "fstype is $fstype, want erofs"
  for o in ro nodev nosuid; do
    echo ",$opts," | grep -q ",$o," || fail "mount options $opts lack $o"
  done
  name=$(cat "/sys/dev/block/$mm/dm/name" 2>/dev/null) || fail "$mp is not on a dm device ($mm)"
  case "$name" in kata-volume-*) ;; *) fail "dm name '$name' does not start with kata-volume-" ;; esac
  [ -b "/dev/mapper/$name" ] || fail "no block node /dev/mapper/$name"
  [ "$(devnum "/dev/mapper/$name")" = "$mm" ] || fail "/dev/mapper/$name is $(devnum "/dev/mapper/$name"), mounted is $mm"
  [ "$(cat "/sys/dev/block/$mm/ro")" = 1 ] || fail "dm device $name is not read-only"
  slaves=$(ls "/sys/dev/block/$mm/slaves" | tr '\n' ' ')
  ddev=${disk##*/}
  echo " $slaves" | grep -q " $ddev " || fail "dm device sits on '$slaves', want $ddev"
  want=$(echo "$want" | sed "s/DEV DEV/$(devnum "$disk") $(devnum "$disk")/")
  got=$(dms table "$name")
  say "table:  $got"
  [ "$got" = "$want" ] || fail "table differs; want: $want"
  st=$(dms status "$name")
  say "status: $st"
  [ "${st##* }" = V ] || fail "status does not end with V: $st"
  if [ "${4:-}" = kernel-only ]; then
    # the volume came from the daemon, whose answer carries no table: the kernel's alone
    touch "$mp/.write-test" 2>/dev/null && fail "could write into $mp"
    return 0
  fi
  # what the binary said about it: the last kv call was a mount with --json, whose output
  # must be there and agree with the kernel
  [ -s "$KV_OUT" ] || fail "the mount printed nothing on stdout (--json expected)"
  got=$(json_field dm_name)
  [ "$got" = "$name" ] || fail "--json dm_name '$got' differs from the kernel's '$name'"
  got=$(json_field table | awk '{ $5 = "DEV"; $6 = "DEV"; print }')
  [ "$got" = "$(echo "$3" | awk '{ $5 = "DEV"; $6 = "DEV"; print }')" ] ||
    fail "--json table '$(json_field table)' differs from the expected '$3' (devices aside)"
  got=$(json_field status)
  [ "${got##* }" = V ] || fail "--json status '$got' does not end with V"
  touch "$mp/.write-test" 2>/dev/null && fail "could write into $mp"
  return 0
}

# check_files MOUNT_POINT: the tree has exactly the manifest's files, with their sha256
check_files() {
  local want got
  (cd "$1" && sha256sum -c -s "$MANIFEST") || {
    (cd "$1" && sha256sum -c "$MANIFEST" 2>&1 | grep -v ': OK$' | head -n 5)
    fail "sha256 mismatch or unreadable file under $1"
  }
  want=$(awk '{ $1 = ""; sub(/^ +/, ""); print }' "$MANIFEST" | sort)
  got=$(cd "$1" && find . -type f | sort)
  [ "$got" = "$want" ] || fail "file list under $1 differs from the image's: $(echo "$got" | tr '\n' ' ')"
  [ -d "$1/empty-dir" ] || fail "empty-dir missing under $1"
  say "files: $(echo "$want" | wc -l) files, all sha256 as on the host"
}

# check_gone MOUNT_POINT DM_NAME: nothing left of one verity volume (its mount, its dm
# device, its node); an empty DM_NAME is a failure, not a reason to check less
check_gone() {
  [ -n "$2" ] || fail "check_gone $1: no dm name to check (the mount's --json had none)"
  [ -z "$(mounts_at "$1")" ] || fail "$1 still mounted after umount"
  [ ! -e "/dev/mapper/$2" ] || fail "/dev/mapper/$2 still exists after umount"
  ! kata_dm_names | grep -q "^$2 " || fail "dm device $2 still exists after umount"
}
