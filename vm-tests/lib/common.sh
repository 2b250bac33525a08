# shellcheck shell=bash
# Shared helpers for vm-tests/run: logging, knobs, host packages.

log() { printf '[vm-tests] %s\n' "$*" >&2; }
die() { printf '[vm-tests] error: %s\n' "$*" >&2; exit 2; }

# Run a step and print how long it took.
timed() {
  local what=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  log "$what: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1fs", b-a}')"
}

# Debian packages the harness needs on the host: the build dependencies of the guest binary
# (the devicemapper crate links libdevmapper, bindgen needs libclang; a fresh machine has
# neither, and `vm-tests/run --demo` must work there as written), QEMU and the image tools.
# dmsetup is copied into the guest as an independent oracle (table/status as the kernel sees
# them), not used on the host; jq reads the client's --json answers in the host scenarios;
# fdisk brings sfdisk, which partitions the multi-layer GPT disk.
HOST_PKGS=(libdevmapper-dev libclang-dev pkg-config
  qemu-system-x86 busybox-static erofs-utils cryptsetup-bin dmsetup jq fdisk)

ensure_packages() {
  local p missing=()
  for p in "${HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing packages ${missing[*]} (run as root or install them)"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

need_cmds() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null || die "command not found: $c"; done
}
