# Issue 12, shape 4: a container rootfs as Kata main's runtime-rs asks for it — one Storage
# per erofs layer, all with the rootfs as mount_point and `X-kata.multi-layer=true`, driver
# `blk`, the disk's PCI path as source, `X-kata.overlay-lower`, and the verity parameters as
# `X-kata.dmverity.*` (roothash, hashoffset, no-superblock, salt: what the runtime derives
# from containerd's dm-verity file; blocks default to 4 KiB). Disks (lib/layers.sh): ml-gpt,
# a GPT disk whose partitions 1, 2, 3 hold the top, mid and base layers
# (`X-kata.gpt-partitioned=true`, `X-kata.partition-number=N`, lower number = higher layer;
# top with a verity superblock, mid and base without, each its own salt), and ml-whole, one
# layer (with a superblock) on a whole disk.
#   vmtest-m1  the GPT's three layers in one `add --storages` (mount order 1, 2, 3): each layer
#              erofs on its dm-verity device over its partition (table: partition, root hash,
#              salt, hash start past the superblock), the overlay at the rootfs with
#              lowerdir=lower-1:lower-2:lower-3, the merged view (whiteouts, an opaque
#              directory, the top's copy wins), writes in the upper directory only; removed
#              as Kata main's agent releases its Storages (the rootfs, once per Storage)
#   vmtest-m2  the whole-disk layer alone (table over the disk itself), written, removed
#   vmtest-m3  partition 3, then partition 1 with a wrong root hash: refused
#              (PERMISSION_DENIED), nothing of that layer stays, the rootfs over partition 3
#              still reads
#   vmtest-m4  `add --storages` of the three with partition 2's root hash wrong: exits 1
#              naming Storage 2, takes partition 1 back: nothing left
# Nothing is left at the end: no dm device, node, mount, listed entry or directory.
ML_ROOTS=$MOUNT_ROOT/shared/containers/passthrough
ML_LAYERS=$MOUNT_ROOT/multi-layer
GPT_SLOT=$(slot_of ml-gpt)
WHOLE_SLOT=$(slot_of ml-whole)
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")

ml_rootfs() { echo "$ML_ROOTS/$1/rootfs"; }
ml_var() { local v=ML_$1_$2; echo "${!v}"; } # ml_var ROOT|OFFSET|SALT|NOSB|TABLE N

