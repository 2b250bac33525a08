# One layer for many containers: 20 concurrent adds of the tarfs disk to 20 mount points
# share one dm device (refcount 20) under 20 mounts; 10 concurrent removes leave the device
# to the other 10 as it was (node, not marked for removal, full reads work); the last 10
# removes leave nothing.
N=20
expect_clean "before"
for i in $(seq -f %02g 1 $N); do
  spawn "add$i" add --json --source "$TARFS512_DISK" --mount-point "$MOUNT_ROOT/vmtest-shared-$i" --option "$OPT_512"
done
batch_wait
((BATCH_OK == N)) || fail "$BATCH_FAILED of $N concurrent adds failed"

list_json
say "listed: $(listed '"\(.mount_point) \(.dm_name) refcount \(.refcount)"' | head -n 3 | tr '\n' ';') …"
[[ $(listed .mount_point | wc -l) == "$N" ]] || fail "the daemon lists $(listed .mount_point | wc -l) volumes, want $N"
dm=$(listed .dm_name | sort -u)
[[ $(wc -l <<<"$dm") == 1 && $dm == kata-volume-* ]] || fail "listed dm names: $(tr '\n' ' ' <<<"$dm") (want one kata-volume-*)"
[[ $(listed .refcount | sort -u) == "$N" ]] || fail "refcounts $(listed .refcount | sort -u | tr '\n' ' '), want $N everywhere"

guest_state
say "kernel: $(all_dms | wc -l) dm device(s): $(st dm | tr '\n' ';') $(our_mounts | wc -l) mounts"
[[ $(all_dms) == "$dm" ]] || fail "the kernel has dm devices '$(all_dms | tr '\n' ' ')', want just $dm"
[[ $(kata_nodes) == "$dm" ]] || fail "/dev/mapper has '$(kata_nodes | tr '\n' ' ')', want just $dm"
[[ $(our_mounts) == "$(listed .mount_point | sort)" ]] || fail "mounted: $(our_mounts | tr '\n' ' '); listed: $(listed .mount_point | tr '\n' ' ')"
dev=$(st dm | awk '{ print $2 }')
majmin=$(st mount | awk '{ print $2 }' | sort -u)
[[ $(wc -l <<<"$majmin") == 1 ]] || fail "the mounts sit on several devices: $(tr '\n' ' ' <<<"$majmin")"
bad=$(st mount | awk '$3 != "erofs" || ("," $4 ",") !~ /,ro,/ || ("," $4 ",") !~ /,nodev,/ || ("," $4 ",") !~ /,nosuid,/')
[[ -z $bad ]] || fail "mounts that are not erofs ro,nodev,nosuid: $bad"
say "all $N mounts on $dev ($majmin), erofs ro,nodev,nosuid"

# Half the sharers go: the device stays for the others, untouched: its node is still there,
# it is not marked for deferred removal, and a full read through another mount point works.
H=$((N / 2))
for i in $(seq -f %02g 1 $H); do
  spawn "rm$i" remove --json --mount-point "$MOUNT_ROOT/vmtest-shared-$i"
done
batch_wait
((BATCH_OK == H)) || fail "$BATCH_FAILED of $H concurrent removes failed"
list_json
[[ $(listed .mount_point | wc -l) == $((N - H)) ]] || fail "after $H removes the daemon lists $(listed .mount_point | wc -l) volumes, want $((N - H))"
[[ $(listed .refcount | sort -u) == $((N - H)) ]] || fail "refcounts $(listed .refcount | sort -u | tr '\n' ' ') after $H removes, want $((N - H))"
guest_state
[[ $(all_dms) == "$dm" ]] || fail "after $H removes the kernel has dm devices '$(all_dms | tr '\n' ' ')', want $dm"
[[ $(kata_nodes) == "$dm" ]] || fail "after $H removes /dev/mapper has '$(kata_nodes | tr '\n' ' ')', want $dm"
[[ $(our_mounts | wc -l) == $((N - H)) ]] || fail "after $H removes $(our_mounts | wc -l) mounts are left, want $((N - H))"
info=$(ctl dm-info "$dm") || fail "dmsetup info $dm failed in the guest: $info"
state=$(sed -n 's/^State:[[:space:]]*//p' <<<"$info")
say "kernel: $dm state: $state"
[[ $state == ACTIVE* ]] || fail "$dm is not active: '$state'"
[[ $state != *DEFERRED* ]] || fail "$dm is marked for deferred removal while $((N - H)) mounts use it: '$state'"
for i in $(printf "%02d " $((H + 1)) "$N"); do
  kvh check --full --json --mount-point "$MOUNT_ROOT/vmtest-shared-$i"
  [[ $KVH_RC == 0 && $(jq -r .status "$KVH_OUT") == V ]] || fail "check --full of sharer $i after $H removes: exit $KVH_RC, status $(jq -r .status "$KVH_OUT")"
  [[ $(jq -r .bytes_read "$KVH_OUT") == "$DATA_SIZE" && $(jq -r .read_error "$KVH_OUT") == null ]] ||
    fail "check --full of sharer $i read $(jq -r .bytes_read "$KVH_OUT") bytes (want $DATA_SIZE), error $(jq -r .read_error "$KVH_OUT")"
done
say "after $H removes: $dm still active (not deferred), node there, $((N - H)) mounts, full reads ok"

for i in $(seq -f %02g $((H + 1)) $N); do
  spawn "rm$i" remove --json --mount-point "$MOUNT_ROOT/vmtest-shared-$i"
done
batch_wait
((BATCH_OK == N - H)) || fail "$BATCH_FAILED of $((N - H)) concurrent removes failed"
list_json
[[ -z $(listed .mount_point) ]] || fail "still listed after the removes: $(listed .mount_point | tr '\n' ' ')"
expect_clean "after the removes"
say "ok"
