//! Unit tests of the module's inner steps, after the Kata agent's own cases: the PCI walk
//! (`test_pcipath_to_sysfs`), the uevent matchers (`test_{virtio_blk,scsi_block,mmio_block}_matcher`)
//! and uevent parsing.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;

use super::sysfs::Sysfs;
use super::*;
use crate::system::DevNum;

fn pci(s: &str) -> PciPath {
    s.parse().unwrap()
}

fn walk(root: &std::path::Path, s: &str) -> Result<String, String> {
    pci(s).function_devpath(Sysfs::new(root)).unwrap()
}

#[test]
fn pcipath_to_sysfs_follows_the_bridges_as_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bus0 = root.join("devices/pci0000:00");
    fs::create_dir_all(&bus0).unwrap();
    let p = |rel: &str| format!("/devices/pci0000:00{rel}");

    // nothing behind the root yet: the last element need not exist to be named, a bridge must
    assert_eq!(walk(root, "02"), Ok(p("/0000:00:02.0")));
    assert_eq!(
        walk(root, "02/03"),
        Err("no PCI device 0000:00:02.0".into())
    );
    assert_eq!(
        walk(root, "02/03/04"),
        Err("no PCI device 0000:00:02.0".into())
    );

    // the device at 02 exists but is no bridge yet
    fs::create_dir_all(bus0.join("0000:00:02.0")).unwrap();
    assert_eq!(walk(root, "02"), Ok(p("/0000:00:02.0")));
    assert_eq!(
        walk(root, "02/03"),
        Err("PCI device 0000:00:02.0 is not a bridge (no pci_bus)".into())
    );

    // 02 is a bridge to bus 01
    fs::create_dir_all(bus0.join("0000:00:02.0/pci_bus/0000:01")).unwrap();
    assert_eq!(walk(root, "02/03"), Ok(p("/0000:00:02.0/0000:01:03.0")));
    assert_eq!(
        walk(root, "02/03/04"),
        Err("no PCI device 0000:01:03.0".into())
    );

    // 01:03 is a bridge to bus 02
    fs::create_dir_all(bus0.join("0000:00:02.0/0000:01:03.0/pci_bus/0000:02")).unwrap();
    assert_eq!(walk(root, "02"), Ok(p("/0000:00:02.0")));
    assert_eq!(walk(root, "02/03"), Ok(p("/0000:00:02.0/0000:01:03.0")));
    assert_eq!(
        walk(root, "02/03/04"),
        Ok(p("/0000:00:02.0/0000:01:03.0/0000:02:04.0"))
    );
    // functions are part of each element
    assert_eq!(
        walk(root, "02/03/04.5"),
        Ok(p("/0000:00:02.0/0000:01:03.0/0000:02:04.5"))
    );
}

#[test]
fn pci_walk_refuses_impossible_bridges() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bridge = root.join("devices/pci0000:00/0000:00:02.0/pci_bus");
    fs::create_dir_all(&bridge).unwrap();
    assert_eq!(
        walk(root, "02/00"),
        Err("PCI bridge 0000:00:02.0 has no bus yet".into())
    );
    fs::create_dir_all(bridge.join("0000:01")).unwrap();
    fs::create_dir_all(bridge.join("0000:05")).unwrap();
    let e = pci("02/00").function_devpath(Sysfs::new(root)).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("pci_bus: expected one PCI bus, found 0000:01, 0000:05"),
        "{e}"
    );
    fs::remove_dir(bridge.join("0000:01")).unwrap();
    fs::remove_dir(bridge.join("0000:05")).unwrap();
    fs::create_dir_all(bridge.join("bus-one")).unwrap();
    let e = pci("02/00").function_devpath(Sysfs::new(root)).unwrap_err();
    assert!(
        e.to_string().ends_with("\"bus-one\" is not a PCI bus"),
        "{e}"
    );
}

#[test]
fn pci_expander_roots_name_devices_on_their_own_bus() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(
        walk(root, "20/00/02"),
        Err("no PCI root /devices/pci0000:20".into())
    );
    fs::create_dir_all(root.join("devices/pci0000:20/0000:20:00.0/pci_bus/0000:21")).unwrap();
    assert_eq!(
        walk(root, "20/00/02"),
        Ok("/devices/pci0000:20/0000:20:00.0/0000:21:02.0".into())
    );
}

