//! Guest addresses: strict parsing of (source_type, source), the canonical `Display`, every
//! refusal with its message, and the timeout syntax.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use kata_volume::address::{
    AddressError, GuestAddress, PciPath, SourceType, format_duration, parse_timeout,
};
use proptest::prelude::*;

fn parse(t: &str, s: &str) -> GuestAddress {
    GuestAddress::parse(Some(t), s).unwrap_or_else(|e| panic!("{t} {s:?}: {e}"))
}

fn refused(t: Option<&str>, s: &str) -> String {
    match GuestAddress::parse(t, s) {
        Ok(a) => panic!("{t:?} {s:?} was accepted as {a:?}"),
        Err(e) => {
            assert!(e.is_invalid_request(), "{e:?}");
            e.to_string()
        }
    }
}

fn pci(s: &str) -> PciPath {
    match parse("virtio_pci", s) {
        GuestAddress::Pci(p) => p,
        other => panic!("{other:?}"),
    }
}

fn slots(p: &PciPath) -> Vec<(u8, u8)> {
    p.elements()
        .iter()
        .map(|e| (e.slot(), e.function()))
        .collect()
}

#[test]
fn pci_paths_parse_into_slots_and_functions() {
    assert_eq!(slots(&pci("05")), [(5, 0)]);
    assert_eq!(slots(&pci("02/00")), [(2, 0), (0, 0)]);
    // upstream block_device.rs source
    assert_eq!(slots(&pci("01/0a/05")), [(1, 0), (0xa, 0), (5, 0)]);
    assert_eq!(slots(&pci("1f.7")), [(0x1f, 7)]);
    assert_eq!(slots(&pci("02.3/0A")), [(2, 3), (0xa, 0)]);
    assert_eq!(pci("01/0a/05").root_bus(), 0);
    assert_eq!(pci("05").root_devpath(), "/devices/pci0000:00");
}

#[test]
fn pci_display_is_canonical() {
    for (given, canonical) in [
        ("02/00", "02/00"),
        ("02.0/00.0", "02/00"),
        ("0A/1F.7", "0a/1f.7"),
        ("01/0a/05", "01/0a/05"),
        ("20/00/02", "20/00/02"),
        ("FF/1f/00.1", "ff/1f/00.1"),
    ] {
        assert_eq!(parse("virtio_pci", given).to_string(), canonical, "{given}");
    }
    assert_eq!(
        parse("virtio_pci", "02/00").describe(),
        "02/00 (virtio_pci)"
    );
}

#[test]
fn pci_expander_root_rule_needs_three_elements_and_a_bus_above_1f() {
    // Kata main: ≥ 3 elements and a first element ≥ 20 is a root bus, not a slot
    let p = pci("20/00/02");
    assert_eq!(p.root_bus(), 0x20);
    assert_eq!(slots(&p), [(0, 0), (2, 0)]);
    assert_eq!(p.root_devpath(), "/devices/pci0000:20");
    let p = pci("ff/01/02/03");
    assert_eq!((p.root_bus(), slots(&p).len()), (0xff, 3));
    // below 20 it is a slot, whatever the length
    let p = pci("02/00/01");
    assert_eq!((p.root_bus(), slots(&p)), (0, vec![(2, 0), (0, 0), (1, 0)]));
    // two elements: 20 is a slot, and too big for one
    assert_eq!(
        refused(Some("virtio_pci"), "20/00"),
        "Invalid source \"20/00\" for source_type virtio_pci: element \"20\": slot 20 is above 1f"
    );
    // a function makes it a slot, not a bus
    assert!(refused(Some("virtio_pci"), "20.1/00/02").contains("slot 20 is above 1f"));
}

