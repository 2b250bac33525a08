//! Resolving guest addresses through fake sysfs trees: every address form and layout the
//! finder knows, and every refusal (wrong bus, ambiguity, odd layouts, no CCW bus).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_sysfs;

use std::path::PathBuf;
use std::time::Duration;

use fake_sysfs::uevents::{Script, Scripted};
use fake_sysfs::{FakeSys, dev};
use kata_volume::address::{AddressError, Disk, DiskFinder, FoundBy, GuestAddress, Resolved};

fn addr(t: &str, s: &str) -> GuestAddress {
    GuestAddress::parse(Some(t), s).unwrap()
}

/// A finder on the fake tree, with an empty directory as `/dev` (no nodes).
fn finder(sys: &FakeSys) -> (DiskFinder, tempfile::TempDir) {
    let dev_dir = tempfile::tempdir().unwrap();
    let f = DiskFinder::new()
        .with_sysfs_root(sys.root())
        .with_dev_dir(dev_dir.path());
    (f, dev_dir)
}

fn look(sys: &FakeSys, t: &str, s: &str) -> Option<Disk> {
    let (f, _dev) = finder(sys);
    f.look(&addr(t, s)).unwrap()
}

fn look_err(sys: &FakeSys, t: &str, s: &str) -> AddressError {
    let (f, _dev) = finder(sys);
    match f.look(&addr(t, s)) {
        Ok(d) => panic!("{t} {s}: found {d:?}"),
        Err(e) => e,
    }
}

/// Checks a found disk: name, number, sysfs path under the fake root, node under `/dev`.
fn check(sys: &FakeSys, d: &Disk, name: &str, devpath: &str, n: (u32, u32)) {
    assert_eq!(d.name, name);
    assert_eq!(d.devnum, dev(n.0, n.1));
    assert_eq!(d.sysfs_path, sys.path(devpath));
    assert_eq!(d.node.file_name().unwrap(), name);
    assert!(!d.node_present, "the fake /dev has no nodes");
    assert_eq!(d.found_by, FoundBy::Sysfs);
}

const F05: &str = "/devices/pci0000:00/0000:00:05.0";

#[test]
fn a_disk_on_the_root_bus() {
    let sys = FakeSys::new();
    assert_eq!(look(&sys, "virtio_pci", "05"), None);
    sys.pci_device(F05);
    assert_eq!(
        look(&sys, "virtio_pci", "05"),
        None,
        "a PCI device that is no disk yet"
    );
    let p = sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    check(
        &sys,
        &look(&sys, "virtio_pci", "05").unwrap(),
        "vdb",
        &p,
        (254, 16),
    );
    // another slot, another function: not this disk
    assert_eq!(look(&sys, "virtio_pci", "06"), None);
    assert_eq!(look(&sys, "virtio_pci", "05.1"), None);
}

#[test]
fn a_disk_behind_a_bridge_02_00() {
    let sys = FakeSys::new();
    let bridge = "/devices/pci0000:00/0000:00:02.0";
    sys.bridge(bridge, "0000:01");
    assert_eq!(look(&sys, "virtio_pci", "02/00"), None);
    let p = sys.virtio_disk(
        &format!("{bridge}/0000:01:00.0"),
        "virtio5",
        "vdc",
        dev(254, 32),
    );
    check(
        &sys,
        &look(&sys, "virtio_pci", "02/00").unwrap(),
        "vdc",
        &p,
        (254, 32),
    );
    // the bridge itself has no disk
    assert_eq!(look(&sys, "virtio_pci", "02"), None);
}

#[test]
fn two_bridges_01_0a_05() {
    let sys = FakeSys::new();
    let b1 = "/devices/pci0000:00/0000:00:01.0";
    let b2 = format!("{b1}/0000:01:0a.0");
    sys.bridge(b1, "0000:01");
    sys.bridge(&b2, "0000:02");
    let p = sys.virtio_disk(
        &format!("{b2}/0000:02:05.0"),
        "virtio7",
        "vdd",
        dev(254, 48),
    );
    check(
        &sys,
        &look(&sys, "virtio_pci", "01/0a/05").unwrap(),
        "vdd",
        &p,
        (254, 48),
    );
}

#[test]
fn a_function_other_than_zero() {
    let sys = FakeSys::new();
    let p = sys.virtio_disk(
        "/devices/pci0000:00/0000:00:05.3",
        "virtio1",
        "vde",
        dev(254, 64),
    );
    check(
        &sys,
        &look(&sys, "virtio_pci", "05.3").unwrap(),
        "vde",
        &p,
        (254, 64),
    );
    assert_eq!(look(&sys, "virtio_pci", "05"), None);
}

