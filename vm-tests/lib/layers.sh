# shellcheck shell=bash
# The images a Kata runtime would hot-plug as disks (issue 12), built under $WORK/images:
#   layers/{base,mid,top}.img   three container image layers (erofs, hash tree appended,
#                               512-byte data blocks), attached at pinned PCI slots (lib/vm.sh)
#   scsi.img                    a small verity layer for the virtio-scsi disk, with a marker
#                               line at byte 0 (erofs leaves its first 1 KiB to a boot loader)
#
# Stacked top first (top:mid:base), the layers show overlayfs' rules:
#   shared.txt   in all three: the top layer's copy wins
#   gone.txt     a file in base, a whiteout (character device 0:0) in top: hidden
#   data/        base has a.txt and b.txt, mid has c.txt and a whiteout of b.txt: a.txt, c.txt
#   opaque/      base has old1.txt and old2.txt; top's opaque/ carries trusted.overlay.opaque=y
#                and new.txt: only new.txt shows
# plus one file of each layer's own (base.txt, mid.txt, top.txt) and 64 KiB of filler in base.
# Prints the params: per layer X (base, mid, top): LAYER_ROOT_X, LAYER_HOST_X (the image's
# path on a host, as a snapshotter names it), OPT_LAYER_X (the volume option, source
# LAYER_HOST_X); ROOTFS_TREE (the merged view in the agent's `tree` format, top:mid:base);
# SCSI_ROOT, OPT_SCSI.

LAYER_NAMES=(base mid top)
LAYER_HOST_DIR=/var/lib/containerd-nydus/cache

# set_opaque DIR: mark DIR opaque for overlayfs (the xattr is kept by mkfs.erofs)
set_opaque() {
  python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")' "$1" ||
    die "cannot set trusted.overlay.opaque on $1 (run as root on a filesystem with trusted xattrs)"
}

# whiteout PATH: an overlayfs whiteout (character device 0:0)
whiteout() { mknod "$1" c 0 0 || die "cannot make the whiteout $1 (run as root)"; }

layer_tree() { # NAME DIR: the layer's files
  local n=$1 s=$2
  mkdir -p "$s"
  echo "$n layer" >"$s/$n.txt"
  echo "shared.txt from $n" >"$s/shared.txt"
  case $n in
    base)
      mkdir -p "$s/etc" "$s/data" "$s/opaque"
      echo "ID=vmtest-base" >"$s/etc/os-release"
      echo "gone.txt from base" >"$s/gone.txt"
      echo "a from base" >"$s/data/a.txt"
      echo "b from base" >"$s/data/b.txt"
      echo "old1 from base" >"$s/opaque/old1.txt"
      echo "old2 from base" >"$s/opaque/old2.txt"
      head -c 65536 < <(yes "filler of the base layer") >"$s/filler.txt"
      ;;
    mid)
      mkdir -p "$s/data"
      echo "c from mid" >"$s/data/c.txt"
      whiteout "$s/data/b.txt"
      ;;
    top)
      mkdir -p "$s/opaque"
      echo "new from top" >"$s/opaque/new.txt"
      set_opaque "$s/opaque"
      whiteout "$s/gone.txt"
      ;;
  esac
}

# The merged view of top:mid:base (what every rootfs over the three must show)
ROOTFS_TREE_TEXT='f ./base.txt
d ./data
f ./data/a.txt
f ./data/c.txt
d ./etc
f ./etc/os-release
f ./filler.txt
f ./mid.txt
d ./opaque
f ./opaque/new.txt
f ./shared.txt
f ./top.txt'

# verity_layer IMG SRC UUID: an erofs image of SRC with its tree appended; prints the params'
# size and root as "SIZE ROOT"
verity_layer() {
  local img=$1 src=$2 uuid=$3 size root
  mkfs.erofs -T0 -U "$uuid" --all-root --quiet "$img" "$src" >&2
  size=$(stat -c %s "$img")
  ((size % 4096 == 0)) || die "erofs image $img is $size bytes, not 4 KiB aligned"
  root=$(append_tree "$img" "$size" 512)
  echo "$size $root"
}