# ml_storage N CID [ROOT]: Kata main's Storage (JSON) for layer N of CID's rootfs — 1-3:
# partition N of the GPT disk, 0: the whole-disk layer; ROOT replaces the root hash
ml_storage() {
  local n=$1 cid=$2 root=${3:-$(ml_var ROOT "$1")} src=$GPT_SLOT opts
  opts=(ro X-kata.overlay-lower X-kata.multi-layer=true)
  if [[ $n == 0 ]]; then
    src=$WHOLE_SLOT
  else
    opts+=(X-kata.gpt-partitioned=true "X-kata.partition-number=$n")
  fi
  # the first layer carries containerd's mkdir request for the upper, as runtime-rs forwards it
  [[ $n == 0 || $n == 1 ]] && opts+=("X-kata.mkdir.path=/var/lib/containerd/snapshots/$cid/fs:0755")
  opts+=(X-kata.dmverity-enabled=true "X-kata.dmverity.roothash=$root"
    "X-kata.dmverity.hashoffset=$(ml_var OFFSET "$n")" "X-kata.dmverity.no-superblock=$(ml_var NOSB "$n")"
    "X-kata.dmverity.salt=$(ml_var SALT "$n")")
  jq -cn --arg src "$src" --arg mp "$(ml_rootfs "$cid")" '$ARGS.positional as $o |
    {driver: "blk", source: $src, fstype: "erofs", options: $o, mount_point: $mp}' --args "${opts[@]}"
}
# ml_storages CID N… : a JSON array of those Storages into $TMP/CID.json (ROOT after a colon:
# N:ROOT gives layer N that root hash)
ml_storages() {
  local cid=$1 s
  shift
  for s in "$@"; do ml_storage "${s%%:*}" "$cid" "$([[ $s == *:* ]] && echo "${s#*:}")"; done | jq -s . >"$TMP/$cid.json"
}
# ml_add N CID [ROOT]: one Storage through `add` (the same fields as the JSON)
ml_add() {
  local j args=()
  j=$(ml_storage "$@")
  while IFS= read -r o; do args+=(--option "$o"); done < <(jq -r '.options[]' <<<"$j")
  kvh add --json --driver blk --source "$(jq -r .source <<<"$j")" --fstype erofs "${args[@]}" \
    --mount-point "$(jq -r .mount_point <<<"$j")"
}
wrong_root() { local r; r=$(ml_var ROOT "$1"); echo "${r:0:63}$(printf '%x' $(((16#${r:63:1} + 1) % 16)))"; }

# ml_overlay CID N…: one overlay at CID's rootfs over lower-N… in that order (top first), its
# upper and work directories beside them; sets ML_DIR (the container's layers directory)
ml_overlay() {
  local cid=$1 rootfs m n want lowers=()
  rootfs=$(ml_rootfs "$cid")
  shift
  m=$(ctl mountinfo "$rootfs")
  [[ $(grep -c . <<<"$m") == 1 && $m == *" - overlay overlay "* ]] || fail "$rootfs: not one overlay mount: $m"
  ML_DIR=$(sed -n 's/.*lowerdir=\([^:,]*\)\/lower-[0-9]*[:,].*/\1/p' <<<"$m")
  [[ $ML_DIR == "$ML_LAYERS/$cid-"* && ${ML_DIR#"$ML_LAYERS/"} != */* ]] || fail "$rootfs: the layers are not in $ML_LAYERS/$cid-…: $m"
  for n in "$@"; do lowers+=("$ML_DIR/lower-$n"); done
  want="lowerdir=$(IFS=:; echo "${lowers[*]}"),upperdir=$ML_DIR/upper/upper,workdir=$ML_DIR/upper/work"
  [[ $m == *" $want"* || $m == *",$want"* ]] || fail "$rootfs: the overlay's options are not '$want': $m"
  say "$rootfs: overlay $want"
}

# ml_layer N DISK: ML_DIR/lower-N is a read-only erofs on one of our dm-verity devices whose
# table is layer N's (data and hashes on DISK, the root hash, salt and hash start)
ml_layer() {
  local n=$1 disk=$2 mp=$ML_DIR/lower-$1 top name table devnum want
  top=$(ctl mountinfo "$mp" | tail -n 1)
  [[ $top == *" - erofs "* && " ${top%% - *}" == *" ro,"* ]] || fail "$mp is not a read-only erofs: ${top:-nothing}"
  name=$(ctl devname "$(awk '{ print $3 }' <<<"$top")" | awk '{ print $2 }')
  [[ $name == kata-volume-* ]] || fail "$mp is not on a dm device of ours: '$name'"
  table=$(ctl dm-table "$name") || fail "no table for $name"
  devnum=$(ctl disk-info "$disk" | sed -n 's/^devnum //p')
  [[ -n $devnum ]] || fail "no device number for $disk"
  want=$(ml_var TABLE "$n")
  want=${want/DEV DEV/$devnum $devnum}
  [[ $table == "$want" ]] || fail "$name over $disk: table '$table', want '$want'"
  say "$mp: erofs on $name over $disk: $table"
}

# ml_writes CID N…: writes into CID's rootfs (a new file, a copy-up of shared.txt) land in
# ML_DIR/upper/upper and in none of the layers N…; the first layer's mount cannot be written
ml_writes() {
  local cid=$1 rootfs upper=$ML_DIR/upper/upper n
  rootfs=$(ml_rootfs "$cid")
  shift
  ctl write "$rootfs/written.txt" "by-$cid" >/dev/null || fail "cannot write into $rootfs"
  ctl write "$rootfs/shared.txt" "changed-by-$cid" >/dev/null || fail "cannot change $rootfs/shared.txt"
  read_is "$rootfs/shared.txt" "changed-by-$cid"
  read_is "$upper/written.txt" "by-$cid"
  read_is "$upper/shared.txt" "changed-by-$cid"
  for n in "$@"; do
    [[ $(tree_of "$ML_DIR/lower-$n") != *written.txt* ]] || fail "written.txt appeared in layer $n"
  done
  ! ctl write "$ML_DIR/lower-$1/written.txt" x >/dev/null || fail "layer $1's mount could be written"
}

# ml_gone CID: nothing of CID's rootfs in the kernel, the daemon's list or the mount root
ml_gone() {
  guest_state
  ! our_mounts | grep -q -F -e "$(ml_rootfs "$1")" -e "$ML_LAYERS/$1-" || fail "$1: still mounted: $(our_mounts | tr '\n' ' ')"
  list_json
  [[ -z $(listed .mount_point) ]] || fail "$1: the daemon lists $(listed .mount_point | tr '\n' ' ')"
}

say "--- vmtest-m1: the GPT disk's three layers (slot $GPT_SLOT), Storages as Kata main sends them"
R1=$(ml_rootfs vmtest-m1)
ml_storages vmtest-m1 1 2 3
say "  $(jq -c '[.[] | {source, options: (.options | map(select(startswith("X-kata.partition") or startswith("X-kata.dmverity.no"))))}]' "$TMP/vmtest-m1.json")"
kvh add --json --storages "$TMP/vmtest-m1.json"
[[ $KVH_RC == 0 ]] || fail "add --storages of the three layers exited $KVH_RC"
[[ $(jq -r '[.[].mount_point] | unique | join(" ")' "$KVH_OUT") == "$R1" && $(jq length "$KVH_OUT") == 3 ]] ||
  fail "the answers are not three for $R1: $(jq -c '[.[].mount_point]' "$KVH_OUT")"
ml_overlay vmtest-m1 1 2 3
for n in 1 2 3; do ml_layer "$n" "${ML_GPT_DISK}$n"; done
guest_state
[[ $(kata_dms | wc -l) == 3 && $(kata_nodes | wc -l) == 3 ]] || fail "want 3 dm devices and nodes: $(tr '\n' ';' <"$TMP/state")"
check_layer_view "$R1"
ml_writes vmtest-m1 1 2 3
ctl remove "$R1/mid.txt" >/dev/null || fail "cannot delete $R1/mid.txt"
[[ $(tree_of "$ML_DIR/upper/upper") == *"c0:0 ./mid.txt"* ]] || fail "no whiteout of mid.txt in the upper directory"
read_is "$ML_DIR/lower-2/mid.txt" "mid layer"
for n in 1 2 3; do read_is "$ML_DIR/lower-$n/shared.txt" "shared.txt from $(sed -n "${n}p" <<<$'top\nmid\nbase')"; done
say "vmtest-m1: writes went to $ML_DIR/upper/upper (a file, a copy-up, a whiteout); the layers are unchanged"
list_json
[[ $(listed .mount_point) == "$R1" ]] || fail "listed: $(listed .mount_point | tr '\n' ' ') (want only the rootfs)"
# Kata main's agent releases a container's Storages by mount point, in add order: the rootfs,
# once per Storage. The first takes the overlay and every layer down; the others find nothing.
kvh remove --json --mount-point "$R1"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "remove of $R1: exit $KVH_RC"
expect_clean "after the rootfs's removal"
for n in 2 3; do
  kvh remove --json --mount-point "$R1"
  [[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == false ]] || fail "release $n of $R1: exit $KVH_RC, removed $(jq -r .removed "$KVH_OUT")"
done
ml_gone vmtest-m1
expect_root_as "after vmtest-m1" "$root_before"

say "--- vmtest-m2: one layer on a whole disk (slot $WHOLE_SLOT)"
ml_add 0 vmtest-m2
[[ $KVH_RC == 0 ]] || fail "the whole-disk layer's Storage exited $KVH_RC"
ml_overlay vmtest-m2 0
ml_layer 0 "$ML_WHOLE_DISK"
read_is "$(ml_rootfs vmtest-m2)/id.txt" "whole-disk layer"
ml_writes vmtest-m2 0
kvh remove --json --mount-point "$(ml_rootfs vmtest-m2)"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "remove of vmtest-m2's rootfs: exit $KVH_RC"
expect_clean "after vmtest-m2"
ml_gone vmtest-m2
expect_root_as "after vmtest-m2" "$root_before"

say "--- vmtest-m3: partition 3, then partition 1 with a wrong root hash"
R3=$(ml_rootfs vmtest-m3)
ml_add 3 vmtest-m3
[[ $KVH_RC == 0 ]] || fail "partition 3's Storage exited $KVH_RC"
ml_overlay vmtest-m3 3
guest_state
dms_before=$(kata_dms)
[[ $(grep -c . <<<"$dms_before") == 1 ]] || fail "want one dm device: $dms_before"
ml_add 1 vmtest-m3 "$(wrong_root 1)"
refused_with PERMISSION_DENIED "root hash" "partition 1 with a wrong root hash"
guest_state
[[ $(kata_dms) == "$dms_before" && $(kata_nodes) == "$dms_before" ]] ||
  fail "dm devices or nodes changed: $(tr '\n' ';' <"$TMP/state")"
[[ -z $(ctl mountinfo "$ML_DIR/lower-1") ]] || fail "$ML_DIR/lower-1 is mounted"
[[ $(tree_of "$ML_DIR") != *"./lower-1"* ]] || fail "$ML_DIR/lower-1 was left behind"
ml_overlay vmtest-m3 3
ml_layer 3 "${ML_GPT_DISK}3"
read_is "$R3/base.txt" "base layer"
list_json
[[ $(listed .mount_point) == "$R3" ]] || fail "listed: $(listed .mount_point | tr '\n' ' ')"
kvh remove --json --mount-point "$R3"
[[ $KVH_RC == 0 && $(jq -r .removed "$KVH_OUT") == true ]] || fail "remove of $R3: exit $KVH_RC"
expect_clean "after vmtest-m3"
ml_gone vmtest-m3
expect_root_as "after vmtest-m3" "$root_before"

say "--- vmtest-m4: all or nothing, partition 2's root hash wrong"
ml_storages vmtest-m4 1 "2:$(wrong_root 2)" 3
kvh add --json --storages "$TMP/vmtest-m4.json"
[[ $KVH_RC == 1 ]] || fail "add --storages with a wrong root hash exited $KVH_RC, want 1"
grep -q "^error: Storage 2 of 3 .*root hash.*(PERMISSION_DENIED)$" "$KVH_ERR" ||
  fail "the error does not name Storage 2, the root hash and PERMISSION_DENIED: $(head -c 400 "$KVH_ERR")"
grep -qF "(the 1 Storage added before it was removed)" "$KVH_ERR" || fail "the error does not say that the first Storage was taken back"
expect_clean "after the failed list"
ml_gone vmtest-m4
expect_root_as "after" "$root_before"
say "ok"
