# shellcheck shell=bash
# The guest kernel: a stock Debian kernel package, downloaded and unpacked into the cache
# (never installed into the host's /boot), plus the list of modules the guest loads.
#
# Sets: KVER, VMLINUZ, MODDIR, MODULES (paths relative to MODDIR, in load order).

# Top-level modules the guest needs; dependencies come from modules.dep. crc32c_generic goes
# first: libcrc32c (needed by erofs) wants the "crc32c" hash at init, which is only a soft
# dependency and so missing from modules.dep. virtio_net: the host-driven daemon scenarios.
# sd_mod and virtio_scsi: the SCSI disk the resolve scenario finds by target:lun (sd_mod's
# crc-t10dif and crc64-rocksoft want the generic hashes at init the same way, else they fall
# back after asking for a modprobe the initramfs does not have). overlay: the container rootfs
# over verified layers.
VM_MODULES=${VM_MODULES:-crc32c_generic virtio_pci virtio_blk dm-verity erofs loop virtio_net crct10dif_generic crc64_rocksoft_generic sd_mod virtio_scsi overlay}

kernel_pkg_name() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

ensure_kernel() {
  local pkg=${VM_KERNEL_PKG:-} dir tmp
  mkdir -p "$CACHE/kernel"
  if [[ -z $pkg ]]; then
    pkg=$(kernel_pkg_name)
    if [[ -z $pkg ]]; then
      # no package lists: fall back to a cached kernel, else refresh the lists
      dir=$(find "$CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' | sort | tail -n1)
      if [[ -n $dir ]]; then
        pkg=${dir##*/}
      else
        apt-get update -q >&2
        pkg=$(kernel_pkg_name)
      fi
    fi
  fi
  [[ -n $pkg ]] || die "cannot find the kernel package linux-image-amd64 depends on"
  dir=$CACHE/kernel/$pkg
  if [[ ! -e $dir/.complete ]]; then
    log "fetching kernel package $pkg into $dir"
    tmp=$CACHE/kernel/.tmp.$$
    rm -rf "$tmp" "$dir"
    mkdir -p "$tmp/deb" "$tmp/root"
    (cd "$tmp/deb" && apt-get download "$pkg" >&2) ||
      { apt-get update -q >&2 && (cd "$tmp/deb" && apt-get download "$pkg" >&2); }
    dpkg -x "$tmp"/deb/*.deb "$tmp/root"
    KVER=$(ls "$tmp/root/lib/modules")
    # the .deb ships no modules.dep (its postinst runs depmod); busybox builds it offline
    busybox depmod -b "$tmp/root" "$KVER"
    [[ -s $tmp/root/lib/modules/$KVER/modules.dep ]] || die "depmod made no modules.dep"
    mv "$tmp/root" "$dir"
    rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  KVER=$(ls "$dir/lib/modules")
  VMLINUZ=$dir/boot/vmlinuz-$KVER
  MODDIR=$dir/lib/modules/$KVER
  [[ -f $VMLINUZ && -s $MODDIR/modules.dep ]] || die "kernel cache $dir is broken; remove it"
  resolve_modules
  log "kernel $KVER; modules: $(for m in "${MODULES[@]}"; do basename "$m"; done | sed 's/\.ko.*//' | tr '\n' ' ')"
}

# Depth-first walk of modules.dep: every module after its dependencies, each once.
resolve_modules() {
  local -A path_of=() deps_of=() seen=()
  local line key rest base m p
  while IFS= read -r line; do
    key=${line%%:*}
    rest=${line#*:}
    base=${key##*/}
    base=${base%%.ko*}
    path_of[${base//-/_}]=$key
    deps_of[$key]=$rest
  done <"$MODDIR/modules.dep"
  MODULES=()
  visit() {
    local p=$1 d
    [[ -n ${seen[$p]:-} ]] && return
    seen[$p]=1
    for d in ${deps_of[$p]}; do visit "$d"; done
    MODULES+=("$p")
  }
  for m in $VM_MODULES; do
    p=${path_of[${m//-/_}]:-}
    if [[ -n $p ]]; then
      visit "$p"
    elif grep -qE "/${m//[-_]/[-_]}\.ko" "$MODDIR/modules.builtin"; then
      log "module $m is built into the kernel"
    else
      die "module $m not found in $MODDIR"
    fi
  done
}