#[test]
fn an_expander_root_20_00_02() {
    let sys = FakeSys::new();
    let port = "/devices/pci0000:20/0000:20:00.0";
    sys.bridge(port, "0000:21");
    let p = sys.virtio_disk(
        &format!("{port}/0000:21:02.0"),
        "virtio9",
        "vdf",
        dev(254, 80),
    );
    check(
        &sys,
        &look(&sys, "virtio_pci", "20/00/02").unwrap(),
        "vdf",
        &p,
        (254, 80),
    );
}

#[test]
fn odd_pci_layouts_are_errors() {
    let sys = FakeSys::new();
    sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    sys.virtio_disk(F05, "virtio3", "vdc", dev(254, 32));
    let e = look_err(&sys, "virtio_pci", "05");
    assert!(matches!(e, AddressError::Layout { .. }), "{e:?}");
    assert!(e.to_string().contains("several block devices"), "{e}");

    let sys = FakeSys::new();
    let p = sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    sys.write(&format!("{p}/dev"), "254-16\n");
    let e = look_err(&sys, "virtio_pci", "05");
    assert!(
        e.to_string()
            .ends_with("/dev: \"254-16\" is not MAJOR:MINOR"),
        "{e}"
    );

    // the disk without its dev attribute yet is not found (it is still being added)
    sys.remove(&format!("{p}/dev"));
    assert_eq!(look(&sys, "virtio_pci", "05"), None);
}

const HOST0: &str = "/devices/pci0000:00/0000:00:06.0";

#[test]
fn a_scsi_disk_by_target_and_lun() {
    let sys = FakeSys::new();
    let host = sys.scsi_host(HOST0, 0);
    assert_eq!(look(&sys, "scsi", "2:1"), None);
    sys.scsi_device(&host, "0:0:2:1", None);
    assert_eq!(look(&sys, "scsi", "2:1"), None, "no block device yet");
    let p = sys.scsi_device(&host, "0:0:2:1", Some(("sda", dev(8, 0))));
    check(&sys, &look(&sys, "scsi", "2:1").unwrap(), "sda", &p, (8, 0));
    // other targets, LUNs and channels are other disks
    sys.scsi_device(&host, "0:0:2:10", Some(("sdb", dev(8, 16))));
    sys.scsi_device(&host, "0:1:3:0", Some(("sdc", dev(8, 32))));
    assert_eq!(look(&sys, "scsi", "2:1").unwrap().name, "sda");
    assert_eq!(look(&sys, "scsi", "2:10").unwrap().name, "sdb");
    assert_eq!(look(&sys, "scsi", "3:0"), None);
    assert_eq!(look(&sys, "scsi", "1:2"), None);
}

