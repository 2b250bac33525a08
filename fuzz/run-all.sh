#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60), one after another (the machines
# have two cores; the others build too). Needs the nightly toolchain; installs cargo-fuzz from
# crates.io when missing. Fails when a target finds a crash: its input is left in
# fuzz/artifacts/<target>/ — add it as a regression test in tests/volume_rules.rs, then fix.
#
#   fuzz/run-all.sh [SECONDS]
set -euo pipefail
secs="${1:-60}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
cd "$(dirname "$0")"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "error: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target"
  dict=()
  [[ -f "dicts/$target.dict" ]] && dict=("-dict=dicts/$target.dict")
  echo "== fuzz $target for ${secs}s"
  # New inputs go to corpus/<target> (not committed); seeds/<target> is read as well.
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}"
done
echo "== fuzz: no crash in $(cargo +nightly fuzz list | wc -l) targets"
