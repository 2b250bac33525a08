# The benchmark's eight-layer rootfs (issue 12), sourced by bench.sh after its per-layer case
# (its helpers, its daemon on $SOCK, the small layers as files in $SMALL_DIR). Eight small
# layers, the same loop files on both sides, from request to mounted overlay:
#   ours:   kata-volume add --storages FILE: the eight `dmverity` Storages and the `overlayfs`
#           Storage that `kata-volume storages` makes for a nydus-snapshotter mount (CCv0
#           convention, each layer's source its file), one client process, nine requests
#   theirs: one shell script: per layer `veritysetup open … --no-superblock` and
#           `mount -t erofs`, then `mount -t overlay` over the eight (top first)
# each timed end to end as one command; ROOTFS_ROUNDS rounds, the first side alternating.
# Every directory either side mounts on (layers, rootfs, upper, work) is made before the
# clock starts, every round. After each round both rootfs must show the top layer's id.txt,
# then both are taken down (timed too) and nothing may be left.
# Output: VMTEST-BENCH rootfs_* lines and one VMTEST-BENCH-ROOTFS line per round.
RL_IDS="08 07 06 05 04 03 02 01" # top first
RL_CID=bench-rootfs
RL_ROUNDS=${ROOTFS_ROUNDS:-7}
RL_JSON=/tmp/rootfs-storages.json
RL_THEIRS=/mnt/rl
RL_UP=/tmp/theirs-rootfs.sh
RL_DOWN=/tmp/theirs-rootfs-down.sh
SNAP=/var/lib/containerd-nydus/snapshots

# ---- ours: the Storages, once (untimed); the directories they mount on and create
set -f
set --
lowers=
for i in $RL_IDS; do
  eval "opt=\$OPT_SMALL_$i"
  set -- "$@" --mount-option "$opt" --source-map "$SMALL_DIR/$i.img=$SMALL_DIR/$i.img"
  lowers="$lowers:$SNAP/$i/fs"
done
"$KV" storages --container-id "$RL_CID" --mount-type fuse.nydus-overlayfs \
  --mount-option "workdir=$SNAP/9/work" --mount-option "upperdir=$SNAP/9/fs" \
  --mount-option "lowerdir=${lowers#:}" "$@" >"$RL_JSON" 2>/tmp/storages.err ||
  echo "VMTEST-BENCH-ERROR kata-volume storages failed: $(head -c 300 /tmp/storages.err)"
set +f
RL_MPS=$(sed -n 's/.*"mount_point": *"\([^"]*\)".*/\1/p' "$RL_JSON")
RL_ROOTFS=$MOUNT_ROOT/$RL_CID/rootfs
RL_DIRS="$RL_MPS $(grep -o 'create_directory=[^"]*' "$RL_JSON" | cut -d= -f2)"
[ "$(echo "$RL_MPS" | wc -l)" = 9 ] && [ "$(echo "$RL_MPS" | tail -n 1)" = "$RL_ROOTFS" ] ||
  echo "VMTEST-BENCH-ERROR the Storages are not eight layers and the rootfs: $RL_MPS"
[ "$(echo "$RL_DIRS" | wc -w)" = 11 ] || echo "VMTEST-BENCH-ERROR no upper and work directories in $RL_JSON"

# ---- theirs: the two scripts, written once with every value in them (untimed)
{
  echo "set -e"
  for i in $RL_IDS; do
    eval "size=\$SMALL_SIZE_$i root=\$SMALL_ROOT_$i"
    echo "veritysetup open $SMALL_DIR/$i.img rl-$i $SMALL_DIR/$i.img $root --no-superblock" \
      "--hash-offset=$size --data-blocks=$((size / 512)) --data-block-size=512 --hash-block-size=4096" \
      "--salt=- --hash=sha256 --format=1"
    echo "mount -t erofs -o ro,nodev,nosuid /dev/mapper/rl-$i $RL_THEIRS/$i"
  done
  echo "mount -t overlay -o lowerdir=$(for i in $RL_IDS; do printf '%s:' "$RL_THEIRS/$i"; done | sed 's/:$//'),upperdir=$RL_THEIRS/up/fs,workdir=$RL_THEIRS/up/work overlay $RL_THEIRS/rootfs"
} >"$RL_UP"
{
  echo "set -e"
  echo "umount $RL_THEIRS/rootfs"
  for i in $RL_IDS; do echo "umount $RL_THEIRS/$i"; echo "veritysetup close rl-$i"; done
} >"$RL_DOWN"

