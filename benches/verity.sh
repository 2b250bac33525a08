#!/usr/bin/env bash
# Benchmark: `kata-volume format`/`verify` against `veritysetup format`/`verify` on the same
# image with the same parameters (no superblock, no salt, tree in the image after the data).
#
#   benches/verity.sh [RUNS]          (default 5 runs per tool and operation)
#
# Environment: SIZE_MIB (default 1024); BENCH_DIR (default target/verity-bench, on the
# checkout's filesystem: after the first run both tools read the image from the page cache,
# and both fsync the tree they write; a tmpfs such as /dev/shm works too, but its 4 KiB page
# cache makes every read dearer for both); KV_BIN (default: builds target/release/kata-volume);
# LAYOUTS (default "512/4096 4096/4096", data/hash block sizes); CPUS (e.g. "0": run both
# tools under `taskset -c CPUS`, to see what one core gives).
# Runs alternate between the tools; each figure is the median. Two ratios, veritysetup / ours:
# wall clock (what a user waits for with the cores idle: kata-volume hashes on every core,
# veritysetup on one) and CPU time (user + system: what each costs, and about the wall-clock
# ratio when no second core is free — a one-vCPU guest, a busy host).
# The SHA-256 ceiling is `openssl speed -evp sha256` (16 KiB blocks) × cores.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
size_mib=${SIZE_MIB:-1024}
layouts=${LAYOUTS:-"512/4096 4096/4096"}
dir=${BENCH_DIR:-target/verity-bench}
command -v veritysetup >/dev/null || { echo "veritysetup not found (apt-get install cryptsetup-bin)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
if [[ -z ${KV_BIN:-} ]]; then
  cargo build --release --quiet --features cli --bin kata-volume
  KV_BIN=$PWD/target/release/kata-volume
fi
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
echo "image:   $size_mib MiB in $dir ($(df --output=fstype "$dir" | tail -1)), $runs runs each${CPUS:+, pinned to CPUs $CPUS}"

# SHA-256 ceiling: one core's openssl speed at 16 KiB blocks (k = 1000 bytes/s), × cores.
one=$("${pin[@]}" openssl speed -seconds 3 -evp sha256 2>/dev/null | awk '/^sha256/ {sub("k","",$NF); print $NF*1000}')
multi=$("${pin[@]}" openssl speed -seconds 3 -multi "$cores" -evp sha256 2>/dev/null | awk '/^sha256/ {sub("k","",$NF); print $NF*1000}')
ceiling=$(awk -v o="$one" -v c="$cores" 'BEGIN {print o*c}')
awk -v o="$one" -v c="$cores" -v m="$multi" 'BEGIN {
  printf "openssl: sha256 %.0f MB/s per core; x %d cores = %.0f MB/s ceiling (openssl -multi %d: %.0f MB/s)\n",
    o/1e6, c, o*c/1e6, c, m/1e6 }'

head -c $((size_mib << 20)) /dev/urandom >"$img"
sync "$img"

# Runs a command; prints "wall cpu" seconds (cpu = user + system); its output goes to $dir/out.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "${pin[@]}" /usr/bin/time -f "%U %S" -o "$dir/time" "$@" >"$dir/out" 2>&1 || { cat "$dir/out" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" '{printf "%.4f %.2f\n", (b-a)/1e9, $1 + $2}' "$dir/time"
}
# Median of column $1 of the lines on standard input.
median() { awk -v c="$1" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

printf "\n| data/hash block | op | kata-volume s (CPU s) | veritysetup s (CPU s) | wall ratio | CPU ratio | kata-volume MB/s | of ceiling |\n"
printf "|---|---|---|---|---|---|---|---|\n"
for layout in $layouts; do
  dbs=${layout%/*} hbs=${layout#*/}
  blocks=$(((size_mib << 20) / dbs))
  offset=$((size_mib << 20))
  common=(--data-block-size="$dbs" --hash-block-size="$hbs" --data-blocks="$blocks" --hash-offset="$offset")
  vs=(--no-superblock --format=1 --hash=sha256 --salt=- "${common[@]}")
  kv_format=() vs_format=() kv_verify=() vs_verify=()
  root=""
  for ((i = 0; i < runs; i++)); do
    kv_format+=("$(timed "$KV_BIN" format --json "${common[@]}" "$img")")
    ours=$(sed -n 's/.*"root_hash": "\(.*\)".*/\1/p' "$dir/out")
    vs_format+=("$(timed veritysetup format "${vs[@]}" "$img" "$img")")
    root=$(awk '/^Root hash:/ {print $3}' "$dir/out")
    [[ $ours == "$root" ]] || { echo "root hashes differ: $ours vs $root" >&2; exit 1; }
    kv_verify+=("$(timed "$KV_BIN" verify "${common[@]}" "$img" "$root")")
    vs_verify+=("$(timed veritysetup verify "${vs[@]}" "$img" "$img" "$root")")
  done
  for op in format verify; do
    declare -n k=kv_$op v=vs_$op
    mk=$(printf '%s\n' "${k[@]}" | median 1) ck=$(printf '%s\n' "${k[@]}" | median 2)
    mv=$(printf '%s\n' "${v[@]}" | median 1) cv=$(printf '%s\n' "${v[@]}" | median 2)
    awk -v l="$layout" -v op="$op" -v k="$mk" -v v="$mv" -v ck="$ck" -v cv="$cv" \
      -v s="$((size_mib << 20))" -v c="$ceiling" 'BEGIN {
      printf "| %s | %s | %.3f (%.2f) | %.3f (%.2f) | %.2fx | %.2fx | %.0f | %.0f%% |\n",
        l, op, k, ck, v, cv, v/k, cv/ck, s/k/1e6, 100*s/k/c }'
    unset -n k v
  done
done
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
