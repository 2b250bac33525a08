# shellcheck shell=bash
# Helpers for the host scenarios (host/scenarios/NN-name.sh, run by lib/host.sh with bash,
# params.sh and the guest's disks in the environment). Same conventions as the guest's: a
# scenario exits 0 to pass; `fail WHY` records the reason and exits 1.

# shellcheck source=host.sh
. "$HERE/lib/host.sh"
KV_ADDR=tcp://127.0.0.1:$KV_PORT
MOUNT_ROOT=/run/kata-containers
TMP=$(mktemp -d "$WORK/host-scenario.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

say() { echo "$*"; }
fail() { echo "$*" >"$HOST_REASON"; echo "FAIL: $*"; exit 1; }

redact() { sed 's/io\.katacontainers\.volume=\([A-Za-z0-9+/]\{12\}\)[A-Za-z0-9+/=]*/io.katacontainers.volume=\1…/g' <<<"$*"; }

# kvh SUBCOMMAND ARGS…: the host's client against the guest's daemon; stdout in $KVH_OUT,
# stderr in $KVH_ERR, exit status in $KVH_RC (shown, options shortened); standard input
# from the file $KVH_STDIN (default: none).
KVH_OUT=$TMP/kv.out
KVH_ERR=$TMP/kv.err
kvh() {
  local sub=$1
  shift
  echo "\$ kata-volume $sub $(redact "$*")"
  KVH_RC=0
  "$HOST_KV" "$sub" --addr "$KV_ADDR" "$@" <"${KVH_STDIN:-/dev/null}" >"$KVH_OUT" 2>"$KVH_ERR" || KVH_RC=$?
  head -n 12 "$KVH_OUT" | sed 's/^/  out: /'
  head -n 5 "$KVH_ERR" | sed 's/^/  err: /'
  [[ $KVH_RC == 0 ]] || echo "  exit: $KVH_RC"
}

# ---------------------------------------------------------------- parallel requests
# spawn ID SUBCOMMAND ARGS…: one client in the background, its output in $TMP/batch/ID.*
spawn() {
  local id=$1 sub=$2
  shift 2
  mkdir -p "$TMP/batch"
  ("$HOST_KV" "$sub" --addr "$KV_ADDR" "$@" >"$TMP/batch/$id.out" 2>"$TMP/batch/$id.err"
    echo $? >"$TMP/batch/$id.rc") &
}
# batch_wait: waits for every spawned client; prints a summary; BATCH_OK/BATCH_FAILED count
# them (the next spawn starts a new batch)
batch_wait() {
  local f
  wait
  BATCH_OK=0
  BATCH_FAILED=0
  for f in "$TMP"/batch/*.rc; do
    [[ -e $f ]] || continue
    if [[ $(cat "$f") == 0 ]]; then
      BATCH_OK=$((BATCH_OK + 1))
    else
      BATCH_FAILED=$((BATCH_FAILED + 1))
      ((BATCH_FAILED > 3)) || echo "  ${f##*/}: exit $(cat "$f"): $(head -c 300 "${f%.rc}.err")"
    fi
  done
  echo "batch: $BATCH_OK ok, $BATCH_FAILED failed"
  rm -rf "$TMP/last-batch"
  [[ ! -d $TMP/batch ]] || mv "$TMP/batch" "$TMP/last-batch"
}
# the last batch's mount points whose add answered OK (with --json), one per line
batch_ok_mount_points() {
  local f
  for f in "$TMP"/last-batch/*.rc; do
    [[ $(cat "$f") == 0 ]] && jq -r .mount_point "${f%.rc}.out"
  done
  return 0
}

# ---------------------------------------------------------------- the daemon's view
# list_json: `list --json` into $TMP/list.json (fails the scenario if refused)
list_json() {
  "$HOST_KV" list --addr "$KV_ADDR" --json >"$TMP/list.json" 2>"$TMP/list.err" ||
    fail "list exited $?: $(cat "$TMP/list.err")"
}
listed() { jq -r ".volumes[] | $1" "$TMP/list.json"; }

# ---------------------------------------------------------------- the kernel's view (agent)
# guest_state: `ctl state` into $TMP/state (lines: daemon, dm, node, mount, loop)
guest_state() { ctl state >"$TMP/state" || fail "the guest agent did not answer 'state'"; }
st() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$TMP/state"; }
kata_dms() { st dm | awk '$1 ~ /^kata-volume-/ { print $1 }' | sort; }
all_dms() { st dm | awk '{ print $1 }' | sort; }
kata_nodes() { st node | grep '^kata-volume-' | sort; }
our_mounts() { st mount | awk '{ print $1 }' | sort; }
small_loops() { st loop | awk -v d="$SMALL_DIR/" 'index($2, d) == 1 { print $2 }' | sort; }
daemon_pid() { st daemon | awk '{ print $1 }'; }
show_state() { sed 's/^/  guest: /' "$TMP/state" | head -n "${1:-60}"; }

# expect_clean WHEN: no dm device, /dev/mapper node, mount under the root, or loop device
# on a small layer of ours
expect_clean() {
  guest_state
  [[ -z $(all_dms) ]] || { show_state; fail "$1: dm devices left: $(all_dms | tr '\n' ' ')"; }
  [[ -z $(kata_nodes) ]] || fail "$1: /dev/mapper nodes left: $(kata_nodes | tr '\n' ' ')"
  [[ -z $(our_mounts) ]] || fail "$1: still mounted: $(our_mounts | tr '\n' ' ')"
  [[ -z $(small_loops) ]] || fail "$1: loop devices left on: $(small_loops | tr '\n' ' ')"
  return 0
}

# remove_all_listed: removes every volume the daemon lists, in parallel; all must succeed
remove_all_listed() {
  local mp i=0
  list_json
  for mp in $(listed .mount_point); do
    spawn "rm$((i += 1))" remove --mount-point "$mp"
  done
  batch_wait
  ((BATCH_FAILED == 0)) || fail "$BATCH_FAILED remove(s) failed"
  list_json
  [[ $(listed .mount_point | wc -l) == 0 ]] || fail "the daemon still lists $(listed .mount_point | tr '\n' ' ')"
}

# the option of small layer NN
small_opt() { local v=OPT_SMALL_$1; echo "${!v}"; }
