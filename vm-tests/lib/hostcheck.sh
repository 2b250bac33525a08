# shellcheck shell=bash
# Helpers for the host scenarios (host/scenarios/NN-name.sh, run by lib/host.sh with bash,
# params.sh and the guest's disks in the environment). Same conventions as the guest's: a
# scenario exits 0 to pass; `fail WHY` records the reason and exits 1.

# shellcheck source=host.sh
. "$HERE/lib/host.sh"
KV_ADDR=tcp://127.0.0.1:$KV_PORT
MOUNT_ROOT=/run/kata-containers
TMP=$(mktemp -d "$WORK/host-scenario.XXXXXX")
# at_exit COMMAND…: run when the scenario ends, pass or fail (quietly, in order): undoes what
# a scenario set up beside the daemon (a foreign mount, a trap), so a failure does not spill
# into the next scenario
AT_EXIT=()
at_exit() { AT_EXIT+=("$(printf '%q ' "$@")"); }
run_at_exit() {
  local c
  for c in "${AT_EXIT[@]}"; do eval "$c" >/dev/null 2>&1; done
  rm -rf "$TMP"
}
trap run_at_exit EXIT

say() { echo "$*"; }
# (appends: a failure inside a command substitution is not overwritten by a later one)
fail() { echo "$*" >>"$HOST_REASON"; echo "FAIL: $*"; exit 1; }

redact() { sed 's/io\.katacontainers\.volume=\([A-Za-z0-9+/]\{12\}\)[A-Za-z0-9+/=]*/io.katacontainers.volume=\1…/g' <<<"$*"; }

# kvh SUBCOMMAND ARGS…: the host's client against the guest's daemon; stdout in $KVH_OUT,
# stderr in $KVH_ERR, exit status in $KVH_RC (shown, options shortened); standard input
# from the file $KVH_STDIN (default: none).
KVH_OUT=$TMP/kv.out
KVH_ERR=$TMP/kv.err
kvh() {
  local sub=$1
  shift
  echo "\$ kata-volume $sub $(redact "$*")"
  KVH_RC=0
  "$HOST_KV" "$sub" --addr "$KV_ADDR" "$@" <"${KVH_STDIN:-/dev/null}" >"$KVH_OUT" 2>"$KVH_ERR" || KVH_RC=$?
  head -n 12 "$KVH_OUT" | sed 's/^/  out: /'
  head -n 5 "$KVH_ERR" | sed 's/^/  err: /'
  [[ $KVH_RC == 0 ]] || echo "  exit: $KVH_RC"
}

