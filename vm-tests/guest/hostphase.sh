# Sourced by /init after the guest's own scenarios when the host drives daemon scenarios
# (vmtest.host=1): bring up eth0 for QEMU's user-mode network (the host reaches the guest
# only through its two port forwards), put the small layers and the verity format variants
# on a tmpfs, serve the control agent on port 7001, and wait until the host says it is done
# (or vmtest.hosttimeout).
. /vmtest/params.sh
HOST_TMO=$(arg hosttimeout)
HOST_TMO=${HOST_TMO:-300}
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 ||
  echo "VMTEST-INFO network: no eth0 ($(ls /sys/class/net | tr '\n' ' '))"
mkdir -p "$SMALL_DIR"
cp /vmtest/small/*.img "$SMALL_DIR/"
# the verity format variants (guest scenario verity-formats), for the daemon's formats scenario
for f in /vmtest/formats/*.img; do cp "$f" "$SMALL_DIR/fmt-${f##*/}"; done
rm -f /tmp/host-done
nc -ll -p 7001 -e /vmtest/agent.sh &
NC_PID=$!
echo "VMTEST-HOST-PHASE control on :7001, daemon on :7000, $(ls "$SMALL_DIR" | wc -l) small layers in $SMALL_DIR"
T_HOST=$(now)
while [ ! -e /tmp/host-done ]; do
  awk -v a="$T_HOST" -v b="$(now)" -v t="$HOST_TMO" 'BEGIN { exit !(b - a >= t) }' && {
    echo "VMTEST-INFO the host did not finish within ${HOST_TMO}s"
    break
  }
  sleep 0.2
done
echo "VMTEST-METRIC host_phase_s $(since "$T_HOST")"
kill "$NC_PID" 2>/dev/null
p=$(cat /tmp/daemon.pid 2>/dev/null) && kill -TERM "$p" 2>/dev/null