#[test]
fn bad_pci_paths_are_refused_naming_the_element() {
    let cases = [
        ("", "is empty"),
        ("5", "element \"5\": the slot must be two hex digits"),
        ("005", "element \"005\": the slot must be two hex digits"),
        ("0g", "element \"0g\": the slot must be two hex digits"),
        ("20", "element \"20\": slot 20 is above 1f"),
        ("02/", "element \"\": the slot must be two hex digits"),
        ("/02", "element \"\": the slot must be two hex digits"),
        ("02//03", "element \"\": the slot must be two hex digits"),
        (
            "02.8",
            "element \"02.8\": the function must be one digit 0-7",
        ),
        ("02.", "element \"02.\": the function must be one digit 0-7"),
        (
            "02.00",
            "element \"02.00\": the function must be one digit 0-7",
        ),
        ("+2", "element \"+2\": the slot must be two hex digits"),
        ("02 ", "element \"02 \": the slot must be two hex digits"),
        ("0x2", "element \"0x2\": the slot must be two hex digits"),
        (
            "02:03",
            "element \"02:03\": the slot must be two hex digits",
        ),
    ];
    for (s, why) in cases {
        assert_eq!(
            refused(Some("virtio_pci"), s),
            format!("Invalid source {s:?} for source_type virtio_pci: {why}"),
        );
    }
    let deep = vec!["01"; 18].join("/");
    assert!(refused(Some("virtio_pci"), &deep).ends_with("has 18 elements, more than 17"));
    assert!(GuestAddress::parse(Some("virtio_pci"), &vec!["01"; 17].join("/")).is_ok());
}

#[test]
fn scsi_addresses_are_target_and_lun() {
    // upstream block_device.rs source: index 513 = 2:1
    let GuestAddress::Scsi(a) = parse("scsi", "2:1") else {
        panic!()
    };
    assert_eq!((a.target(), a.lun()), (2, 1));
    assert_eq!(a.to_string(), "2:1");
    assert_eq!(parse("scsi", "0:0").to_string(), "0:0");
    assert_eq!(
        parse("scsi", "4294967295:16383").to_string(),
        "4294967295:16383"
    );
    assert_eq!(parse("scsi", "2:1").describe(), "2:1 (scsi)");
    for (s, why) in [
        ("2", "expected <target>:<lun>"),
        (
            "2:1:0",
            "expected <target>:<lun>, found more than two parts",
        ),
        (":1", "target \"\" is not a decimal number"),
        ("2:", "LUN \"\" is not a decimal number"),
        ("a:1", "target \"a\" is not a decimal number"),
        ("-1:0", "target \"-1\" is not a decimal number"),
        ("02:1", "target \"02\" has a leading zero"),
        ("2:01", "LUN \"01\" has a leading zero"),
        ("4294967296:0", "target \"4294967296\" is above 4294967295"),
        (" 2:1", "target \" 2\" is not a decimal number"),
    ] {
        assert_eq!(
            refused(Some("scsi"), s),
            format!("Invalid source {s:?} for source_type scsi: {why}")
        );
    }
}

#[test]
fn mmio_and_pmem_name_their_node() {
    let GuestAddress::Mmio(n) = parse("virtio_mmio", "/dev/vdb") else {
        panic!()
    };
    assert_eq!(n.name(), "vdb");
    assert_eq!(parse("virtio_mmio", "/dev/vdaa").to_string(), "/dev/vdaa");
    let GuestAddress::Pmem(n) = parse("pmem", "/dev/pmem12") else {
        panic!()
    };
    assert_eq!(n.name(), "pmem12");
    assert_eq!(parse("pmem", "/dev/pmem0").describe(), "/dev/pmem0 (pmem)");
    for s in [
        "/dev/vd",
        "/dev/sda",
        "vdb",
        "/dev/vdB",
        "/dev/vdb1",
        "/dev/vdabcde",
        "/dev/vdb/",
    ] {
        let m = refused(Some("virtio_mmio"), s);
        assert!(
            m.starts_with(&format!(
                "Invalid source {s:?} for source_type virtio_mmio: expected /dev/vd"
            )),
            "{m}"
        );
    }
    for (s, why) in [
        ("/dev/pmem", "expected /dev/pmem and a decimal number"),
        ("/dev/pmemx", "expected /dev/pmem and a decimal number"),
        ("/dev/pmem0p1", "expected /dev/pmem and a decimal number"),
        ("/dev/pmem01", "the number has a leading zero"),
        ("/dev/pmem99999999999", "the number is too large"),
        ("pmem0", "expected /dev/pmem<N>"),
    ] {
        assert_eq!(
            refused(Some("pmem"), s),
            format!("Invalid source {s:?} for source_type pmem: {why}")
        );
    }
}

