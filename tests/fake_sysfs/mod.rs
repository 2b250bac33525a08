//! A fake sysfs tree in a temporary directory, shaped as the kernel shapes the parts the
//! address finder reads: PCI functions and bridges under `devices/pci0000:XX`, virtio disks
//! under `virtio<N>/block/<name>` with their `dev`, the `block/<name>` and
//! `bus/scsi/devices/<h:c:t:l>` symlinks, SCSI hosts' `scan` files, `bus/pci/rescan`.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use kata_volume::system::DevNum;

pub struct FakeSys {
    dir: tempfile::TempDir,
}

pub fn dev(major: u32, minor: u32) -> DevNum {
    DevNum { major, minor }
}

impl FakeSys {
    /// A tree with the PCI root bus 00, an empty `bus/pci/rescan` and nothing else.
    pub fn new() -> Self {
        let s = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        s.mkdir("/devices/pci0000:00");
        s.mkdir("/block");
        s.mkdir("/bus/scsi/devices");
        s.mkdir("/class/scsi_host");
        s.write("/bus/pci/rescan", "");
        s
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    pub fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).unwrap();
    }

    pub fn write(&self, rel: &str, data: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
    }

    /// A relative symlink at `link` to the directory `target` (both sysfs-relative).
    pub fn symlink(&self, link: &str, target: &str) {
        let link_p = self.path(link);
        if link_p.symlink_metadata().is_ok() {
            return;
        }
        fs::create_dir_all(link_p.parent().unwrap()).unwrap();
        let depth = link.trim_start_matches('/').matches('/').count();
        let rel = format!("{}{}", "../".repeat(depth), target.trim_start_matches('/'));
        std::os::unix::fs::symlink(rel, link_p).unwrap();
    }

    /// A PCI function directory (a plain device or a bridge without its bus yet).
    pub fn pci_device(&self, devpath: &str) {
        self.mkdir(devpath);
    }

    /// A PCI bridge at `devpath` whose secondary bus is `bus` (`0000:01`).
    pub fn bridge(&self, devpath: &str, bus: &str) {
        self.mkdir(&format!("{devpath}/pci_bus/{bus}"));
    }

    /// A block disk at `devpath` (`…/block/<name>`): its directory, `dev`, `/block/<name>`.
    pub fn block(&self, devpath: &str, d: DevNum) {
        let name = devpath.rsplit('/').next().unwrap();
        self.write(
            &format!("{devpath}/dev"),
            &format!("{}:{}\n", d.major, d.minor),
        );
        self.write(&format!("{devpath}/size"), "2048\n");
        self.symlink(&format!("/block/{name}"), devpath);
    }

    /// A virtio-blk disk under a PCI (or CCW) function; returns its device path.
    pub fn virtio_disk(&self, function: &str, virtio: &str, name: &str, d: DevNum) -> String {
        let devpath = format!("{function}/{virtio}/block/{name}");
        self.block(&devpath, d);
        devpath
    }

    /// A SCSI host `hostN` under a virtio-scsi PCI function, with its `scan` file; returns
    /// the host's device path.
    pub fn scsi_host(&self, function: &str, n: u32) -> String {
        let host = format!("{function}/virtio{}/host{n}", 10 + n);
        self.mkdir(&format!("{host}/scsi_host/host{n}"));
        self.write(&format!("{host}/scsi_host/host{n}/scan"), "");
        self.symlink(
            &format!("/class/scsi_host/host{n}"),
            &format!("{host}/scsi_host/host{n}"),
        );
        host
    }

    /// A SCSI device `h:c:t:l` on a host (see [`scsi_host`]), with a disk when `disk` is
    /// given; returns the disk's device path (or the device's).
    pub fn scsi_device(&self, host: &str, hctl: &str, disk: Option<(&str, DevNum)>) -> String {
        let mut it = hctl.split(':');
        let (h, c, t) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let device = format!("{host}/target{h}:{c}:{t}/{hctl}");
        self.mkdir(&device);
        self.symlink(&format!("/bus/scsi/devices/{hctl}"), &device);
        match disk {
            Some((name, d)) => {
                let devpath = format!("{device}/block/{name}");
                self.block(&devpath, d);
                devpath
            }
            None => device,
        }
    }

    /// What a SCSI host's `scan` file received.
    pub fn scan_written(&self, n: u32) -> String {
        self.read(&format!("/class/scsi_host/host{n}/scan"))
    }
}

pub mod uevents;