fn added(devpath: &str, devname: &str) -> Uevent {
    Uevent::disk_added(
        devpath,
        devname,
        DevNum {
            major: 254,
            minor: 0,
        },
    )
}

#[test]
fn virtio_blk_matcher() {
    let a = "/devices/pci0000:00/0000:00:0a.0";
    let b = "/devices/pci0000:00/0000:00:0a.0/0000:00:0b.0";
    let ev_a = added(&format!("{a}/virtio4/block/vda"), "vda");
    let ev_b = added(&format!("{b}/virtio0/block/vda"), "vda");
    assert!(ev_a.added_disk().is_some() && ev_b.added_disk().is_some());
    assert!(pci::event_matches(a, &ev_a));
    assert!(pci::event_matches(b, &ev_b));
    assert!(!pci::event_matches(b, &ev_a));
    assert!(!pci::event_matches(a, &ev_b));
    // a partition, a longer slot number, a non-virtio child, a name that disagrees
    assert!(!pci::event_matches(
        a,
        &added(&format!("{a}/virtio4/block/vda/vda1"), "vda1")
    ));
    assert!(!pci::event_matches(
        "/devices/pci0000:00/0000:00:0a.0",
        &added("/devices/pci0000:00/0000:00:0a.01/virtio4/block/vda", "vda")
    ));
    assert!(!pci::event_matches(
        a,
        &added(&format!("{a}/nvme/block/vda"), "vda")
    ));
    assert!(!pci::event_matches(
        a,
        &added(&format!("{a}/virtio4/block/vda"), "vdb")
    ));
}

#[test]
fn scsi_block_matcher() {
    let host = "/devices/pci0000:00/0000:00:00.0/virtio0/host0";
    let ev_a = added(&format!("{host}/target0:0:0/0:0:0:0/block/sda"), "sda");
    let ev_b = added(&format!("{host}/target0:0:2/0:0:2:0/block/sdb"), "sdb");
    let (a, b) = (ScsiAddress::new(0, 0), ScsiAddress::new(2, 0));
    assert!(scsi::event_matches(a, &ev_a));
    assert!(scsi::event_matches(b, &ev_b));
    assert!(!scsi::event_matches(b, &ev_a));
    assert!(!scsi::event_matches(a, &ev_b));
    // another host is fine, another channel is not; 2:1 is not 2:10
    let other_host = added("/devices/x/host3/target3:0:2/3:0:2:0/block/sdc", "sdc");
    assert!(scsi::event_matches(b, &other_host));
    let channel1 = added("/devices/x/host0/target0:1:2/0:1:2:0/block/sdc", "sdc");
    assert!(!scsi::event_matches(b, &channel1));
    let lun10 = added("/devices/x/host0/target0:0:2/0:0:2:10/block/sdd", "sdd");
    assert!(!scsi::event_matches(ScsiAddress::new(2, 1), &lun10));
}

#[test]
fn mmio_block_matcher() {
    let vdb: MmioName = "/dev/vdb".parse().unwrap();
    assert!(vdb.event_matches(&added(
        "/devices/platform/a003e00.virtio_mmio/virtio1/block/vdb",
        "vdb"
    )));
    assert!(vdb.event_matches(&added(
        "/devices/LNXSYSTM:00/LNRO0005:01/virtio1/block/vdb",
        "vdb"
    )));
    assert!(!vdb.event_matches(&added(
        "/devices/platform/a003e00.virtio_mmio/virtio1/block/vdc",
        "vdc"
    )));
    // the same name on PCI is another disk
    assert!(!vdb.event_matches(&added(
        "/devices/pci0000:00/0000:00:05.0/virtio1/block/vdb",
        "vdb"
    )));
}

#[test]
fn pmem_and_ccw_matchers() {
    let p: PmemName = "/dev/pmem0".parse().unwrap();
    let acpi =
        "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/namespace0.0/block/pmem0";
    assert!(p.event_matches(&added(acpi, "pmem0")));
    assert!(!p.event_matches(&added("/devices/virtual/block/pmem0", "pmem0")));
    let c: CcwAddress = "0.0.0005".parse().unwrap();
    assert!(c.event_matches(&added(
        "/devices/css0/0.0.0001/0.0.0005/virtio2/block/vda",
        "vda"
    )));
    assert!(!c.event_matches(&added(
        "/devices/css0/0.0.0001/0.0.0006/virtio2/block/vda",
        "vda"
    )));
    assert!(!c.event_matches(&added(
        "/devices/css0/0.0.0001/0.0.0005/virtio2/block/vda",
        "vdb"
    )));
}