#[test]
fn a_scsi_disk_on_another_host_and_an_ambiguous_one() {
    let sys = FakeSys::new();
    let h1 = sys.scsi_host(HOST0, 1);
    let p = sys.scsi_device(&h1, "1:0:0:3", Some(("sdb", dev(8, 16))));
    check(
        &sys,
        &look(&sys, "scsi", "0:3").unwrap(),
        "sdb",
        &p,
        (8, 16),
    );
    let h2 = sys.scsi_host("/devices/pci0000:00/0000:00:07.0", 2);
    sys.scsi_device(&h2, "2:0:0:3", Some(("sdc", dev(8, 32))));
    let e = look_err(&sys, "scsi", "0:3");
    assert!(matches!(e, AddressError::Ambiguous { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("Disk 0:3 (scsi) is ambiguous: /devices/"),
        "{e}"
    );
    assert!(e.to_string().contains("/block/sdb") && e.to_string().contains("/block/sdc"));
}

#[test]
fn virtio_mmio_names_are_checked_against_sysfs() {
    let sys = FakeSys::new();
    assert_eq!(look(&sys, "virtio_mmio", "/dev/vdb"), None);
    let p = "/devices/platform/a003c00.virtio_mmio/virtio1/block/vdb";
    sys.block(p, dev(254, 16));
    check(
        &sys,
        &look(&sys, "virtio_mmio", "/dev/vdb").unwrap(),
        "vdb",
        p,
        (254, 16),
    );
    // vdc is a PCI disk: not the virtio-mmio disk the host meant
    let q = sys.virtio_disk(F05, "virtio2", "vdc", dev(254, 32));
    let e = look_err(&sys, "virtio_mmio", "/dev/vdc");
    assert!(e.is_invalid_request());
    assert_eq!(
        e.to_string(),
        format!(
            "Disk /dev/vdc (virtio_mmio) is not what its source_type says: vdc is at {q}, not a virtio-mmio disk"
        )
    );
}

#[test]
fn pmem_names_are_checked_against_sysfs() {
    let sys = FakeSys::new();
    let p = "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/namespace0.0/block/pmem0";
    sys.block(p, dev(259, 0));
    check(
        &sys,
        &look(&sys, "pmem", "/dev/pmem0").unwrap(),
        "pmem0",
        p,
        (259, 0),
    );
    assert_eq!(look(&sys, "pmem", "/dev/pmem1"), None);
    sys.block("/devices/virtual/block/pmem1", dev(259, 1));
    let e = look_err(&sys, "pmem", "/dev/pmem1");
    assert!(matches!(e, AddressError::WrongBus { .. }), "{e:?}");
    assert!(
        e.to_string().ends_with("not a pmem (libnvdimm) disk"),
        "{e}"
    );
}

#[test]
fn ccw_is_refused_without_a_ccw_bus_and_found_with_one() {
    let sys = FakeSys::new();
    let dev_p = "/devices/css0/0.0.0001/0.0.0005";
    let p = sys.virtio_disk(dev_p, "virtio0", "vda", dev(254, 0));
    sys.symlink("/bus/ccw/devices/0.0.0005", dev_p);
    // this machine (x86_64) has no CCW bus: the default finder refuses, without waiting
    let script = Script::new();
    let e = DiskFinder::new()
        .with_sysfs_root(sys.root())
        .find(
            &addr("ccw", "0.0.0005"),
            Duration::from_secs(10),
            &Scripted(script.clone()),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Disk 0.0.0005 (virtio_ccw) cannot be found: no CCW bus on this machine"
    );
    assert_eq!(script.counts(), (0, 0, 0), "refused before subscribing");
    let (f, _d) = finder(&sys);
    let found = f
        .with_ccw_bus(true)
        .look(&addr("virtio_ccw", "0.0.0005"))
        .unwrap();
    check(&sys, &found.unwrap(), "vda", &p, (254, 0));
}

#[test]
fn a_plain_path_is_not_looked_up() {
    let sys = FakeSys::new();
    let script = Script::new();
    let (f, _d) = finder(&sys);
    let a = GuestAddress::parse(None, "/dev/vdz").unwrap();
    let r = f
        .find(&a, Duration::from_secs(10), &Scripted(script.clone()))
        .unwrap();
    assert_eq!(r, Resolved::Path(PathBuf::from("/dev/vdz")));
    assert_eq!(r.node(), PathBuf::from("/dev/vdz"));
    assert_eq!(script.counts(), (0, 0, 0));
    assert_eq!(f.look(&a).unwrap(), None);
}

#[test]
fn the_node_is_reported_present_only_when_it_is_the_disk() {
    let sys = FakeSys::new();
    // a real block device of this machine, so the node check has something true to find
    let real = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        })
        .expect("this test needs one block device in /dev (a loop device will do)");
    let name = real.file_name().into_string().unwrap();
    let rdev = std::os::unix::fs::MetadataExt::rdev(&real.metadata().unwrap());
    let (ma, mi) = (
        u32::try_from(nix::sys::stat::major(rdev)).unwrap(),
        u32::try_from(nix::sys::stat::minor(rdev)).unwrap(),
    );
    sys.virtio_disk(F05, "virtio2", &name, dev(ma, mi));
    let f = DiskFinder::new().with_sysfs_root(sys.root());
    let d = f.look(&addr("virtio_pci", "05")).unwrap().unwrap();
    assert!(d.node_present);
    assert_eq!(d.node, PathBuf::from("/dev").join(&name));

    // the same name with another number: something else sits at /dev/<name>
    let sys2 = FakeSys::new();
    sys2.virtio_disk(F05, "virtio2", &name, dev(ma, mi + 1000));
    let e = DiskFinder::new()
        .with_sysfs_root(sys2.root())
        .look(&addr("virtio_pci", "05"))
        .unwrap_err();
    assert!(matches!(e, AddressError::Node { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("the disk is {ma}:{}", mi + 1000)),
        "{e}"
    );

    // a regular file in the device directory is not a node
    let (f, devdir) = finder(&sys);
    std::fs::write(devdir.path().join(&name), "").unwrap();
    let e = f.look(&addr("virtio_pci", "05")).unwrap_err();
    assert!(e.to_string().ends_with("it is not a block device"), "{e}");
}
