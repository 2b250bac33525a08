# The control agent's probes and traps for the foreign-mount, stale-entry and rootfs
# scenarios (sourced by agent.sh, busybox sh). Probes only look; the traps play the "someone
# else" of a scenario (a foreign mount, a device node in the way) and undo themselves. What
# they change is confined to the mount root; none sets up a volume.

# the path, if it lies under the mount root (no '..'), else a refusal
under_root() {
  case $1 in
    "$MOUNT_ROOT"/*) case /$1/ in */../* | */./*) ;; *) return 0 ;; esac ;;
  esac
  echo "refused: $1 is not under $MOUNT_ROOT"
  return 2
}

# the mountinfo lines at exactly PATH, bottom first (the last one is the top mount)
probe_mountinfo() { mounts_at "$1"; }

# devname MAJ:MIN: "<kernel name> <dm name>" (no dm name: "-")
probe_devname() {
  local d=/sys/dev/block/$1
  [ -e "$d" ] || { echo "no block device $1"; return 1; }
  echo "$(basename "$(readlink -f "$d")") $(cat "$d/dm/name" 2>/dev/null || echo -)"
}

# tree PATH: one line per entry below PATH, sorted: "d ./dir", "f ./file", "l ./link",
# "c<major>:<minor> ./node" (an overlay whiteout is c0:0), "b… ./node"
probe_tree() {
  [ -d "$1" ] || { echo "no directory $1"; return 1; }
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r p; do
    if [ -L "$p" ]; then
      echo "l $p"
    elif [ -d "$p" ]; then
      echo "d $p"
    elif [ -c "$p" ] || [ -b "$p" ]; then
      # shellcheck disable=SC2046 # two numbers, meant to be split
      set -- $(stat -c '%t %T' "$p")
      printf '%s%d:%d %s\n' "$([ -c "$p" ] && echo c || echo b)" "0x$1" "0x$2" "$p"
    else
      echo "f $p"
    fi
  done)
}

# read PATH: the file's first line; sha256 PATH: its digest
probe_read() { [ -f "$1" ] || { echo "no file $1"; return 1; }; head -n 1 "$1"; }
probe_sha256() { sha256sum <"$1" | cut -d' ' -f1; }

# write PATH WORD | remove PATH: a container writing into its rootfs (under the mount root)
probe_write() { under_root "$1" || return; echo "$2" >"$1"; }
probe_remove() { under_root "$1" || return; rm "$1"; }

# foreign-mount PATH [DIR…]: another party's tmpfs (source "vmtest-foreign") at PATH, made if
# missing, holding .foreign and the DIRs given
FOREIGN_SRC=vmtest-foreign
foreign_mount() {
  local p=$1 d
  under_root "$p" || return
  shift
  mkdir -p "$p" && mount -t tmpfs -o size=1m "$FOREIGN_SRC" "$p" || return 1
  echo "foreign" >"$p/.foreign"
  for d in "$@"; do mkdir -p "$p/$d" || return 1; done
  echo "tmpfs $FOREIGN_SRC at $p"
}

# foreign-umount PATH: unmounts the top mount at PATH, if it is such a tmpfs
foreign_umount() {
  local top
  top=$(mounts_at "$1" | tail -n 1)
  case $top in
    *" - tmpfs $FOREIGN_SRC "*) umount "$1" && echo "unmounted the foreign tmpfs at $1" ;;
    *) echo "the top mount at $1 is not a foreign tmpfs: ${top:-nothing}"; return 1 ;;
  esac
}

# rmtree PATH: removes a directory tree a scenario made under the mount root (nothing may be
# mounted at or below it)
rmtree() {
  under_root "$1" || return
  [ -z "$(mounts_under "$1")" ] || { echo "refused: something is mounted under $1"; return 1; }
  rm -rf "$1" && echo "removed $1"
}

# node-trap NAME: /dev/mapper/NAME becomes a non-empty directory, so a teardown that reaches
# the node cannot remove it (after it has unmounted and removed the device); node-untrap
# NAME removes that directory again.
node_trap() {
  case $1 in kata-volume-*) ;; *) echo "refused: $1 is not one of ours"; return 2 ;; esac
  rm -f "/dev/mapper/$1" && mkdir "/dev/mapper/$1" && echo trap >"/dev/mapper/$1/keep" &&
    echo "/dev/mapper/$1 is now a directory"
}
node_untrap() {
  case $1 in kata-volume-*) ;; *) echo "refused: $1 is not one of ours"; return 2 ;; esac
  [ -d "/dev/mapper/$1" ] || { echo "/dev/mapper/$1 is not a directory"; return 1; }
  rm -r "/dev/mapper/$1" && echo "/dev/mapper/$1 removed"
}