rl_dirs() { # every directory both sides mount on, made fresh (the uppers empty)
  rm -rf "$RL_THEIRS/up"
  # shellcheck disable=SC2086 # word lists
  mkdir -p $RL_DIRS "$RL_THEIRS/rootfs" "$RL_THEIRS/up/fs" "$RL_THEIRS/up/work"
  for i in $RL_IDS; do mkdir -p "$RL_THEIRS/$i"; done
}
rl_ours() { "$KV" add --addr "$SOCK" --storages "$RL_JSON" >/dev/null; }
rl_theirs() { sh "$RL_UP"; }
# ours down in the CCv0 order: the layers (they stay under the rootfs), then the rootfs
rl_ours_down() {
  local mp
  for mp in $RL_MPS; do "$KV" remove --addr "$SOCK" --mount-point "$mp" >/dev/null || return 1; done
}
rl_theirs_down() { sh "$RL_DOWN"; }
# rl_check WHEN: both rootfs show the top layer's id.txt, on 9 mounts each
rl_check() {
  local o t
  o=$(mounts_under "$MOUNT_ROOT" | wc -l)
  t=$(awk -v d="$RL_THEIRS/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)
  [ "$o $t" = "9 9" ] || echo "VMTEST-BENCH-ERROR $1: $o mounts of ours, $t of theirs (want 9 and 9)"
  [ "$(cat "$RL_ROOTFS/id.txt")" = "small layer 08" ] && [ "$(cat "$RL_THEIRS/rootfs/id.txt")" = "small layer 08" ] ||
    echo "VMTEST-BENCH-ERROR $1: a rootfs does not show the top layer's id.txt"
}
# the daemon's own time for the AddStorage requests logged after line $1 of its log (ms)
daemon_sum() {
  tail -n +"$(($1 + 1))" /tmp/daemon.log | sed -n 's/.*"AddStorage ok".*"duration_us":\([0-9]*\).*/\1/p' |
    awk '{ s += $1 } END { printf "%.2f\n", s / 1000 }'
}

echo "VMTEST-BENCH rootfs_layers $(echo $RL_IDS | wc -w)"
r=0
while [ $r -lt "$RL_ROUNDS" ]; do
  rl_dirs
  lines=$(wc -l </tmp/daemon.log)
  if [ $((r % 2)) = 0 ]; then
    first=ours
    timed /tmp/rl-ours.ms rl_ours && timed /tmp/rl-theirs.ms rl_theirs
  else
    first=theirs
    timed /tmp/rl-theirs.ms rl_theirs && timed /tmp/rl-ours.ms rl_ours
  fi
  daemon_sum "$lines" >>/tmp/rl-daemon.ms
  rl_check "round $((r + 1))"
  timed /tmp/rl-ours-rm.ms rl_ours_down
  timed /tmp/rl-theirs-rm.ms rl_theirs_down
  left=$(ls /sys/block | grep -c '^dm-')
  [ "$left" = 0 ] && [ -z "$(mounts_under "$MOUNT_ROOT")" ] ||
    echo "VMTEST-BENCH-ERROR round $((r + 1)): $left dm devices and $(mounts_under "$MOUNT_ROOT" | wc -l) mounts left"
  r=$((r + 1))
  echo "VMTEST-BENCH-ROOTFS round $r first $first ours $(tail -n 1 /tmp/rl-ours.ms) theirs $(tail -n 1 /tmp/rl-theirs.ms)" \
    "daemon $(tail -n 1 /tmp/rl-daemon.ms) remove $(tail -n 1 /tmp/rl-ours-rm.ms)/$(tail -n 1 /tmp/rl-theirs-rm.ms)"
done
echo "VMTEST-BENCH rootfs_rounds $r"
echo "VMTEST-BENCH rootfs_ours_median_ms $(median /tmp/rl-ours.ms)"
echo "VMTEST-BENCH rootfs_theirs_median_ms $(median /tmp/rl-theirs.ms)"
echo "VMTEST-BENCH rootfs_daemon_side_median_ms $(median /tmp/rl-daemon.ms)"
echo "VMTEST-BENCH rootfs_remove_ours_median_ms $(median /tmp/rl-ours-rm.ms)"
echo "VMTEST-BENCH rootfs_remove_theirs_median_ms $(median /tmp/rl-theirs-rm.ms)"