#[test]
fn ccw_bus_ids_parse_under_both_names() {
    // upstream block_device.rs source
    let GuestAddress::Ccw(a) = parse("virtio_ccw", "0.0.0005") else {
        panic!()
    };
    assert_eq!((a.ssid(), a.devno()), (0, 5));
    assert_eq!(a.to_string(), "0.0.0005");
    assert_eq!(parse("ccw", "0.0.0005"), parse("virtio_ccw", "0.0.0005"));
    assert_eq!(parse("ccw", "0.1.5").to_string(), "0.1.0005");
    assert_eq!(parse("ccw", "0.3.ABCD").to_string(), "0.3.abcd");
    assert_eq!(parse("ccw", "0.0.0005").describe(), "0.0.0005 (virtio_ccw)");
    for (s, why) in [
        ("1.0.0005", "the channel subsystem id must be 0"),
        ("0.4.0005", "the subchannel set id must be one digit 0-3"),
        ("0.00.0005", "the subchannel set id must be one digit 0-3"),
        ("0.0.00005", "the device number must be 1 to 4 hex digits"),
        ("0.0.", "the device number must be 1 to 4 hex digits"),
        ("0.0.xyz", "the device number must be 1 to 4 hex digits"),
        ("0.0", "expected 0.<ssid>.<devno>"),
        ("0.0.0005.1", "expected 0.<ssid>.<devno>"),
    ] {
        assert_eq!(
            refused(Some("ccw"), s),
            format!("Invalid source {s:?} for source_type virtio_ccw: {why}")
        );
    }
}

#[test]
fn without_a_source_type_the_source_is_a_path() {
    for t in [None, Some("")] {
        assert_eq!(
            GuestAddress::parse(t, "/dev/vdb").unwrap(),
            GuestAddress::Path(PathBuf::from("/dev/vdb"))
        );
    }
    let p = GuestAddress::parse(None, "/run/images/layer.img").unwrap();
    assert_eq!(
        (p.to_string(), p.source_type()),
        ("/run/images/layer.img".into(), None)
    );
    assert_eq!(p.describe(), "/run/images/layer.img");
    assert_eq!(
        refused(None, "02/00"),
        "Invalid source \"02/00\" for source_type (none): is neither an absolute path nor, \
         without a source_type, any address"
    );
    assert_eq!(
        refused(None, ""),
        "Invalid source \"\" for source_type (none): is empty"
    );
    assert!(refused(None, "/dev/v\0db").ends_with("contains a NUL byte"));
    let long = format!("/{}", "a".repeat(5000));
    assert!(refused(None, &long).ends_with("longer than 4096 bytes"));
    // the message shortens the value
    assert!(refused(None, &long).len() < 300);
}

#[test]
fn unknown_source_types_are_refused_listing_the_known_ones() {
    for t in ["virtio_blk", "blk", "PCI", "virtio-pci", "nvdimm"] {
        assert_eq!(
            refused(Some(t), "02/00"),
            format!(
                "Unknown source_type {t:?} (source \"02/00\"): expected virtio_pci, scsi, \
                 virtio_mmio, pmem or virtio_ccw"
            )
        );
    }
}

#[test]
fn source_types_by_name_and_by_driver() {
    for t in SourceType::ALL {
        let a = GuestAddress::parse(
            Some(t.as_str()),
            match t {
                SourceType::VirtioPci => "02/00",
                SourceType::Scsi => "0:1",
                SourceType::VirtioMmio => "/dev/vdc",
                SourceType::Pmem => "/dev/pmem1",
                SourceType::VirtioCcw => "0.0.0001",
            },
        )
        .unwrap();
        assert_eq!(a.source_type(), Some(t));
        assert_eq!(t.to_string(), t.as_str());
    }
    for (driver, t) in [
        ("blk", Some(SourceType::VirtioPci)),
        ("scsi", Some(SourceType::Scsi)),
        ("mmioblk", Some(SourceType::VirtioMmio)),
        ("nvdimm", Some(SourceType::Pmem)),
        ("blk-ccw", Some(SourceType::VirtioCcw)),
        ("dmverity", None),
        ("virtio_pci", None),
    ] {
        assert_eq!(SourceType::from_driver(driver), t, "{driver}");
    }
}

