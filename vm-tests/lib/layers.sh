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
