# kill -9 in the middle of a batch: 16 small layers and 8 mount points of the tarfs disk are
# requested at once; the guest, armed before the batch is sent, kills the daemon as soon as
# 3 volumes are mounted. After a restart on the same state folder the daemon's list agrees
# with the kernel: every listed volume is mounted, every dm device and mount of ours is
# listed, the refcounts count the listed mount points, each layer file has at most one loop
# device and only while listed, nothing that answered OK before the kill is lost. Then
# removing everything leaves nothing.
expect_clean "before"
ctl kill9-arm 3 60 || fail "the agent could not arm the kill"
for i in $(seq -f %02g 1 16); do
  spawn "s$i" add --json --retry-for 2 --source "$SMALL_DIR/$i.img" --mount-point "$MOUNT_ROOT/vmtest-kill-s$i" --option "$(small_opt "$i")"
done
for i in $(seq 1 8); do
  spawn "t$i" add --json --retry-for 2 --source "$TARFS512_DISK" --mount-point "$MOUNT_ROOT/vmtest-kill-t$i" --option "$OPT_512"
done
batch_wait
ctl kill9-result || fail "the daemon was not killed"
ok_before=$(batch_ok_mount_points | sort)
((BATCH_FAILED > 0)) || fail "all 24 adds succeeded: the kill came after the batch, not during it"
guest_state
say "left by the killed daemon: $(all_dms | wc -l) dm devices, $(our_mounts | wc -l) mounts, $(small_loops | wc -l) loop devices"

ctl daemon-start main | sed 's/^/agent: /'
((PIPESTATUS[0] == 0)) || fail "the daemon did not restart on the same state folder"
rec=$(ctl daemon-log 200 | grep '"state reconciled"' | tail -n 1)
say "daemon: $rec"
list_json
[[ $(jq -r .adopted <<<"$rec") == "$(listed .mount_point | wc -l)" ]] ||
  fail "the restarted daemon says it adopted $(jq -r .adopted <<<"$rec") volumes but lists $(listed .mount_point | wc -l)"
guest_state
show_state 40
listed_dms=$(listed '.dm_name // empty' | sort -u)
[[ $(our_mounts) == "$(listed .mount_point | sort)" ]] ||
  fail "mounted ($(our_mounts | tr '\n' ' ')) and listed ($(listed .mount_point | tr '\n' ' ')) differ"
[[ $(all_dms) == "$listed_dms" ]] || fail "dm devices ($(all_dms | tr '\n' ' ')) and listed ones ($(tr '\n' ' ' <<<"$listed_dms")) differ"
[[ $(kata_nodes) == "$listed_dms" ]] || fail "/dev/mapper nodes ($(kata_nodes | tr '\n' ' ')) and listed dm devices differ"
[[ $(small_loops) == "$(listed .source | grep "^$SMALL_DIR/" | sort -u)" ]] ||
  fail "loop devices on $(small_loops | tr '\n' ' '); listed file sources: $(listed .source | grep "^$SMALL_DIR/" | tr '\n' ' ')"
bad=$(jq -r '[.volumes[] | select(.dm_name != null)] | group_by(.dm_name)[] | select(length != .[0].refcount) | "\(.[0].dm_name): \(length) listed, refcount \(.[0].refcount)"' "$TMP/list.json")
[[ -z $bad ]] || fail "refcounts disagree with the list: $bad"
lost=$(comm -23 <(echo "$ok_before") <(listed .mount_point | sort) | grep . || true)
[[ -z $lost ]] || fail "answered OK before the kill but not listed after the restart: $(tr '\n' ' ' <<<"$lost")"
say "after the restart: $(listed .mount_point | wc -l) volumes listed and mounted, $(all_dms | wc -l) dm devices, $(small_loops | wc -l) loop devices; consistent"

remove_all_listed
expect_clean "after removing everything"
say "ok"
