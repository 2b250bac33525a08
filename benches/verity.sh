#!/usr/bin/env bash
# Benchmark: `kata-volume format`/`verify` against `veritysetup format`/`verify` on the same
# image with the same parameters (no superblock, no salt, tree in the image after the data),
# and against the machine's limit for the hashing alone (benches/sha-ceiling).
#
#   benches/verity.sh [RUNS]          (default 5 runs per tool and operation)
#
# Environment: SIZE_MIB (default 1024); BENCH_DIR (default target/verity-bench, on the
# checkout's filesystem: after the first run both tools read the image from the page cache,
# and both fsync the tree they write; a tmpfs such as /dev/shm works too, but its 4 KiB page
# cache makes every read dearer for both); KV_BIN (default: builds target/release/kata-volume);
# LAYOUTS (default "512/4096 4096/4096", data/hash block sizes); WRITE_BS (default 2M, with
# an IEC suffix: the size of the writes that make the image, see below); CPUS (e.g. "0": run
# both tools under `taskset -c CPUS`); COLD=1 drops the image from the page cache before every
# run (both tools then read it from the disk; see below).
# Runs alternate between the tools; each figure is the median; ratio = veritysetup / ours.
#
# The bound: benches/sha-ceiling, run just before each kata-volume run, measures how fast all
# cores together hash messages of the layout's two block sizes with the engine's own SHA-256
# (two lanes on the SHA extensions where the CPU has them), from cache. The least time a tree
# can take is then data bytes / rate(data block size) + tree bytes / rate(hash block size)
# (every data block and every hash block is hashed once); "of bound" = that time /
# kata-volume's time, for each run against the bound measured just before it (a shared
# virtual machine's speed drifts by 10% and more within a minute), median of the runs. "CPU"
# beside it: the same from CPU time (the ceiling's rates per second of its threads' CPU time /
# kata-volume's user + system seconds), which other work on the machine disturbs less.
# Cold (COLD=1): `dd iflag=nocache count=0` drops the image's pages before each run. In a
# virtual machine the disk behind is the host's, which may still cache it: say so when quoting.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
size_mib=${SIZE_MIB:-1024}
layouts=${LAYOUTS:-"512/4096 4096/4096"}
dir=${BENCH_DIR:-target/verity-bench}
cold=${COLD:-0}
command -v veritysetup >/dev/null || { echo "veritysetup not found (apt-get install cryptsetup-bin)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
# The ceiling is built with the tool's features, so the library is compiled once for both.
ceiling_bin=$(cargo build --release --quiet --features cli --bin kata-volume --bench sha-ceiling \
  --message-format=json-render-diagnostics | grep -o '"executable":"[^"]*sha_ceiling[^"]*"' | cut -d'"' -f4)
[[ -x $ceiling_bin ]] || { echo "benches/sha-ceiling did not build" >&2; exit 1; }
KV_BIN=${KV_BIN:-$PWD/target/release/kata-volume}
mkdir -p "$dir"
img=$dir/image
trap 'rm -f "$img"' EXIT

pin=()
[[ -z ${CPUS:-} ]] || pin=(taskset -c "$CPUS")
cores=$("${pin[@]}" nproc)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores," \
  "sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no), kernel $(uname -r)"
echo "tools:   $(veritysetup --version), $("$KV_BIN" --version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows the two-thread tool more)"
echo "image:   $size_mib MiB in $dir ($(df --output=fstype "$dir" | tail -1)), $runs runs each," \
  "$([[ $cold == 1 ]] && echo "cold: dropped from the page cache before every run" || echo "warm page cache")"
echo
"$ceiling_bin" --rounds 3 --seconds 0.5 | grep -v '^ceiling'

# Written in 2 MiB pieces, as programs that copy images in large buffers do: the page cache
# then holds it in 2 MiB folios, which kata-volume maps with one entry each. (Written in
# small pieces, WRITE_BS=4K, it is cached in small folios and mapping it costs kata-volume a
# few % more; read from disk by kata-volume itself, COLD=1, it is cached in 2 MiB folios
# whoever wrote it.)
write_bs=$(numfmt --from=iec "${WRITE_BS:-2M}")
dd if=/dev/urandom of="$img" bs="$write_bs" count=$(((size_mib << 20) / write_bs)) iflag=fullblock status=none
sync "$img"

