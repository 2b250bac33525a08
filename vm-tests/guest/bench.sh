# The benchmark (vmtest.mode=bench, vm-tests/run --bench): one boot, SMALL_N distinct small
# layers as files on a tmpfs. For each layer, alternately first and second:
#   ours:   kata-volume add (client request to the daemon on a unix socket, until it answers:
#           loop device, dm-verity device, mount)
#   theirs: veritysetup open (its own loop device and dm-verity device) && mount
# each timed end to end as one command line, minus the cost of taking the time stamps; both
# sides' mount point directories are made before any timing. Also
# the daemon's idle RSS after start-up, its RSS with every layer mounted, the teardown
# (remove vs umount + veritysetup close), the daemon's own duration per request (its log),
# and a `version` round trip (the client's share: process start, connect, answer). Then the
# eight-layer rootfs (bench-rootfs.sh).
# Output: VMTEST-BENCH lines (lib/bench.sh sums them up).
SOCK=unix:///run/kata-volume.sock
export DM_DISABLE_UDEV=1 # no udev in the guest: libdevmapper makes the nodes itself
mkdir -p "$SMALL_DIR" /run/cryptsetup /mnt
cp /vmtest/small/*.img "$SMALL_DIR/"

# wall-clock time stamp in microseconds (busybox date has no %N; adjtimex reads the clock)
stamp() { adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf "%d%06d\n", s, u }'; }
ms() { awk -v a="$1" -v b="$2" -v o="${3:-0}" 'BEGIN { printf "%.2f\n", (b - a) / 1000 - o }'; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

ours_add() { # NN
  local opt
  eval "opt=\$OPT_SMALL_$1"
  "$KV" add --addr "$SOCK" --source "$SMALL_DIR/$1.img" --mount-point "$MOUNT_ROOT/bench-$1" --option "$opt" >/dev/null
}
theirs_open() { # NN
  local size root
  eval "size=\$SMALL_SIZE_$1 root=\$SMALL_ROOT_$1"
  veritysetup open "$SMALL_DIR/$1.img" "bench-vs-$1" "$SMALL_DIR/$1.img" "$root" --no-superblock \
    --hash-offset="$size" --data-blocks=$((size / 512)) --data-block-size=512 --hash-block-size=4096 \
    --salt=- --hash=sha256 --format=1 &&
    mount -t erofs -o ro,nodev,nosuid "/dev/mapper/bench-vs-$1" "/mnt/bench-vs-$1"
}
theirs_close() { umount "/mnt/bench-vs-$1" && veritysetup close "bench-vs-$1"; }
# timed FILE COMMAND…: appends the command's time in ms to FILE; fails if the command fails
timed() {
  local f=$1 t0 t1
  shift
  t0=$(stamp)
  "$@" || { echo "VMTEST-BENCH-ERROR $* failed"; return 1; }
  t1=$(stamp)
  ms "$t0" "$t1" "$OVERHEAD" >>"$f"
}

# the cost of two time stamps around nothing
OVERHEAD=0
for i in 1 2 3 4 5 6 7 8 9 10 11; do timed /tmp/overhead.ms true; done
OVERHEAD=$(median /tmp/overhead.ms)
echo "VMTEST-BENCH stamp_overhead_ms $OVERHEAD"
echo "VMTEST-BENCH vcpus $(nproc)"

"$KV" serve --listen "$SOCK" --state-dir /run/kata-volume --allow-files \
  --allowed-source "$SMALL_DIR/*" --log-format json >/tmp/daemon.log 2>&1 &
PID=$!
"$KV" version --addr "$SOCK" --retry-for 20 >/dev/null || { echo "VMTEST-BENCH-ERROR the daemon does not answer"; cat /tmp/daemon.log; }
sleep 1
echo "VMTEST-BENCH daemon_idle_rss_kb $(rss $PID)"
echo "VMTEST-BENCH binary_bytes $(stat -c %s "$(command -v "$KV")")"
# the client's own share: a request that does nothing (process start, connect, answer)
for i in 1 2 3 4 5 6 7 8 9 10 11; do timed /tmp/version.ms "$KV" version --addr "$SOCK" >/dev/null; done
echo "VMTEST-BENCH version_roundtrip_median_ms $(median /tmp/version.ms)"
for i in 1 2 3 4 5 6 7 8 9 10 11; do timed /tmp/start.ms "$KV" --version >/dev/null; done
echo "VMTEST-BENCH client_start_median_ms $(median /tmp/start.ms)"

# Both sides' mount points exist before the clock starts: neither side's timed work includes
# making a directory (a `mkdir -p` process would cost the veritysetup side tens of ms under
# emulation, where the daemon makes its directory in-process).
for i in $SMALL_IDS; do mkdir -p "$MOUNT_ROOT/bench-$i" "/mnt/bench-vs-$i"; done
n=0
for i in $SMALL_IDS; do
  if [ $((n % 2)) = 0 ]; then
    timed /tmp/ours.ms ours_add "$i" && timed /tmp/theirs.ms theirs_open "$i"
  else
    timed /tmp/theirs.ms theirs_open "$i" && timed /tmp/ours.ms ours_add "$i"
  fi
  n=$((n + 1))
  echo "VMTEST-BENCH-VOLUME $i ours $(tail -n 1 /tmp/ours.ms) theirs $(tail -n 1 /tmp/theirs.ms)"
done
echo "VMTEST-BENCH volumes $n"
echo "VMTEST-BENCH mounted $(mounts_under "$MOUNT_ROOT" | wc -l) ours, $(awk '$5 ~ "^/mnt/bench-vs-"' /proc/self/mountinfo | wc -l) theirs"
echo "VMTEST-BENCH daemon_rss_with_volumes_kb $(rss $PID)"
echo "VMTEST-BENCH add_ours_median_ms $(median /tmp/ours.ms)"
echo "VMTEST-BENCH add_theirs_median_ms $(median /tmp/theirs.ms)"
sed -n 's/.*"AddStorage ok".*"duration_us":\([0-9]*\).*/\1/p' /tmp/daemon.log | awk '{ print $1 / 1000 }' >/tmp/daemon.ms
echo "VMTEST-BENCH add_daemon_side_median_ms $(median /tmp/daemon.ms)"

for i in $SMALL_IDS; do
  timed /tmp/ours-rm.ms "$KV" remove --addr "$SOCK" --mount-point "$MOUNT_ROOT/bench-$i" >/dev/null
  timed /tmp/theirs-rm.ms theirs_close "$i"
done
echo "VMTEST-BENCH remove_ours_median_ms $(median /tmp/ours-rm.ms)"
echo "VMTEST-BENCH remove_theirs_median_ms $(median /tmp/theirs-rm.ms)"
echo "VMTEST-BENCH left $(ls /sys/block | grep -c '^dm-') dm devices, $(mounts_under "$MOUNT_ROOT" | wc -l) mounts"
echo "VMTEST-BENCH daemon_rss_after_kb $(rss $PID)"
echo "VMTEST-BENCH daemon_rss_peak_kb $(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")"

# the eight-layer rootfs, with the same daemon
. /vmtest/bench-rootfs.sh
kill -TERM $PID
