# shellcheck shell=bash
# Test images, built on the host under $WORK/images:
#   plain.erofs    erofs image of $WORK/images/src (direct_block volume)
#   tarfs512.img   + hash tree appended in place: 512-byte data blocks, 4 KiB hash blocks
#   verity4k.img   + hash tree in place: 4 KiB data and hash blocks, the tree starting
#                  VERITY4K_GAP bytes after the data's end (the table's hash start is the
#                  offset in hash blocks, not the data's end)
#   corrupt.img    tarfs512.img with one byte flipped inside big/seq.txt
#   small/NN.img   SMALL_N small distinct layers (tarfs layout), used from a tmpfs as files
#   formats/*.img  one small layer in other verity formats (salt, hash type 0, superblock)
#   scsi.img       a small verity layer with a marker line at byte 0: the virtio-scsi disk
#                  (lib/layers.sh)
#   hotplug.img    1 MiB, another marker: the disk the resolve scenario hot-plugs through QMP
#   layers/*.img   three container image layers with whiteouts (lib/layers.sh)
#   multilayer/{gpt,whole}.img   Kata main's multi-layer disks: the three layers in GPT
#                  partitions, and one layer on a whole disk (lib/layers.sh)
# plus the sha256 manifest of the source tree and the guest's params.sh (root hashes,
# expected dm tables, base64 volume options, and the trust material of lib/trust.sh: a
# signer's certificate and root-hash signatures). The volumes' "source" is what the guest
# usually sees (disks in qemu's order); the CLI is told the real device with --device.

OPT_PREFIX=io.katacontainers.volume=

# shellcheck source=trust.sh
. "$HERE/lib/trust.sh"

make_source_tree() {
  local s=$1
  mkdir -p "$s/big" "$s/a/b/c" "$s/empty-dir"
  echo "hello from erofs via dm-verity" >"$s/hello.txt"
  : >"$s/empty"
  echo "three levels down" >"$s/a/b/c/deep.txt"
  printf 'spaces in the name\n' >"$s/a/name with spaces.txt"
  # ~2.6 MiB with a unique marker in the middle: the corruption target
  { seq 1 200000; echo VMTEST-CORRUPTION-TARGET; seq 200001 400000; } >"$s/big/seq.txt"
  head -c 1300000 < <(yes "deterministic filler line") >"$s/big/filler.txt"
  head -c 1572864 /dev/urandom >"$s/big/random.bin"
}

# Bytes between the data's end and the tree in verity4k.img: three hash blocks.
VERITY4K_GAP=12288

# veritysetup format … img img: write the tree in place at byte offset $4 (default $2, the
# data size: appended); prints the root hash.
append_tree() {
  local img=$1 size=$2 dbs=$3 hoff=${4:-$2} out root
  out=$(veritysetup format --no-superblock --salt=- --data-block-size="$dbs" \
    --hash-block-size=4096 --data-blocks=$((size / dbs)) --hash-offset="$hoff" "$img" "$img")
  root=$(awk -F':[ \t]*' '$1 == "Root hash" {print $2}' <<<"$out")
  [[ $root =~ ^[0-9a-f]{64}$ ]] || die "veritysetup gave no root hash for $img: $out"
  # reference check with the same parameters
  veritysetup verify --no-superblock --salt=- --data-block-size="$dbs" --hash-block-size=4096 \
    --data-blocks=$((size / dbs)) --hash-offset="$hoff" "$img" "$img" "$root" >&2 ||
    die "veritysetup verify failed on $img"
  echo "$root"
}

verity_option() { # root blocknum blocksize offset source
  printf '{"volume_type":"layer_raw_block","source":"%s","fs_type":"erofs","dm_verity":{"hashtype":"sha256","hash":"%s","blocknum":%s,"blocksize":%s,"hashsize":4096,"offset":%s}}' \
    "$5" "$1" "$2" "$3" "$4"
}

b64_option() { printf '%s%s' "$OPT_PREFIX" "$(printf '%s' "$1" | base64 -w0)"; }

# marker_disk FILE MARKER: a 1 MiB disk image whose first line is MARKER
marker_disk() {
  printf '%s\n' "$2" >"$1"
  truncate -s 1M "$1"
}

