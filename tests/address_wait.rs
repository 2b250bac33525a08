//! Waiting for hot-plugged disks with injected uevents: subscribe before the first look, a
//! disk found from its own `add` event or by looking again after any event, events for other
//! devices ignored, lost events, bus scans, the timeout and its message, and the subscription
//! closed on every way out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_sysfs;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_sysfs::uevents::{Script, Scripted};
use fake_sysfs::{FakeSys, dev};
use kata_volume::address::{
    AddressError, Disk, DiskFinder, FoundBy, GuestAddress, Received, Resolved, Uevent,
};

const F05: &str = "/devices/pci0000:00/0000:00:05.0";
const F06: &str = "/devices/pci0000:00/0000:00:06.0";

fn addr(t: &str, s: &str) -> GuestAddress {
    GuestAddress::parse(Some(t), s).unwrap()
}

struct Setup {
    sys: Arc<FakeSys>,
    script: Arc<Script>,
    _dev: tempfile::TempDir,
    finder: DiskFinder,
}

fn setup() -> Setup {
    let sys = Arc::new(FakeSys::new());
    let dev_dir = tempfile::tempdir().unwrap();
    let finder = DiskFinder::new()
        .with_sysfs_root(sys.root())
        .with_dev_dir(dev_dir.path());
    Setup {
        sys,
        script: Script::new(),
        _dev: dev_dir,
        finder,
    }
}

impl Setup {
    fn find(&self, a: &GuestAddress, timeout: Duration) -> Result<Resolved, AddressError> {
        self.finder.find(a, timeout, &Scripted(self.script.clone()))
    }

    fn find_disk(&self, a: &GuestAddress, timeout: Duration) -> Disk {
        match self.find(a, timeout).unwrap() {
            Resolved::Disk(d) => d,
            other => panic!("{other:?}"),
        }
    }

    /// Every subscription was closed again.
    fn all_closed(&self) {
        let (subscribed, _, closed) = self.script.counts();
        assert_eq!(subscribed, 1, "one subscription per find");
        assert_eq!(closed, subscribed, "the subscription was left open");
    }
}

fn net_added() -> Uevent {
    Uevent {
        action: "add".into(),
        devpath: "/devices/pci0000:00/0000:00:03.0/virtio0/net/eth0".into(),
        subsystem: "net".into(),
        ..Uevent::default()
    }
}

#[test]
fn a_disk_already_there_is_found_without_waiting() {
    let s = setup();
    s.sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    let t0 = Instant::now();
    let d = s.find_disk(&addr("virtio_pci", "05"), Duration::from_secs(10));
    assert_eq!((d.name.as_str(), d.devnum), ("vdb", dev(254, 16)));
    assert_eq!(d.found_by, FoundBy::Sysfs);
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(s.script.counts().1, 0, "no uevent was waited for");
    assert_eq!(
        s.sys.read("/bus/pci/rescan"),
        "",
        "no rescan for a disk already there"
    );
    s.all_closed();
}

#[test]
fn a_disk_plugged_right_after_subscribing_is_seen_by_the_first_look() {
    // The disk appears inside subscribe() and its event is lost: only an implementation
    // that looks at sysfs *after* subscribing finds it (scanning first would miss it, and no
    // event would ever come).
    let s = setup();
    let sys = Arc::clone(&s.sys);
    s.script.on_subscribe(move || {
        sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    });
    let d = s.find_disk(&addr("virtio_pci", "05"), Duration::from_millis(300));
    assert_eq!((d.name.as_str(), d.found_by), ("vdb", FoundBy::Sysfs));
    assert_eq!(s.script.counts().1, 0);
    s.all_closed();
}

#[test]
fn a_hot_plugged_disk_is_found_from_its_add_event() {
    let s = setup();
    s.sys.pci_device(F05);
    let devpath = format!("{F05}/virtio4/block/vdc");
    let ev = Uevent::disk_added(&devpath, "vdc", dev(254, 32));
    s.script
        .then(|| Ok(Received::Idle))
        .then(move || Ok(Received::Event(ev)));
    let t0 = Instant::now();
    // sysfs never shows the disk here: the event alone says where it is
    let d = s.find_disk(&addr("virtio_pci", "05"), Duration::from_secs(10));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!((d.name.as_str(), d.devnum), ("vdc", dev(254, 32)));
    assert_eq!(d.found_by, FoundBy::Uevent);
    assert_eq!(d.sysfs_path, s.sys.path(&devpath));
    assert_eq!(d.node.file_name().unwrap(), "vdc");
    assert_eq!(s.script.counts().1, 2);
    assert_eq!(
        s.sys.read("/bus/pci/rescan"),
        "1",
        "the PCI bus was rescanned once"
    );
    s.all_closed();
}

