# shellcheck shell=bash
# The guest side: the static kata-volume binary and the initramfs that carries it.

TRIPLE=x86_64-unknown-linux-gnu

# Sets GUEST_BIN. KV_BIN=path uses a prebuilt binary; VM_BUILD_REV=<git rev> builds that
# commit in a clean copy (target dir cached in .cache/target-rev) instead of the working tree.
build_binary() {
  local src=$REPO target=${CARGO_TARGET_DIR:-$REPO/target}
  if [[ -n ${KV_BIN:-} ]]; then
    GUEST_BIN=$KV_BIN
  else
    need_cmds cargo
    if [[ -n ${VM_BUILD_REV:-} ]]; then
      # a committed revision in a clean tree, whatever state the working tree is in
      src=$WORK/src
      target=$CACHE/target-rev
      rm -rf "$src"
      mkdir -p "$src"
      git -C "$REPO" archive "$VM_BUILD_REV" | tar -x -C "$src" || die "cannot export $VM_BUILD_REV"
      log "building $VM_BUILD_REV ($(git -C "$REPO" rev-parse --short "$VM_BUILD_REV")) in $src"
    fi
    log "building the static guest binary (cargo build --release --target $TRIPLE --features cli, ${VM_CARGO_JOBS:-1} job(s))"
    (cd "$src" && CARGO_TARGET_DIR=$target RUSTFLAGS='-C target-feature=+crt-static' \
      cargo build --release --target "$TRIPLE" --features cli --bin kata-volume -j "${VM_CARGO_JOBS:-1}" --quiet) ||
      die "cargo build of the guest binary failed"
    GUEST_BIN=$target/$TRIPLE/release/kata-volume
  fi
  [[ -x $GUEST_BIN ]] || die "no executable at $GUEST_BIN"
  if ldd "$GUEST_BIN" 2>&1 | grep -q '=>'; then
    die "$GUEST_BIN is dynamically linked; the initramfs has no libc"
  fi
}

# copy a dynamically linked host program and the libraries it needs into the initramfs
copy_with_libs() {
  local prog=$1 root=$2 lib
  mkdir -p "$root$(dirname "$prog")"
  cp "$prog" "$root$prog"
  for lib in $(ldd "$prog" | grep -oE '/[^ ]+'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# Sets INITRD.
build_initramfs() {
  local r=$WORK/initramfs m
  rm -rf "$r"
  mkdir -p "$r"/{bin,sbin,dev,proc,sys,run,tmp,lib/modules,vmtest/scenarios,usr/bin,usr/sbin}
  cp /bin/busybox "$r/bin/busybox"
  ldd "$r/bin/busybox" 2>&1 | grep -q '=>' && die "/bin/busybox is not static (install busybox-static)"
  for m in "${MODULES[@]}"; do
    cp "$MODDIR/$m" "$r/lib/modules/"
    basename "$m" >>"$r/vmtest/modules.list"
  done
  cp "$GUEST_BIN" "$r/bin/kata-volume"
  copy_with_libs "$(command -v dmsetup)" "$r"   # independent view of tables and status
  # the benchmark's reference; never in the test runs (only the binary sets up volumes there)
  [[ $MODE == bench ]] && copy_with_libs "$(command -v veritysetup)" "$r"
  cp "$HERE/guest/init" "$r/init"
  cp "$HERE"/guest/{lib,demo,agent,probes,hostphase,corruption,bench,bench-rootfs}.sh "$r/vmtest/"
  mkdir -p "$r/vmtest/boots"
  cp "$HERE"/guest/boots/*.sh "$r/vmtest/boots/"
  mkdir -p "$r/vmtest/small"
  cp "$WORK"/images/small/*.img "$r/vmtest/small/"
  mkdir -p "$r/vmtest/formats"
  cp "$WORK"/images/formats/*.img "$r/vmtest/formats/"
  cp "$HERE"/guest/scenarios/*.sh "$r/vmtest/scenarios/"
  cp "$WORK/images/params.sh" "$WORK/images/manifest.sha256" "$r/vmtest/"
  printf '%s\n' "${DISKS[@]}" >"$r/vmtest/disks.list"
  chmod +x "$r/init" "$r/bin/kata-volume" "$r/vmtest/agent.sh"
  INITRD=$WORK/initramfs.cpio.gz
  (cd "$r" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$INITRD"
  log "initramfs: $(du -h "$INITRD" | cut -f1) ($(find "$r" -type f | wc -l) files)"
}