#[test]
fn timeouts_parse_in_seconds_or_milliseconds() {
    for (s, d) in [
        ("10", Duration::from_secs(10)),
        ("10s", Duration::from_secs(10)),
        ("500ms", Duration::from_millis(500)),
        ("0", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("3600s", Duration::from_secs(3600)),
    ] {
        assert_eq!(parse_timeout(s), Ok(d), "{s}");
    }
    for s in ["", "s", "ms", "1.5s", "-1", "10m", " 10", "10 s", "1e3"] {
        assert_eq!(
            parse_timeout(s),
            Err(format!(
                "Invalid timeout {s:?}: expected a whole number of seconds (10, 10s) or \
                 milliseconds (500ms)"
            ))
        );
    }
    for s in ["3601", "3600001ms", "99999999999999999999999"] {
        assert_eq!(
            parse_timeout(s),
            Err(format!("Invalid timeout {s:?}: longer than 3600 s"))
        );
    }
}

#[test]
fn durations_are_shown_in_seconds_or_milliseconds() {
    assert_eq!(format_duration(Duration::from_secs(10)), "10 s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
    assert_eq!(format_duration(Duration::from_millis(1001)), "1.001 s");
    assert_eq!(format_duration(Duration::from_millis(250)), "250 ms");
    assert_eq!(format_duration(Duration::ZERO), "0 ms");
}

#[test]
fn ccw_refusal_and_errors_are_typed_as_the_request_at_fault() {
    let e = AddressError::NoCcwBus {
        address: "0.0.0005".into(),
    };
    assert!(e.is_invalid_request());
    assert_eq!(
        e.to_string(),
        "Disk 0.0.0005 (virtio_ccw) cannot be found: no CCW bus on this machine"
    );
    let t = AddressError::Timeout {
        address: "02/00 (virtio_pci)".into(),
        timeout: Duration::from_secs(10),
        last: String::new(),
    };
    assert!(!t.is_invalid_request());
    assert_eq!(
        t.to_string(),
        "Disk 02/00 (virtio_pci) did not appear within 10 s"
    );
}

fn pci_path_strategy() -> impl Strategy<Value = String> {
    let element = (0u8..=0x1f, 0u8..=7).prop_map(|(s, f)| {
        if f == 0 {
            format!("{s:02x}")
        } else {
            format!("{s:02x}.{f}")
        }
    });
    (
        proptest::option::of(0x20u8..=0xff),
        proptest::collection::vec(element, 1..=16),
    )
        .prop_map(|(root, els)| match root {
            Some(r) if els.len() >= 2 => format!("{r:02x}/{}", els.join("/")),
            _ => els.join("/"),
        })
}

proptest! {
    #[test]
    fn canonical_pci_paths_round_trip(s in pci_path_strategy()) {
        let a = GuestAddress::parse(Some("virtio_pci"), &s).unwrap();
        prop_assert_eq!(a.to_string(), s.clone());
        prop_assert_eq!(GuestAddress::parse(Some("virtio_pci"), &a.to_string()).unwrap(), a);
    }

    #[test]
    fn scsi_addresses_round_trip(t in any::<u32>(), l in any::<u32>()) {
        let s = format!("{t}:{l}");
        prop_assert_eq!(GuestAddress::parse(Some("scsi"), &s).unwrap().to_string(), s);
    }

    #[test]
    fn nothing_panics_on_any_source(t in "(virtio_pci|scsi|virtio_mmio|pmem|ccw|x)", s in "\\PC{0,40}") {
        if let Ok(a) = GuestAddress::parse(Some(&t), &s) {
            // whatever is accepted prints in a form that parses back to the same address
            prop_assert_eq!(GuestAddress::parse(Some(&t), &a.to_string()).unwrap(), a);
        }
    }
}