build_images() {
  local d=$WORK/images size off n root512 root4k wrong
  rm -rf "$d"
  mkdir -p "$d"
  make_source_tree "$d/src"
  (cd "$d/src" && find . -type f | LC_ALL=C sort | while IFS= read -r f; do sha256sum "$f"; done) >"$d/manifest.sha256"

  mkfs.erofs -T0 -U 6a1a3b7e-0000-4000-8000-00000000c0de --all-root --quiet "$d/plain.erofs" "$d/src" >&2
  size=$(stat -c %s "$d/plain.erofs")
  ((size % 4096 == 0)) || die "erofs image size $size is not 4 KiB aligned"

  cp "$d/plain.erofs" "$d/tarfs512.img"
  root512=$(append_tree "$d/tarfs512.img" "$size" 512)
  cp "$d/plain.erofs" "$d/verity4k.img"
  root4k=$(append_tree "$d/verity4k.img" "$size" 4096 $((size + VERITY4K_GAP)))
  # the gap is there and untouched (zeros) and the tree starts after it
  cmp -n "$VERITY4K_GAP" -i "$size:0" "$d/verity4k.img" /dev/zero ||
    die "veritysetup wrote into the gap of verity4k.img"
  (($(stat -c %s "$d/verity4k.img") > size + VERITY4K_GAP)) || die "verity4k.img has no tree after the gap"
  cmp -n "$size" "$d/plain.erofs" "$d/tarfs512.img" || die "veritysetup changed the data area"

  # flip one byte of the marker line inside big/seq.txt's data
  n=$(grep -coa VMTEST-CORRUPTION-TARGET "$d/plain.erofs")
  [[ $n == 1 ]] || die "corruption marker found $n times in the image (want 1)"
  off=$(grep -boa VMTEST-CORRUPTION-TARGET "$d/plain.erofs" | cut -d: -f1)
  cp "$d/tarfs512.img" "$d/corrupt.img"
  printf 'X' | dd of="$d/corrupt.img" bs=1 seek="$off" conv=notrunc status=none
  if veritysetup verify --no-superblock --salt=- --data-block-size=512 --data-blocks=$((size / 512)) \
    --hash-offset="$size" "$d/corrupt.img" "$d/corrupt.img" "$root512" >/dev/null 2>&1; then
    die "veritysetup did not notice the corruption"
  fi
  # a root hash that differs in its last digit
  wrong=${root512:0:63}$(printf '%x' $(((16#${root512:63:1} + 1) % 16)))

  local j512 j4k jwrong jplain
  j512=$(verity_option "$root512" $((size / 512)) 512 "$size" /dev/vda)
  j4k=$(verity_option "$root4k" $((size / 4096)) 4096 $((size + VERITY4K_GAP)) /dev/vdb)
  jwrong=$(verity_option "$wrong" $((size / 512)) 512 "$size" /dev/vda)
  jplain='{"volume_type":"direct_block","source":"/dev/vdd","fs_type":"erofs","direct_volume":{"metadata":{"k":"v"}}}'
  cat >"$d/params.sh" <<PARAMS
# generated by vm-tests/lib/images.sh
DATA_SIZE=$size
ROOT_512=$root512
ROOT_4K=$root4k
ROOT_WRONG=$wrong
# expected dm tables without the two device fields: <sectors> <dbs> <hbs> <blocks> <hash_start>
TABLE_512="0 $((size / 512)) verity 1 DEV DEV 512 4096 $((size / 512)) $((size / 4096)) sha256 $root512 -"
TABLE_4K="0 $((size / 512)) verity 1 DEV DEV 4096 4096 $((size / 4096)) $(((size + VERITY4K_GAP) / 4096)) sha256 $root4k -"
CORRUPT_FILE=big/seq.txt
CORRUPT_OFFSET=$off
CORRUPT_BLOCK=$((off / 512))
INTACT_FILE=hello.txt
OPT_512='$(b64_option "$j512")'
OPT_4K='$(b64_option "$j4k")'
OPT_WRONG='$(b64_option "$jwrong")'
OPT_PLAIN='$(b64_option "$jplain")'
PARAMS
  build_scsi_image "$d" VMTEST-SCSI-DISK >>"$d/params.sh"
  marker_disk "$d/hotplug.img" VMTEST-HOTPLUG-DISK
  echo "SCSI_MARKER=VMTEST-SCSI-DISK HOTPLUG_MARKER=VMTEST-HOTPLUG-DISK" >>"$d/params.sh"
  build_layer_images "$d" >>"$d/params.sh"
  build_multilayer_images "$d" >>"$d/params.sh"
  build_small_images "$d" >>"$d/params.sh"
  build_format_images "$d" >>"$d/params.sh"
  build_trust_material "$d" "$root512" "$root4k" >>"$d/params.sh"
  log "images: erofs $size bytes ($((size / 512)) x 512 / $((size / 4096)) x 4096 data blocks)," \
    "root512=${root512:0:12}… root4k=${root4k:0:12}… corrupted byte @$off (512-block $((off / 512)))"
}

# Small distinct layers for the daemon scenarios and the benchmark: each a 64 KiB file with
# its own content (so its own root hash), 512-byte data blocks, the tree appended. In the
# guest they live in SMALL_DIR (a tmpfs) and are file sources (loop devices). Prints the
# params: SMALL_N, SMALL_IDS (01 02 …), then per image NN: SMALL_SIZE_NN (data bytes = hash
# tree offset), SMALL_ROOT_NN, OPT_SMALL_NN.
SMALL_DIR=/run/vmtest-images
build_small_images() {
  local d=$1/small i n=${VM_SMALL_IMAGES:-20} size root
  mkdir -p "$d"
  echo "SMALL_N=$n"
  echo "SMALL_IDS='$(seq -f %02g -s ' ' 1 "$n")'"
  echo "SMALL_DIR=$SMALL_DIR"
  for i in $(seq -f %02g 1 "$n"); do
    mkdir -p "$d/src$i"
    echo "small layer $i" >"$d/src$i/id.txt"
    head -c 65536 < <(yes "filler of small layer $i") >"$d/src$i/data.txt"
    mkfs.erofs -T0 -U "6a1a3b7e-0000-4000-8000-0000000000$i" --all-root --quiet "$d/$i.img" "$d/src$i" >&2
    size=$(stat -c %s "$d/$i.img")
    root=$(append_tree "$d/$i.img" "$size" 512)
    rm -rf "$d/src$i"
    echo "SMALL_SIZE_$i=$size"
    echo "SMALL_ROOT_$i=$root"
    echo "OPT_SMALL_$i='$(b64_option "$(verity_option "$root" $((size / 512)) 512 "$size" "$SMALL_DIR/$i.img")")'"
  done
}

# One small layer in the dm_verity formats beyond the seed producers' (issue 12), each made by
# veritysetup: ID:ALG:DATA_BLOCK_SIZE:HASH_TYPE:SALT:SUPERBLOCK. In the guest they are file
# sources in SMALL_DIR. Prints FORMAT_IDS, FORMAT_FILE_SHA (sha256 of big.txt), and per
# variant X: FORMAT_TABLE_X (the expected table, devices as DEV) and OPT_FORMAT_X.
FORMAT_VARIANTS=(
  "sb1:sha256:4096:1:a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5:yes"
  "sb0:sha256:512:0:0011223344:yes"
  "v0sha1:sha1:4096:0:c0ffee:no"
  "salt512:sha256:512:1:ab:no"
)
build_format_images() {
  local d=$1/formats v id alg dbs ht salt sb size offset out root flags start json ids=""
  mkdir -p "$d/src"
  echo "verity formats layer" >"$d/src/id.txt"
  # > 128 data blocks of 4 KiB, so every variant's tree has two levels
  head -c 700000 < <(yes "format variants filler") >"$d/src/big.txt"
  mkfs.erofs -T0 -U 6a1a3b7e-0000-4000-8000-0000000f0000 --all-root --quiet "$d/plain.erofs" "$d/src" >&2
  size=$(stat -c %s "$d/plain.erofs")
  echo "FORMAT_FILE_SHA=$(sha256sum <"$d/src/big.txt" | cut -d' ' -f1)"
  for v in "${FORMAT_VARIANTS[@]}"; do
    IFS=: read -r id alg dbs ht salt sb <<<"$v"
    offset=$size
    flags=(--hash="$alg" --data-block-size="$dbs" --hash-block-size=4096 --data-blocks=$((size / dbs))
      --hash-offset="$offset" --format="$ht" --salt="$salt")
    [[ $sb == yes ]] || flags+=(--no-superblock)
    cp "$d/plain.erofs" "$d/$id.img"
    out=$(veritysetup format "${flags[@]}" "$d/$id.img" "$d/$id.img")
    root=$(awk -F':[ \t]*' '$1 == "Root hash" {print $2}' <<<"$out")
    [[ $root =~ ^[0-9a-f]{40,64}$ ]] || die "veritysetup gave no root hash for $id: $out"
    veritysetup verify "${flags[@]}" "$d/$id.img" "$d/$id.img" "$root" >&2 ||
      die "veritysetup verify failed on $id"
    start=$((offset / 4096))
    [[ $sb == yes ]] && start=$((start + 1))
    json=$(printf '{"volume_type":"layer_raw_block","source":"%s","fs_type":"erofs","dm_verity":{"hashtype":"%s","hash":"%s","blocknum":%s,"blocksize":%s,"hashsize":4096,"offset":%s,"salt":"%s","hash_type":%s,"no_superblock":%s}}' \
      "$SMALL_DIR/fmt-$id.img" "$alg" "$root" $((size / dbs)) "$dbs" "$offset" "$salt" "$ht" \
      "$([[ $sb == yes ]] && echo false || echo true)")
    echo "FORMAT_TABLE_$id='0 $((size / 512)) verity $ht DEV DEV $dbs 4096 $((size / dbs)) $start $alg $root $salt'"
    echo "OPT_FORMAT_$id='$(b64_option "$json")'"
    ids="$ids $id"
  done
  rm -rf "$d/src" "$d/plain.erofs"
  echo "FORMAT_IDS='${ids# }'"
}