build_layer_images() {
  local d=$1/layers n i=0 size root json
  mkdir -p "$d"
  for n in "${LAYER_NAMES[@]}"; do
    i=$((i + 1))
    layer_tree "$n" "$d/src-$n"
    read -r size root < <(verity_layer "$d/$n.img" "$d/src-$n" "6a1a3b7e-0000-4000-8000-0000001a000$i")
    rm -rf "$d/src-$n"
    json=$(verity_option "$root" $((size / 512)) 512 "$size" "$LAYER_HOST_DIR/$n.layer.disk")
    echo "LAYER_ROOT_$n=$root"
    echo "LAYER_HOST_$n=$LAYER_HOST_DIR/$n.layer.disk"
    echo "OPT_LAYER_$n='$(b64_option "$json")'"
  done
  echo "LAYER_NAMES='${LAYER_NAMES[*]}'"
  echo "ROOTFS_TREE='$ROOTFS_TREE_TEXT'"
}

# The SCSI disk: a verity layer whose first line (in the erofs image's unused first KiB,
# covered by the hash tree like the rest) is the marker the resolve scenario looks for.
build_scsi_image() {
  local d=$1 marker=$2 size root
  mkdir -p "$d/src-scsi"
  echo "scsi layer" >"$d/src-scsi/id.txt"
  mkfs.erofs -T0 -U 6a1a3b7e-0000-4000-8000-00000005c510 --all-root --quiet "$d/scsi.img" "$d/src-scsi" >&2
  rm -rf "$d/src-scsi"
  cmp -s -n 1024 "$d/scsi.img" /dev/zero || die "mkfs.erofs wrote into the first KiB of scsi.img"
  printf '%s\n' "$marker" | dd of="$d/scsi.img" conv=notrunc status=none
  size=$(stat -c %s "$d/scsi.img")
  root=$(append_tree "$d/scsi.img" "$size" 512)
  echo "SCSI_ROOT=$root"
  echo "OPT_SCSI='$(b64_option "$(verity_option "$root" $((size / 512)) 512 "$size" /dev/sda)")'"
}

# ---------------------------------------------------------------- Kata main's multi-layer shape
# The disks of Kata main's multi-layer erofs rootfs (issue 12, shape 4), under
# $WORK/images/multilayer/, in Kata main's verity format: 4 KiB data and hash blocks, sha256,
# version 1, the tree (after a superblock, or not) at X-kata.dmverity.hashoffset = the
# erofs image's size, a salt given:
#   gpt.img    a GPT disk, one partition per layer at a 1 MiB boundary (LBA 2048 first), in
#              Kata main's order: partition 1 the highest layer (the top tree of layer_tree),
#              2 mid, 3 base; each partition holds the layer's erofs image and tree
#   whole.img  one layer on the whole disk (its own tree: id.txt, shared.txt, filler.txt)
# ML_FORMATS: per layer N (1-3 the partitions, 0 the whole disk) NAME:SALT:SUPERBLOCK.
ML_FORMATS=(
  "1:top:7e57a1ab1e5a1700c0ffee0123456789abcdef0123456789abcdef01234567:yes"
  "2:mid:0000000000000000000000000000000000000000000000000000000000000000:no"
  "3:base:b5b5:no"
  "0:whole:5a17:yes"
)

