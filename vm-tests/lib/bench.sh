# shellcheck shell=bash
# vm-tests/run --bench: one boot of guest/bench.sh (veritysetup and its libraries are in the
# initramfs only in this mode) with 2 vCPUs (VM_SMP), then a summary of its VMTEST-BENCH lines.

# the value of one VMTEST-BENCH line
bench_value() { sed -n "s/^VMTEST-BENCH $1 //p" <<<"$BENCH_LOG" | tail -n 1; }

run_bench() {
  local console=$WORK/bench.console.log ours theirs
  VM_SMP=${VM_SMP:-2} boot_vm bench "$console"
  BENCH_LOG=$(tr -d '\r' <"$console")
  grep -qx VMTEST-END <<<"$BENCH_LOG" || die "the benchmark did not finish (console: $console)"
  if grep -q '^VMTEST-BENCH-ERROR' <<<"$BENCH_LOG"; then
    grep '^VMTEST-BENCH-ERROR' <<<"$BENCH_LOG" >&2
    die "the benchmark failed (console: $console)"
  fi
  ours=$(bench_value add_ours_median_ms)
  theirs=$(bench_value add_theirs_median_ms)
  echo
  echo "==== benchmark ($(bench_value volumes) distinct layers, one boot, $(bench_value vcpus) vCPUs, $(date -u +%Y-%m-%d), console: $console)"
  printf '  %-47s %s\n' \
    "add to mounted, median: kata-volume add" "$ours ms" \
    "  veritysetup open + mount" "$theirs ms" \
    "  ratio (goal <= 1.0)" "$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2fx", a / b }')" \
    "  daemon side of add (its log), median" "$(bench_value add_daemon_side_median_ms) ms" \
    "  client share: a version round trip, median" "$(bench_value version_roundtrip_median_ms) ms" \
    "  of which the process (kata-volume --version)" "$(bench_value client_start_median_ms) ms" \
    "remove, median: kata-volume remove" "$(bench_value remove_ours_median_ms) ms" \
    "  umount + veritysetup close" "$(bench_value remove_theirs_median_ms) ms" \
    "daemon RSS idle after start (goal <= 8 MiB)" "$(bench_value daemon_idle_rss_kb) kB" \
    "  with every layer mounted / after / peak" "$(bench_value daemon_rss_with_volumes_kb) / $(bench_value daemon_rss_after_kb) / $(bench_value daemon_rss_peak_kb) kB" \
    "static binary" "$(bench_value binary_bytes) bytes ($(awk -v b="$(bench_value binary_bytes)" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))" \
    "time-stamp overhead (subtracted)" "$(bench_value stamp_overhead_ms) ms" \
    "left at the end" "$(bench_value left)"
  echo "  per layer (ms, ours / theirs): $(sed -n 's/^VMTEST-BENCH-VOLUME \([0-9]*\) ours \([0-9.]*\) theirs \([0-9.]*\)/\1: \2\/\3/p' <<<"$BENCH_LOG" | tr '\n' ' ')"
  ours=$(bench_value rootfs_ours_median_ms)
  theirs=$(bench_value rootfs_theirs_median_ms)
  echo "---- $(bench_value rootfs_layers)-layer rootfs, request to mounted overlay, $(bench_value rootfs_rounds) rounds (first side alternating)"
  printf '  %-47s %s\n' \
    "median: kata-volume add --storages (9 Storages)" "$ours ms" \
    "  shell: veritysetup open + mount x8, overlay" "$theirs ms" \
    "  ratio (goal <= 0.5)" "$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2fx", a / b }')" \
    "  daemon side (its log, 9 requests), median" "$(bench_value rootfs_daemon_side_median_ms) ms" \
    "teardown, median: 9 x kata-volume remove" "$(bench_value rootfs_remove_ours_median_ms) ms" \
    "  shell: umount + veritysetup close x8, umount" "$(bench_value rootfs_remove_theirs_median_ms) ms"
  echo "  per round (ms): $(sed -n 's/^VMTEST-BENCH-ROOTFS round \([0-9]*\) first \([a-z]*\) ours \([0-9.]*\) theirs \([0-9.]*\).*/\1 (\2 first): \3\/\4/p' <<<"$BENCH_LOG" | tr '\n' ' ')"
}