# ---------------------------------------------------------------- parallel requests
# spawn ID SUBCOMMAND ARGS…: one client in the background, its output in $TMP/batch/ID.*
spawn() {
  local id=$1 sub=$2
  shift 2
  mkdir -p "$TMP/batch"
  ("$HOST_KV" "$sub" --addr "$KV_ADDR" "$@" >"$TMP/batch/$id.out" 2>"$TMP/batch/$id.err"
    echo $? >"$TMP/batch/$id.rc") &
}
# batch_wait: waits for every spawned client; prints a summary; BATCH_OK/BATCH_FAILED count
# them (the next spawn starts a new batch)
batch_wait() {
  local f
  wait
  BATCH_OK=0
  BATCH_FAILED=0
  for f in "$TMP"/batch/*.rc; do
    [[ -e $f ]] || continue
    if [[ $(cat "$f") == 0 ]]; then
      BATCH_OK=$((BATCH_OK + 1))
    else
      BATCH_FAILED=$((BATCH_FAILED + 1))
      ((BATCH_FAILED > 3)) || echo "  ${f##*/}: exit $(cat "$f"): $(head -c 300 "${f%.rc}.err")"
    fi
  done
  echo "batch: $BATCH_OK ok, $BATCH_FAILED failed"
  rm -rf "$TMP/last-batch"
  [[ ! -d $TMP/batch ]] || mv "$TMP/batch" "$TMP/last-batch"
}
# the last batch's mount points whose add answered OK (with --json), one per line
batch_ok_mount_points() {
  local f
  for f in "$TMP"/last-batch/*.rc; do
    [[ $(cat "$f") == 0 ]] && jq -r .mount_point "${f%.rc}.out"
  done
  return 0
}

# ---------------------------------------------------------------- the daemon's view
# list_json: `list --json` into $TMP/list.json (fails the scenario if refused)
list_json() {
  "$HOST_KV" list --addr "$KV_ADDR" --json >"$TMP/list.json" 2>"$TMP/list.err" ||
    fail "list exited $?: $(cat "$TMP/list.err")"
}
listed() { jq -r ".volumes[] | $1" "$TMP/list.json"; }

# ---------------------------------------------------------------- the kernel's view (agent)
# guest_state: `ctl state` into $TMP/state (lines: daemon, dm, node, mount, loop)
guest_state() { ctl state >"$TMP/state" || fail "the guest agent did not answer 'state'"; }
st() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$TMP/state"; }
kata_dms() { st dm | awk '$1 ~ /^kata-volume-/ { print $1 }' | sort; }
all_dms() { st dm | awk '{ print $1 }' | sort; }
kata_nodes() { st node | grep '^kata-volume-' | sort; }
our_mounts() { st mount | awk '{ print $1 }' | sort; }
small_loops() { st loop | awk -v d="$SMALL_DIR/" 'index($2, d) == 1 { print $2 }' | sort; }
daemon_pid() { st daemon | awk '{ print $1 }'; }
show_state() { sed 's/^/  guest: /' "$TMP/state" | head -n "${1:-60}"; }

# expect_clean WHEN: no dm device, /dev/mapper node, mount under the root, or loop device
# on a small layer of ours
expect_clean() {
  guest_state
  [[ -z $(all_dms) ]] || { show_state; fail "$1: dm devices left: $(all_dms | tr '\n' ' ')"; }
  [[ -z $(kata_nodes) ]] || fail "$1: /dev/mapper nodes left: $(kata_nodes | tr '\n' ' ')"
  [[ -z $(our_mounts) ]] || fail "$1: still mounted: $(our_mounts | tr '\n' ' ')"
  [[ -z $(small_loops) ]] || fail "$1: loop devices left on: $(small_loops | tr '\n' ' ')"
  return 0
}

# remove_all_listed: removes every volume the daemon lists, in parallel; all must succeed
remove_all_listed() {
  local mp i=0
  list_json
  for mp in $(listed .mount_point); do
    spawn "rm$((i += 1))" remove --mount-point "$mp"
  done
  batch_wait
  ((BATCH_FAILED == 0)) || fail "$BATCH_FAILED remove(s) failed"
  list_json
  [[ $(listed .mount_point | wc -l) == 0 ]] || fail "the daemon still lists $(listed .mount_point | tr '\n' ' ')"
}

# the option of small layer NN
small_opt() { local v=OPT_SMALL_$1; echo "${!v}"; }

# ---------------------------------------------------------------- refusals
# refused_with CODE TEXT WHAT: the last kvh call exited 1 with an "error: …" line that says
# TEXT and ends with "(CODE)"
refused_with() {
  local line
  [[ $KVH_RC == 1 ]] || fail "$3: exit $KVH_RC, want 1 (refused with $1)"
  line=$(grep -m 1 '^error: ' "$KVH_ERR") || fail "$3: no 'error: …' line on stderr"
  [[ $line == *"($1)" ]] || fail "$3: '$line' does not end with ($1)"
  [[ $line == *"$2"* ]] || fail "$3: '$line' does not say '$2'"
  say "refused as expected: $line"
}

# ---------------------------------------------------------------- Kata runtime shapes (issue 12)
qmp() { python3 "$HERE/lib/qmp.py" "$QMP_SOCK" "$@"; }
# slot_of SERIAL: the PCI slot a test disk is pinned at (lib/vm.sh)
slot_of() {
  local p
  for p in $DISK_SLOTS; do [[ ${p%=*} == "$1" ]] && { echo "${p#*=}"; return 0; }; done
  fail "no PCI slot for the disk $1 in '$DISK_SLOTS'"
}
# the volume JSON of an io.katacontainers.volume= option; option_with OPTION JQ: the option
# with a jq edit of its JSON; vinfo_of OPTION: its dm_verity object, as a CCv0 runtime's
# verity_info= carries it
volume_json() { base64 -d <<<"${1#io.katacontainers.volume=}"; }
option_with() { printf 'io.katacontainers.volume=%s' "$(volume_json "$1" | jq -c "$2" | tr -d '\n' | base64 -w0)"; }
vinfo_of() { volume_json "$1" | jq -c .dm_verity; }

# Where a CCv0 runtime mounts a verified layer (by root hash), and keeps a container's upper
# and work directories
VV_DIR=$MOUNT_ROOT/virtual-volumes
VERITY_DIR=$VV_DIR/verity
CREATE_DIR_OPT=io.katacontainers.volume.overlayfs.create_directory

# dmverity_args OPTION SOURCE_TYPE SOURCE MOUNT_POINT: sets DMV_ARGS, the `add` arguments of
# the CCv0 runtime's dmverity Storage for that volume (SOURCE_TYPE may be empty: a path)
dmverity_args() {
  DMV_ARGS=(--driver dmverity --driver-option "verity_info=$(vinfo_of "$1")")
  [[ -z $2 ]] || DMV_ARGS+=(--driver-option "source_type=$2")
  DMV_ARGS+=(--source "$3" --fstype erofs --option ro --mount-point "$4")
}
add_dmverity() { dmverity_args "$@"; kvh add --json "${DMV_ARGS[@]}"; }

# add_overlay CID LOWER…: the CCv0 runtime's overlayfs Storage for container CID's rootfs
# ($MOUNT_ROOT/CID/rootfs) over the LOWER mount points, top first
add_overlay() {
  local cid=$1 l args=()
  shift
  for l in "$@"; do args+=(--option "lowerdir=$l"); done
  args+=(--option "upperdir=$VV_DIR/containers/$cid/fs" --option "workdir=$VV_DIR/containers/$cid/work"
    --driver-option "$CREATE_DIR_OPT=$VV_DIR/containers/$cid/fs"
    --driver-option "$CREATE_DIR_OPT=$VV_DIR/containers/$cid/work")
  kvh add --json --driver overlayfs --source overlay --fstype overlay "${args[@]}" --mount-point "$MOUNT_ROOT/$cid/rootfs"
}

# ---------------------------------------------------------------- the kernel's view, in detail
# on_dm_over MOUNT_POINT DM_NAME DISK: the top mount at MOUNT_POINT is a read-only erofs on
# the dm device DM_NAME, whose table reads data and hashes from DISK (a guest node); sets
# DM_TABLE
on_dm_over() {
  local mp=$1 name=$2 disk=$3 top dev table want
  top=$(ctl mountinfo "$mp" | tail -n 1)
  [[ -n $top ]] || fail "nothing is mounted at $mp"
  [[ $top == *" - erofs "* && " ${top%% - *}" == *" ro,"* ]] || fail "the top mount at $mp is not a read-only erofs: $top"
  dev=$(ctl devname "$(awk '{ print $3 }' <<<"$top")")
  [[ $dev == *" $name" ]] || fail "$mp is mounted from '$dev', not from $name"
  table=$(ctl dm-table "$name") || fail "no table for $name"
  want=$(ctl disk-info "$disk" | sed -n 's/^devnum //p')
  [[ -n $want && $(awk '{ print $5 " " $6 }' <<<"$table") == "$want $want" ]] ||
    fail "$name reads from $(awk '{ print $5, $6 }' <<<"$table"), want $disk ($want) for data and hashes"
  DM_TABLE=$table
  say "$mp: erofs on $name over $disk: $table"
}

# tree_of PATH: the agent's listing of what lies below PATH (fails the scenario if none)
tree_of() { ctl tree "$1" || fail "cannot list $1 in the guest"; }
# read_is PATH TEXT: the guest file's first line is TEXT
read_is() {
  local got
  got=$(ctl read "$1") || fail "cannot read $1 in the guest: $got"
  [[ $got == "$2" ]] || fail "$1 says '$got', want '$2'"
}
# expect_root_as WHEN BEFORE: the mount root holds exactly what it held before (the tree_of
# it taken then): no directory left behind
expect_root_as() {
  local now
  now=$(tree_of "$MOUNT_ROOT")
  [[ $now == "$2" ]] || fail "$1: the mount root changed: $(diff <(echo "$2") <(echo "$now") | grep '^[<>]' | tr '\n' ';')"
}

# ---------------------------------------------------------------- container rootfs (issue 12)
# the mount point of layer NAME (base, mid, top: lib/layers.sh) as a CCv0 runtime names it,
# the guest disk it is on, and its volume option
layer_mp() { local r=LAYER_ROOT_$1; echo "$VERITY_DIR/${!r}"; }
layer_disk() { local v=LAYER_${1^^}_DISK; echo "${!v}"; }
layer_opt() { local v=OPT_LAYER_$1; echo "${!v}"; }

# check_overlay CID LOWER…: one overlay at CID's rootfs, over the LOWER mount points in that
# order (top first), with CID's upper and work directories
check_overlay() {
  local cid=$1 rootfs=$MOUNT_ROOT/$1/rootfs m want
  shift
  m=$(ctl mountinfo "$rootfs")
  [[ $(grep -c . <<<"$m") == 1 && $m == *" - overlay overlay "* ]] || fail "$rootfs: not one overlay mount: $m"
  want="lowerdir=$(IFS=:; echo "$*"),upperdir=$VV_DIR/containers/$cid/fs,workdir=$VV_DIR/containers/$cid/work"
  [[ $m == *"$want"* ]] || fail "$rootfs: the overlay's options are not '$want': $m"
  say "$rootfs: overlay $want"
}

# check_layer_view ROOTFS: a rootfs over top:mid:base shows overlayfs' rules: exactly the
# merged tree (whiteouts hide, the opaque directory hides base's files), the top's copy wins
check_layer_view() {
  local got
  got=$(tree_of "$1")
  [[ $got == "$ROOTFS_TREE" ]] ||
    fail "$1 is not the merged view of the layers: $(diff <(echo "$ROOTFS_TREE") <(echo "$got") | grep '^[<>]' | tr '\n' ';')"
  read_is "$1/shared.txt" "shared.txt from top"
  read_is "$1/data/a.txt" "a from base"
  read_is "$1/data/c.txt" "c from mid"
  read_is "$1/opaque/new.txt" "new from top"
  say "$1: the merged view (whiteouts and the opaque directory honoured, the top's shared.txt)"
}

# check_writes CID: writes into CID's rootfs land in its upper directory, never in a layer;
# a deleted lower file becomes a whiteout there
check_writes() {
  local cid=$1 rootfs=$MOUNT_ROOT/$1/rootfs upper=$VV_DIR/containers/$1/fs n
  ctl write "$rootfs/written.txt" "by-$cid" >/dev/null || fail "cannot write into $rootfs"
  ctl write "$rootfs/shared.txt" "changed-by-$cid" >/dev/null || fail "cannot change $rootfs/shared.txt"
  ctl remove "$rootfs/mid.txt" >/dev/null || fail "cannot delete $rootfs/mid.txt"
  read_is "$upper/written.txt" "by-$cid"
  read_is "$upper/shared.txt" "changed-by-$cid"
  [[ $(tree_of "$upper") == *"c0:0 ./mid.txt"* ]] || fail "no whiteout of mid.txt in $upper: $(tree_of "$upper" | tr '\n' ' ')"
  for n in $LAYER_NAMES; do
    [[ $(tree_of "$(layer_mp "$n")") != *written.txt* ]] || fail "written.txt appeared in the $n layer"
    read_is "$(layer_mp "$n")/shared.txt" "shared.txt from $n"
  done
  read_is "$(layer_mp mid)/mid.txt" "mid layer"
  ! ctl write "$(layer_mp top)/written.txt" x >/dev/null || fail "a layer's mount could be written"
  say "$cid: writes went to $upper (a file, a copy-up, a whiteout); the layers are unchanged"
}