#[test]
fn any_event_leads_to_another_look() {
    let s = setup();
    let sys = Arc::clone(&s.sys);
    s.script.then(move || {
        // a bridge and the disk behind it arrive; the event seen is the network card's
        sys.bridge("/devices/pci0000:00/0000:00:02.0", "0000:01");
        sys.virtio_disk(
            "/devices/pci0000:00/0000:00:02.0/0000:01:00.0",
            "virtio6",
            "vdd",
            dev(254, 48),
        );
        Ok(Received::Event(net_added()))
    });
    let d = s.find_disk(&addr("virtio_pci", "02/00"), Duration::from_secs(10));
    assert_eq!((d.name.as_str(), d.found_by), ("vdd", FoundBy::Sysfs));
    s.all_closed();
}

#[test]
fn lost_events_lead_to_another_look() {
    let s = setup();
    let sys = Arc::clone(&s.sys);
    s.script.then(move || {
        sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
        Ok(Received::Lost)
    });
    assert_eq!(
        s.find_disk(&addr("virtio_pci", "05"), Duration::from_secs(10))
            .name,
        "vdb"
    );
    s.all_closed();
}

#[test]
fn events_for_other_devices_are_ignored_until_the_timeout() {
    let s = setup();
    s.sys.pci_device(F05);
    let ours = format!("{F05}/virtio4/block/vdb");
    let events = vec![
        // another slot's disk
        Uevent::disk_added(&format!("{F06}/virtio5/block/vdc"), "vdc", dev(254, 32)),
        // our disk's partition, and our disk changing or going away
        Uevent {
            devtype: "partition".into(),
            ..Uevent::disk_added(&format!("{ours}/vdb1"), "vdb1", dev(254, 17))
        },
        Uevent {
            action: "change".into(),
            ..Uevent::disk_added(&ours, "vdb", dev(254, 16))
        },
        Uevent {
            action: "remove".into(),
            ..Uevent::disk_added(&ours, "vdb", dev(254, 16))
        },
        net_added(),
    ];
    for ev in events {
        s.script.then(move || Ok(Received::Event(ev)));
    }
    let t0 = Instant::now();
    let e = s
        .find(&addr("virtio_pci", "05"), Duration::from_millis(400))
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(matches!(e, AddressError::Timeout { .. }), "{e:?}");
    assert!(!e.is_invalid_request());
    assert_eq!(
        e.to_string(),
        "Disk 05 (virtio_pci) did not appear within 400 ms (last seen: no virtio block device \
         under /devices/pci0000:00/0000:00:05.0)"
    );
    assert!(s.script.counts().1 >= 6, "every scripted event was read");
    s.all_closed();
}

#[test]
fn the_timeout_names_the_address_and_the_time() {
    let s = setup();
    let e = s
        .find(&addr("virtio_pci", "02/00"), Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Disk 02/00 (virtio_pci) did not appear within 200 ms (last seen: no PCI device \
         0000:00:02.0)"
    );
    s.all_closed();
    let s = setup();
    let e = s
        .find(&addr("virtio_pci", "05"), Duration::ZERO)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Disk 05 (virtio_pci) did not appear within 0 ms (last seen: no PCI device 0000:00:05.0)"
    );
}

#[test]
fn a_zero_timeout_looks_scans_and_looks_again() {
    let s = setup();
    let e = s.find(&addr("scsi", "2:1"), Duration::ZERO).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Disk 2:1 (scsi) did not appear within 0 ms"),
        "{e}"
    );
    assert_eq!(s.script.counts().1, 0, "no waiting at all");
    s.all_closed();
}

#[test]
fn scsi_hosts_are_asked_to_scan_including_one_that_comes_later() {
    let s = setup();
    let h0 = s.sys.scsi_host(F06, 0);
    let sys = Arc::clone(&s.sys);
    let sys2 = Arc::clone(&s.sys);
    s.script
        .then(move || {
            // a second controller appears; its host must be asked too
            sys.scsi_host("/devices/pci0000:00/0000:00:07.0", 1);
            Ok(Received::Idle)
        })
        .then(move || {
            let devpath = sys2.scsi_device(&h0, "0:0:2:1", Some(("sda", dev(8, 0))));
            Ok(Received::Event(Uevent::disk_added(
                &devpath,
                "sda",
                dev(8, 0),
            )))
        });
    let d = s.find_disk(&addr("scsi", "2:1"), Duration::from_secs(10));
    assert_eq!((d.name.as_str(), d.devnum), ("sda", dev(8, 0)));
    // the disk is in sysfs when its event comes: the event is what found it (the look
    // before the wait had missed it)
    assert_eq!(d.found_by, FoundBy::Uevent);
    assert_eq!(s.sys.scan_written(0), "0 2 1");
    assert_eq!(s.sys.scan_written(1), "0 2 1");
    s.all_closed();
}