#[test]
fn only_whole_disks_being_added_count() {
    let p = "/devices/pci0000:00/0000:00:05.0/virtio2/block/vdb";
    let base = added(p, "vdb");
    assert_eq!(
        base.added_disk(),
        Some(DevNum {
            major: 254,
            minor: 0
        })
    );
    for ev in [
        Uevent {
            action: "change".into(),
            ..base.clone()
        },
        Uevent {
            action: "remove".into(),
            ..base.clone()
        },
        Uevent {
            subsystem: "bdi".into(),
            ..base.clone()
        },
        Uevent {
            devtype: "partition".into(),
            ..base.clone()
        },
        Uevent {
            devname: String::new(),
            ..base.clone()
        },
        Uevent {
            devname: "../vdb".into(),
            ..base.clone()
        },
        Uevent {
            major: None,
            ..base.clone()
        },
        Uevent {
            minor: None,
            ..base.clone()
        },
    ] {
        assert_eq!(ev.added_disk(), None, "{ev:?}");
    }
    // no DEVTYPE is accepted (older kernels), as the agent does
    assert!(
        Uevent {
            devtype: String::new(),
            ..base
        }
        .added_disk()
        .is_some()
    );
}

#[test]
fn uevents_parse_from_the_kernel_format() {
    let msg = b"add@/devices/pci0000:00/0000:00:09.0/virtio3/block/vdb\0ACTION=add\0\
DEVPATH=/devices/pci0000:00/0000:00:09.0/virtio3/block/vdb\0SUBSYSTEM=block\0MAJOR=254\0\
MINOR=16\0DEVNAME=vdb\0DEVTYPE=disk\0DISKSEQ=3\0SEQNUM=1234\0";
    let ev = Uevent::parse(msg).unwrap();
    assert_eq!(ev.action, "add");
    assert_eq!(
        ev.devpath,
        "/devices/pci0000:00/0000:00:09.0/virtio3/block/vdb"
    );
    assert_eq!(
        (
            ev.subsystem.as_str(),
            ev.devtype.as_str(),
            ev.devname.as_str()
        ),
        ("block", "disk", "vdb")
    );
    assert_eq!(
        (ev.major, ev.minor, ev.seqnum),
        (Some(254), Some(16), Some(1234))
    );
    assert_eq!(
        ev.added_disk(),
        Some(DevNum {
            major: 254,
            minor: 16
        })
    );
    // udev's re-broadcasts, garbage, and a header that disagrees with the fields
    assert_eq!(Uevent::parse(b"libudev\0\xfe\xed\xca\xfe"), None);
    assert_eq!(Uevent::parse(b""), None);
    assert_eq!(Uevent::parse(b"\xff\xfe"), None);
    assert_eq!(
        Uevent::parse(b"add@/devices/a\0ACTION=add\0DEVPATH=/devices/b\0"),
        None
    );
    assert_eq!(
        Uevent::parse(b"add@/devices/a\0ACTION=remove\0DEVPATH=/devices/a\0"),
        None
    );
    assert_eq!(
        Uevent::parse(b"add@devices/a\0ACTION=add\0DEVPATH=devices/a\0"),
        None
    );
    // odd fields are skipped, not fatal
    let ev = Uevent::parse(b"add@/devices/a\0ACTION=add\0DEVPATH=/devices/a\0NOEQUALS\0MAJOR=x\0")
        .unwrap();
    assert_eq!(ev.major, None);
}

#[test]
fn block_names_are_kernel_names_only() {
    for ok in ["vda", "sda", "pmem0", "nvme0n1", "dm-0", "a.b:c_d"] {
        assert!(is_block_name(ok), "{ok}");
    }
    for bad in ["", ".", "..", "a/b", "vd a", "x".repeat(32).as_str(), "vdé"] {
        assert!(!is_block_name(bad), "{bad}");
    }
}
