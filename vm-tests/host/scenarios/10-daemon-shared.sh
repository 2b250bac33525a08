# One layer for many containers: 20 concurrent adds of the tarfs disk to 20 mount points
# share one dm device (refcount 20) under 20 mounts; 20 concurrent removes leave nothing.
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

for i in $(seq -f %02g 1 $N); do
  spawn "rm$i" remove --json --mount-point "$MOUNT_ROOT/vmtest-shared-$i"
done
batch_wait
((BATCH_OK == N)) || fail "$BATCH_FAILED of $N concurrent removes failed"
list_json
[[ -z $(listed .mount_point) ]] || fail "still listed after the removes: $(listed .mount_point | tr '\n' ' ')"
expect_clean "after the removes"
say "ok"