# Runs a command; prints "wall cpu" seconds (cpu = user + system); its output goes to $dir/out.
timed() {
  local t0 t1
  [[ $cold == 1 ]] && dd if="$img" iflag=nocache count=0 status=none
  t0=$(date +%s%N)
  "${pin[@]}" /usr/bin/time -f "%U %S" -o "$dir/time" "$@" >"$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" '{printf "%.4f %.2f\n", (b-a)/1e9, $1 + $2}' "$dir/time"
}
# Median of column $1 of the lines on standard input.
median() { awk -v c="$1" '{print $c}' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# The least time the hashing of a tree takes: data blocks $1 of $2 bytes, hash blocks of $3
# bytes; prints "wall cpu" seconds from the rates (bytes/s) of both sizes, wall $4 $5, cpu $6 $7.
bound() {
  local blocks=$1 dbs=$2 hbs=$3 n=$1 tree=0
  while ((n > 1)); do n=$(((n * 32 + hbs - 1) / hbs)); tree=$((tree + n)); done
  awk -v d="$((blocks * dbs))" -v t="$((tree * hbs))" -v w1="$4" -v w2="$5" -v c1="$6" -v c2="$7" \
    'BEGIN {printf "%.4f %.4f\n", d/w1 + t/w2, d/c1 + t/c2}'
}

# Measures the rates of the layout's two block sizes now and prints the bound ("wall cpu").
measure_bound() {
  local rates
  rates=$("$ceiling_bin" --rounds 1 --seconds 0.3 --sizes "$2,$3" |
    awk -v d="$2" -v h="$3" '/^ceiling/ {w[$2] = $3; c[$2] = $4} END {print w[d], w[h], c[d], c[h]}')
  bound "$1" "$2" "$3" $rates
}

printf "\n| data/hash block | op | kata-volume s (CPU s) | veritysetup s (CPU s) | ratio | kata-volume MB/s | bound s (CPU s) | of bound (CPU) |\n"
printf "|---|---|---|---|---|---|---|---|\n"
for layout in $layouts; do
  dbs=${layout%/*} hbs=${layout#*/}
  blocks=$(((size_mib << 20) / dbs))
  offset=$((size_mib << 20))
  common=(--data-block-size="$dbs" --hash-block-size="$hbs" --data-blocks="$blocks" --hash-offset="$offset")
  vs=(--no-superblock --format=1 --hash=sha256 --salt=- "${common[@]}")
  kv_format=() vs_format=() kv_verify=() vs_verify=() bound_format=() bound_verify=()
  root=""
  for ((i = 0; i < runs; i++)); do
    bound_format+=("$(measure_bound "$blocks" "$dbs" "$hbs")")
    kv_format+=("$(timed "$KV_BIN" format --json "${common[@]}" "$img")")
    ours=$(sed -n 's/.*"root_hash": "\(.*\)".*/\1/p' "$dir/out")
    vs_format+=("$(timed veritysetup format "${vs[@]}" "$img" "$img")")
    root=$(awk '/^Root hash:/ {print $3}' "$dir/out")
    [[ $ours == "$root" ]] || { echo "root hashes differ: $ours vs $root" >&2; exit 1; }
    bound_verify+=("$(measure_bound "$blocks" "$dbs" "$hbs")")
    kv_verify+=("$(timed "$KV_BIN" verify "${common[@]}" "$img" "$root")")
    vs_verify+=("$(timed veritysetup verify "${vs[@]}" "$img" "$img" "$root")")
  done
  for op in format verify; do
    declare -n k=kv_$op v=vs_$op bd=bound_$op
    mk=$(printf '%s\n' "${k[@]}" | median 1) ck=$(printf '%s\n' "${k[@]}" | median 2)
    mv=$(printf '%s\n' "${v[@]}" | median 1) cv=$(printf '%s\n' "${v[@]}" | median 2)
    b=$(printf '%s\n' "${bd[@]}" | median 1) bc=$(printf '%s\n' "${bd[@]}" | median 2)
    # Each run's share of the bound measured just before it, then the median of those.
    shares=$(paste -d' ' <(printf '%s\n' "${bd[@]}") <(printf '%s\n' "${k[@]}") | awk '{print $1/$3, $2/$4}')
    sw=$(median 1 <<<"$shares") sc=$(median 2 <<<"$shares")
    awk -v l="$layout" -v op="$op" -v k="$mk" -v v="$mv" -v ck="$ck" -v cv="$cv" \
      -v s="$((size_mib << 20))" -v b="$b" -v bc="$bc" -v sw="$sw" -v sc="$sc" 'BEGIN {
      printf "| %s | %s | %.3f (%.2f) | %.3f (%.2f) | %.2fx | %.0f | %.3f (%.2f) | %.0f%% (%.0f%%) |\n",
        l, op, k, ck, v, cv, v/k, s/k/1e6, b, bc, 100*sw, 100*sc }'
    unset -n k v bd
  done
done
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