#[test]
fn mmio_and_pmem_disks_are_found_from_their_events() {
    let s = setup();
    let p = "/devices/platform/a003c00.virtio_mmio/virtio1/block/vdb";
    s.script
        .then(move || Ok(Received::Event(Uevent::disk_added(p, "vdb", dev(254, 16)))));
    assert_eq!(
        s.find_disk(&addr("virtio_mmio", "/dev/vdb"), Duration::from_secs(5))
            .name,
        "vdb"
    );
    s.all_closed();

    let s = setup();
    let p = "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/namespace0.0/block/pmem0";
    // a pmem0 on PCI first: not a pmem disk
    s.script.then(|| {
        Ok(Received::Event(Uevent::disk_added(
            &format!("{F05}/virtio2/block/pmem0"),
            "pmem0",
            dev(254, 0),
        )))
    });
    s.script
        .then(move || Ok(Received::Event(Uevent::disk_added(p, "pmem0", dev(259, 0)))));
    let d = s.find_disk(&addr("pmem", "/dev/pmem0"), Duration::from_secs(5));
    assert_eq!(d.devnum, dev(259, 0));
    s.all_closed();
}

#[test]
fn ccw_disks_are_found_from_their_events_where_there_is_a_ccw_bus() {
    let s = setup();
    let p = "/devices/css0/0.0.0001/0.0.0005/virtio0/block/vda";
    s.script
        .then(|| {
            Ok(Received::Event(Uevent::disk_added(
                "/devices/css0/0.0.0002/0.0.0006/virtio1/block/vdb",
                "vdb",
                dev(254, 16),
            )))
        })
        .then(move || Ok(Received::Event(Uevent::disk_added(p, "vda", dev(254, 0)))));
    let f = s.finder.clone().with_ccw_bus(true);
    let r = f
        .find(
            &addr("ccw", "0.0.0005"),
            Duration::from_secs(5),
            &Scripted(s.script.clone()),
        )
        .unwrap();
    assert_eq!(r.node().file_name().unwrap(), "vda");
    s.all_closed();
}

#[test]
fn a_receive_error_is_reported_and_the_subscription_closed() {
    let s = setup();
    s.script
        .then(|| Err(io::Error::from_raw_os_error(nix::libc::EBADF)));
    let e = s
        .find(&addr("virtio_pci", "05"), Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(e, AddressError::Receive(_)), "{e:?}");
    assert_eq!(e.to_string(), "Cannot receive kernel uevents");
    assert_eq!(
        kata_volume::error_chain(&e),
        "Cannot receive kernel uevents: Bad file descriptor (os error 9)"
    );
    s.all_closed();
}

#[test]
fn a_failed_subscription_is_reported() {
    let s = setup();
    s.script.fail_subscribe();
    let e = s
        .find(&addr("virtio_pci", "05"), Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(e, AddressError::Subscribe(_)), "{e:?}");
    assert_eq!(e.to_string(), "Cannot subscribe to kernel uevents");
}

#[test]
fn an_error_from_sysfs_ends_the_wait_and_closes_the_subscription() {
    let s = setup();
    let sys = Arc::clone(&s.sys);
    s.script.then(move || {
        // a second disk under the same function: a layout the kernel never makes
        sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
        sys.virtio_disk(F05, "virtio3", "vdc", dev(254, 32));
        Ok(Received::Idle)
    });
    let e = s
        .find(&addr("virtio_pci", "05"), Duration::from_secs(5))
        .unwrap_err();
    assert!(matches!(e, AddressError::Layout { .. }), "{e:?}");
    s.all_closed();
}

#[test]
fn a_huge_timeout_is_no_overflow() {
    let s = setup();
    s.sys.virtio_disk(F05, "virtio2", "vdb", dev(254, 16));
    assert_eq!(
        s.find_disk(&addr("virtio_pci", "05"), Duration::MAX).name,
        "vdb"
    );
    s.all_closed();
}
