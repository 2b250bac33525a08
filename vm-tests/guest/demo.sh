# Demo (vm-tests/run --demo): one dm-verity protected volume, shown step by step, then a
# corrupted disk being caught. Human-readable; runs inside the test VM.
MP=$MOUNT_ROOT/demo
BAD=$MOUNT_ROOT/demo-corrupt
h() { printf '\n==== %s\n' "$*"; }
run() { echo "\$ $*"; "$@" 2>&1; }

echo "kata-volume under test: $(command -v "$KV") ($(stat -c %s "$(command -v "$KV")") bytes)"
h "the request: a Kata virtual volume (tarfs layout: 512-byte data blocks, 4 KiB hash blocks)"
echo "option: ${OPT_512:0:60}…"
echo "decoded: $(echo "${OPT_512#io.katacontainers.volume=}" | base64 -d)"
echo "disk $TARFS512_DISK: $(cat "/sys/block/${TARFS512_DISK##*/}/size") sectors of 512 bytes; data $DATA_SIZE bytes, then the hash tree"

h "mount it with kata-volume"
kv mount --json "$OPT_512" --device "$TARFS512_DISK" "$MP"

h "what the kernel has now"
for d in /sys/block/dm-*; do
  [ -e "$d/dm/name" ] && echo "/dev/${d##*/}: name $(cat "$d/dm/name"), read-only $(cat "$d/ro"), on $(ls "$d/slaves" | tr '\n' ' ')"
done
name=$(cat "/sys/dev/block/$(mounts_at "$MP" | awk '{ print $3 }')/dm/name" 2>/dev/null)
if [ -n "$name" ]; then
  echo "table:  $(dms table "$name")"
  echo "status: $(dms status "$name")   (last field: V = verified so far, C = corruption seen)"
fi
echo "mount:  $(mounts_at "$MP" | awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 2) " on " $5 " type " $(i + 1) " (" $6 ")"; exit } }')"

h "reading through dm-verity"
echo "\$ find $MP -type f | xargs ls -l"
(cd "$MP" && find . -type f | sort | while IFS= read -r f; do ls -l "$f"; done)
run cat "$MP/hello.txt"
echo "sha256 of every file, checked against the host's:"
(cd "$MP" && sha256sum -c "$MANIFEST")

h "a disk with one flipped byte (offset $CORRUPT_OFFSET, inside $CORRUPT_FILE), same root hash"
dmesg -c >/dev/null
kv mount --json "$OPT_512" --device "$CORRUPT_DISK" "$BAD"
run cat "$BAD/hello.txt"
echo "\$ sha256sum $BAD/$CORRUPT_FILE"
sha256sum "$BAD/$CORRUPT_FILE" 2>&1
echo "kernel log:"
dmesg | grep verity | head -n 3 | sed 's/^/  /'
bad=$(cat "/sys/dev/block/$(mounts_at "$BAD" | awk '{ print $3 }')/dm/name" 2>/dev/null)
[ -n "$bad" ] && echo "status: $(dms status "$bad")"

h "a wrong root hash: the request is refused"
kv mount --json "$OPT_WRONG" --device "$TARFS512_DISK" "$MOUNT_ROOT/demo-wrong"

h "teardown"
kv umount "$MP"
kv umount "$BAD"
kv umount "$MOUNT_ROOT/demo-wrong"
left=$(ls /sys/block | grep '^dm-' | tr '\n' ' ')
echo "dm devices left: ${left:-none}"
echo "mounts under $MOUNT_ROOT: $(mounts_under "$MOUNT_ROOT" | wc -l)"
