# Issue 12, item 3, through the daemon: the verity formats beyond the seed producers' (the
# images of the guest's verity-formats scenario, as files): a salt with a superblock, hash
# type 0 with a superblock and 512-byte blocks, hash type 0 with sha1, a salt without a
# superblock. The kernel's table (version, salt, the tree's first block past the superblock)
# is the one expected, every byte reads back, the status is V. The CCv0 dmverity shape
# carries the same fields in verity_info. A superblock where the request says there is none,
# and none where it says there is one, are clear refusals before anything is set up.
expect_clean "before"
root_before=$(tree_of "$MOUNT_ROOT")
for id in $FORMAT_IDS; do
  img=$SMALL_DIR/fmt-$id.img
  mp=$MOUNT_ROOT/vmtest-fmt-$id
  opt=OPT_FORMAT_$id table=FORMAT_TABLE_$id
  say "--- $id"
  kvh add --json --source "$img" --mount-point "$mp" --option "${!opt}"
  [[ $KVH_RC == 0 ]] || fail "$id: add exited $KVH_RC"
  name=$(jq -r .dm_name "$KVH_OUT")
  guest_state
  loop=$(st loop | awk -v f="$img" '$2 == f { print $1 }')
  [[ -n $loop ]] || fail "$id: no loop device on $img"
  got=$(ctl dm-table "$name") || fail "$id: no table for $name"
  say "table: $got"
  [[ $(awk '{ $5 = "DEV"; $6 = "DEV"; print }' <<<"$got") == "${!table}" ]] || fail "$id: the table is not '${!table}'"
  [[ $(ctl devname "$(awk '{ print $5 }' <<<"$got")") == "$loop -" ]] || fail "$id: the table's data device is not $loop"
  read_is "$mp/id.txt" "verity formats layer"
  [[ $(ctl sha256 "$mp/big.txt") == "$FORMAT_FILE_SHA" ]] || fail "$id: big.txt differs"
  st=$(ctl dm-status "$name")
  [[ ${st##* } == V ]] || fail "$id: status after reading is '$st'"
  kvh remove --mount-point "$mp"
  [[ $KVH_RC == 0 ]] || fail "$id: remove exited $KVH_RC"
done
expect_clean "after the formats"

say "--- the CCv0 dmverity shape: salt, hash type and superblock in verity_info"
root=$(vinfo_of "$OPT_FORMAT_sb1" | jq -r .hash)
add_dmverity "$OPT_FORMAT_sb1" "" "$SMALL_DIR/fmt-sb1.img" "$VERITY_DIR/$root"
[[ $KVH_RC == 0 ]] || fail "the dmverity Storage with a salt and a superblock exited $KVH_RC"
got=$(ctl dm-table "$(jq -r .dm_name "$KVH_OUT")")
[[ $(awk '{ $5 = "DEV"; $6 = "DEV"; print }' <<<"$got") == "$FORMAT_TABLE_sb1" ]] || fail "table '$got', want '$FORMAT_TABLE_sb1'"
[[ $(ctl sha256 "$VERITY_DIR/$root/big.txt") == "$FORMAT_FILE_SHA" ]] || fail "big.txt differs"
kvh remove --mount-point "$VERITY_DIR/$root"
[[ $KVH_RC == 0 ]] || fail "remove exited $KVH_RC"

say "--- superblocks that are not where the request says"
off=$(vinfo_of "$OPT_FORMAT_sb1" | jq -r .offset)
kvh add --json --source "$SMALL_DIR/fmt-sb1.img" --mount-point "$MOUNT_ROOT/vmtest-fmt-nosb" \
  --option "$(option_with "$OPT_FORMAT_sb1" '.dm_verity.no_superblock = true')"
refused_with INVALID_ARGUMENT "A verity superblock was found at byte $off but dm_verity.no_superblock is true" "a superblock where the request says none"
! grep -qi 'input/output' "$KVH_ERR" || fail "the refusal is an I/O error"
off=$(vinfo_of "$OPT_FORMAT_salt512" | jq -r .offset)
kvh add --json --source "$SMALL_DIR/fmt-salt512.img" --mount-point "$MOUNT_ROOT/vmtest-fmt-nosb" \
  --option "$(option_with "$OPT_FORMAT_salt512" '.dm_verity.no_superblock = false')"
refused_with INVALID_ARGUMENT "Expected a verity superblock at byte $off" "no superblock where the request says one"
expect_clean "after"
list_json
[[ -z $(listed .mount_point) ]] || fail "the daemon lists $(listed .mount_point | tr '\n' ' ')"
expect_root_as "after" "$root_before"
say "ok"
