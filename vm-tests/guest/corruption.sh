# Boots of their own (vmtest.mode=corruption-restart|corruption-panic): the daemon runs with
# --corruption-mode restart|panic, mounts the corrupted disk, and the corrupted file is read.
# The guest must then restart (QEMU's -no-reboot ends QEMU) or panic. The host judges from
# the console (lib/boots.sh): after VMTEST-CORRUPTION-READ there must be the kernel's reboot
# or panic message and no VMTEST-CORRUPTION-SURVIVED.
mode=${VMTEST_MODE#corruption-}
SOCK=unix:///run/kata-volume.sock
MP=$MOUNT_ROOT/vmtest-corruption-$mode
"$KV" serve --listen "$SOCK" --state-dir /run/kata-volume --corruption-mode "$mode" \
  --log-format text >/tmp/daemon.log 2>&1 &
kv add --addr "$SOCK" --retry-for 20 --json --source "$CORRUPT_DISK" --mount-point "$MP" --option "$OPT_512"
[ "$KV_RC" = 0 ] || { cat /tmp/daemon.log; echo "VMTEST-CORRUPTION-SETUP-FAILED add exited $KV_RC"; return 0; }
name=$(json_field dm_name)
echo "VMTEST-CORRUPTION-TABLE $(dms table "$name")"
cat "$MP/$INTACT_FILE" >/dev/null || echo "VMTEST-CORRUPTION-SETUP-FAILED intact file unreadable"
echo 4 >/proc/sys/kernel/printk # the kernel's error and panic lines on the console
echo "VMTEST-CORRUPTION-READ $MP/$CORRUPT_FILE"
if cat "$MP/$CORRUPT_FILE" >/dev/null 2>/tmp/read.err; then r="read succeeded"; else r="read failed: $(cat /tmp/read.err)"; fi
sleep 2 # a restart or panic comes from dm-verity's worker; give it time
echo "VMTEST-CORRUPTION-SURVIVED $r; status $(dms status "$name")"