# ml_verity_layer IMG SALT SUPERBLOCK: writes the tree of the erofs image IMG after its data
# (after a superblock when SUPERBLOCK is yes) and checks it with `veritysetup verify`; prints
# "DATA_SIZE ROOT"
ml_verity_layer() {
  local img=$1 salt=$2 sb=$3 size out root flags
  size=$(stat -c %s "$img")
  ((size % 4096 == 0)) || die "erofs image $img is $size bytes, not 4 KiB aligned"
  flags=(--hash=sha256 --format=1 --data-block-size=4096 --hash-block-size=4096
    --data-blocks=$((size / 4096)) --hash-offset="$size" --salt="$salt")
  [[ $sb == yes ]] || flags+=(--no-superblock)
  out=$(veritysetup format "${flags[@]}" "$img" "$img")
  root=$(awk -F':[ \t]*' '$1 == "Root hash" {print $2}' <<<"$out")
  [[ $root =~ ^[0-9a-f]{64}$ ]] || die "veritysetup gave no root hash for $img: $out"
  veritysetup verify "${flags[@]}" "$img" "$img" "$root" >&2 || die "veritysetup verify failed on $img"
  echo "$size $root"
}

# ml_gpt_disk DISK IMG…: a GPT disk holding each image in its own partition (1, 2, … in the
# order given), each starting at a 1 MiB boundary; checks the partitions' contents
ml_gpt_disk() {
  local disk=$1 img start=2048 sectors script="label: gpt" n=0 got
  shift
  for img in "$@"; do
    n=$((n + 1))
    sectors=$(((($(stat -c %s "$img") + 1048575) / 1048576) * 2048)) # whole MiB
    script+=$'\n'"start=$start, size=$sectors, name=layer$n"
    start=$((start + sectors))
  done
  rm -f "$disk"
  truncate -s $(((start + 2048) * 512)) "$disk"
  sfdisk --quiet "$disk" <<<"$script" >&2 || die "sfdisk could not partition $disk"
  n=0
  for img in "$@"; do
    n=$((n + 1))
    start=$(sfdisk --json "$disk" | jq -r ".partitiontable.partitions[$((n - 1))].start")
    [[ $start =~ ^[0-9]+$ && $((start % 2048)) == 0 ]] || die "partition $n of $disk starts at '$start'"
    dd if="$img" of="$disk" bs=512 seek="$start" conv=notrunc status=none
    got=$(stat -c %s "$img")
    cmp -n "$got" "$img" - < <(tail -c +$((start * 512 + 1)) "$disk") >/dev/null ||
      die "partition $n of $disk does not hold $img"
  done
}

build_multilayer_images() {
  local d=$1/multilayer f id name salt sb size root start imgs=() uuid
  mkdir -p "$d"
  for f in "${ML_FORMATS[@]}"; do
    IFS=: read -r id name salt sb <<<"$f"
    if [[ $id == 0 ]]; then
      mkdir -p "$d/src-$name"
      echo "whole-disk layer" >"$d/src-$name/id.txt"
      echo "shared.txt from the whole disk" >"$d/src-$name/shared.txt"
      head -c 300000 < <(yes "filler of the whole-disk layer") >"$d/src-$name/filler.txt"
    else
      layer_tree "$name" "$d/src-$name"
    fi
    uuid=6a1a3b7e-0000-4000-8000-00000031a00$id
    mkfs.erofs -T0 -U "$uuid" --all-root --quiet "$d/$name.img" "$d/src-$name" >&2
    rm -rf "$d/src-$name"
    read -r size root < <(ml_verity_layer "$d/$name.img" "$salt" "$sb")
    start=$((size / 4096))
    [[ $sb == yes ]] && start=$((start + 1))
    echo "ML_ROOT_$id=$root"
    echo "ML_OFFSET_$id=$size"
    echo "ML_SALT_$id=$salt"
    echo "ML_NOSB_$id=$([[ $sb == yes ]] && echo false || echo true)"
    echo "ML_TABLE_$id='0 $((size / 512)) verity 1 DEV DEV 4096 4096 $((size / 4096)) $start sha256 $root $salt'"
    [[ $id == 0 ]] || imgs+=("$d/$name.img")
  done
  ml_gpt_disk "$d/gpt.img" "${imgs[@]}"
  rm -f "${imgs[@]}"
  echo "ML_PARTITIONS='1 2 3'"
}
