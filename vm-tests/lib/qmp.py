#!/usr/bin/env python3
"""Hot-plug and unplug virtio-blk disks in the running test VM through its QMP socket.

    qmp.py SOCK add-disk --node NODE --id ID --file IMG --serial SERIAL --addr 0xNN
    qmp.py SOCK del-disk --node NODE --id ID [--timeout SECS]
    qmp.py SOCK pci-slots

add-disk: blockdev-add of IMG (raw, read-only) as NODE, then device_add of a virtio-blk-pci
device ID at PCI slot NN of the root bus (Kata's PCI path "NN"); a failed device_add removes
the node again. del-disk: device_del, wait for QEMU's DEVICE_DELETED (the guest has let the
device go), then blockdev-del. pci-slots: the root bus's occupied slots and their devices.
Exit 0 on success; 1 with one "error: ..." line when QEMU refuses or times out; 2 for bad usage.
"""
import argparse
import json
import socket
import sys
import time


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            raise QmpError(f"cannot connect to the QMP socket {path}: {e}") from e
        self.buf = b""
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"no QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as e:
                raise QmpError("QEMU did not answer in time") from e
            if not chunk:
                raise QmpError("QEMU closed the QMP connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            elif "return" in reply:
                return reply["return"]

    def wait_event(self, name, match, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("event") == name and match(ev.get("data", {})):
                    return ev
            self.events.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpError(f"no {name} event within {timeout} s")
            self.sock.settimeout(left)
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)


def add_disk(q, a):
    q.command("blockdev-add", **{
        "node-name": a.node, "driver": "raw", "read-only": True,
        "file": {"driver": "file", "filename": a.file},
    })
    try:
        q.command("device_add", driver="virtio-blk-pci", drive=a.node, id=a.id,
                  serial=a.serial, addr=a.addr)
    except QmpError:
        q.command("blockdev-del", **{"node-name": a.node})
        raise
    print(f"added {a.id} ({a.file}, serial {a.serial}) at slot {a.addr}")


def del_disk(q, a):
    q.command("device_del", id=a.id)
    q.wait_event("DEVICE_DELETED", lambda d: d.get("device") == a.id, a.timeout)
    q.command("blockdev-del", **{"node-name": a.node})
    print(f"deleted {a.id}")


def pci_slots(q, _a):
    for bus in q.command("query-pci"):
        for dev in bus.get("devices", []):
            print(f"{bus['bus']:02x}:{dev['slot']:02x}.{dev['function']} "
                  f"{dev.get('qdev_id') or '-'} {dev.get('class_info', {}).get('desc', '')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sock")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("add-disk")
    for flag in ("--node", "--id", "--file", "--serial", "--addr"):
        s.add_argument(flag, required=True)
    s.set_defaults(run=add_disk)
    s = sub.add_parser("del-disk")
    s.add_argument("--node", required=True)
    s.add_argument("--id", required=True)
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(run=del_disk)
    s = sub.add_parser("pci-slots")
    s.set_defaults(run=pci_slots)
    a = p.parse_args()
    try:
        a.run(Qmp(a.sock, timeout=30), a)
    except (QmpError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
