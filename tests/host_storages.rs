//! `host::storages`: a nydus-snapshotter mount → the Storages a Kata runtime sends, under
//! both conventions (shapes of `docs/kata-runtime.md`), the order kept, unverified layers as
//! upstream sends them, no panic on any input; `host/refusals.rs`: the source map's grammar
//! and every refusal with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kata_volume::address::GuestAddress;
use kata_volume::host::{self, ContainerId, ContainerdMount, Convention, HostError, SourceMap};
use kata_volume::request::{self, Limits, Request, Storage};
use kata_volume::volume::{DmVerityInfo, KataVirtualVolume, encode_option};
use proptest::prelude::*;

const VV: &str = "/run/kata-containers/virtual-volumes";
const CREATE: &str = "io.katacontainers.volume.overlayfs.create_directory";

fn hash(i: u8) -> String {
    format!("{:02x}", 0xa0 + i).repeat(32)
}

fn disk(i: u8) -> String {
    format!("/var/lib/containerd-nydus/cache/{i}.layer.disk")
}

/// A tarfs-style verity block (512/4096, no superblock), as nydus-snapshotter writes it.
fn verity(i: u8) -> DmVerityInfo {
    DmVerityInfo {
        hashtype: "sha256".into(),
        hash: hash(i),
        blocknum: 2361,
        blocksize: 512,
        hashsize: 4096,
        offset: 1_212_416,
        ..Default::default()
    }
}

fn wire(source: &str, verity: Option<DmVerityInfo>) -> KataVirtualVolume {
    KataVirtualVolume {
        volume_type: "layer_raw_block".into(),
        source: source.into(),
        fs_type: "erofs".into(),
        options: vec!["ro".into()],
        dm_verity: verity,
        ..Default::default()
    }
}

fn layer(i: u8) -> String {
    encode_option(&wire(&disk(i), Some(verity(i))))
}

fn unverified(i: u8) -> String {
    encode_option(&wire(&disk(i), None))
}

fn nydus(options: &[String]) -> ContainerdMount {
    ContainerdMount {
        mount_type: "fuse.nydus-overlayfs".into(),
        options: options.to_vec(),
    }
}

fn map(entries: &[&str]) -> SourceMap {
    SourceMap::parse(entries).unwrap()
}

fn cid(id: &str) -> ContainerId {
    ContainerId::parse(id).unwrap()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn run(options: &[String], entries: &[&str], convention: Convention) -> Vec<Storage> {
    host::storages(&nydus(options), &cid("c1"), &map(entries), convention).unwrap()
}

fn refused(options: &[String], entries: &[&str]) -> HostError {
    host::storages(&nydus(options), &cid("c1"), &map(entries), Convention::Ccv0).unwrap_err()
}

fn verity_json(i: u8) -> String {
    format!(
        r#"verity_info={{"hashtype":"sha256","hash":"{}","blocknum":2361,"blocksize":512,"hashsize":4096,"offset":1212416}}"#,
        hash(i)
    )
}

fn overlay(lowers: &[String], id: &str) -> Storage {
    let upper = format!("{VV}/containers/{id}/fs");
    let work = format!("{VV}/containers/{id}/work");
    let mut options: Vec<String> = lowers.iter().map(|l| format!("lowerdir={l}")).collect();
    options.push(format!("upperdir={upper}"));
    options.push(format!("workdir={work}"));
    Storage {
        driver: "overlayfs".into(),
        driver_options: vec![format!("{CREATE}={upper}"), format!("{CREATE}={work}")],
        source: "overlay".into(),
        fstype: "overlay".into(),
        options,
        mount_point: format!("/run/kata-containers/{id}/rootfs"),
    }
}

#[test]
fn ccv0_three_layers_top_first_then_the_overlay() {
    let options = vec![
        "workdir=/var/lib/containerd-nydus/snapshots/9/work".to_owned(),
        "upperdir=/var/lib/containerd-nydus/snapshots/9/fs".to_owned(),
        "lowerdir=/var/lib/containerd-nydus/snapshots/3/fs:/var/lib/containerd-nydus/snapshots/2/fs"
            .to_owned(),
        layer(3),
        layer(2),
        layer(1),
    ];
    let map_entries = [
        format!("{}=virtio_pci:02/03", disk(1)),
        format!("{}=02/04", disk(2)),
        format!("{}=scsi:0:1", disk(3)),
    ];
    let entries: Vec<&str> = map_entries.iter().map(String::as_str).collect();
    let got = run(&options, &entries, Convention::Ccv0);
    let dmverity = |i: u8, source: &str, ty: &str| Storage {
        driver: "dmverity".into(),
        driver_options: vec![verity_json(i), format!("source_type={ty}")],
        source: source.into(),
        fstype: "erofs".into(),
        options: s(&["ro", "ro"]),
        mount_point: format!("{VV}/verity/{}", hash(i)),
    };
    let lowers: Vec<String> = [3, 2, 1]
        .map(|i| format!("{VV}/verity/{}", hash(i)))
        .to_vec();
    assert_eq!(
        got,
        vec![
            dmverity(3, "0:1", "scsi"),
            dmverity(2, "02/04", "virtio_pci"),
            dmverity(1, "02/03", "virtio_pci"),
            overlay(&lowers, "c1"),
        ]
    );
}

#[test]
fn ccv0_unverified_layers_get_the_block_driver_of_their_bus() {
    let options: Vec<String> = (1..=5).map(unverified).collect();
    let map_entries = [
        format!("{}=02/01", disk(1)),
        format!("{}=scsi:2:1", disk(2)),
        format!("{}=virtio_mmio:/dev/vdc", disk(3)),
        format!("{}=pmem:/dev/pmem0", disk(4)),
        format!("{}=virtio_ccw:0.0.0005", disk(5)),
    ];
    let entries: Vec<&str> = map_entries.iter().map(String::as_str).collect();
    let got = run(&options, &entries, Convention::Ccv0);
    let expected = [
        ("blk", "02/01", "MDIvMDE="),
        ("scsi", "2:1", "Mjox"),
        ("mmioblk", "/dev/vdc", "L2Rldi92ZGM="),
        ("nvdimm", "/dev/pmem0", "L2Rldi9wbWVtMA=="),
        ("blk-ccw", "0.0.0005", "MC4wLjAwMDU="),
    ];
    for (storage, (driver, source, b64)) in got.iter().zip(expected) {
        let options = if driver == "nvdimm" {
            s(&["dax", "ro"])
        } else {
            s(&["ro"])
        };
        assert_eq!(
            storage,
            &Storage {
                driver: driver.into(),
                driver_options: vec![],
                source: source.into(),
                fstype: "erofs".into(),
                options,
                mount_point: format!("{VV}/{b64}"),
            }
        );
    }
    let lowers: Vec<String> = expected
        .iter()
        .map(|(_, _, b)| format!("{VV}/{b}"))
        .collect();
    assert_eq!(got.len(), 6);
    assert_eq!(got[5], overlay(&lowers, "c1"));
}

#[test]
fn ccv0_mixes_verified_and_unverified_layers_in_order() {
    let options = vec![layer(1), unverified(2)];
    let m1 = format!("{}=02/01", disk(1));
    let m2 = format!("{}=02/02", disk(2));
    let got = run(&options, &[&m1, &m2], Convention::Ccv0);
    assert_eq!(
        [got[0].driver.as_str(), got[1].driver.as_str()],
        ["dmverity", "blk"]
    );
    assert_eq!(
        got[2].options[..2],
        [
            format!("lowerdir={VV}/verity/{}", hash(1)),
            format!("lowerdir={VV}/MDIvMDI="),
        ]
    );
}

#[test]
fn a_layers_signature_reaches_the_guest_under_both_conventions() {
    // Base64 of a DER SEQUENCE: decodable (verifying it is the guest policy's business).
    let sig = "MAA=";
    let signed = encode_option(&wire(
        &disk(1),
        Some(DmVerityInfo {
            root_hash_sig: sig.into(),
            ..verity(1)
        }),
    ));
    let m = format!("{}=02/01", disk(1));
    for convention in [Convention::Ccv0, Convention::VirtualVolume] {
        let got = run(std::slice::from_ref(&signed), &[&m], convention);
        if convention == Convention::Ccv0 {
            // verity_info keeps Kata's fields; the signature is the driver option.
            assert!(!got[0].driver_options[0].contains("root_hash_sig"));
            assert!(
                got[0]
                    .driver_options
                    .contains(&format!("io.katacontainers.volume.root_hash_sig={sig}"))
            );
        }
        match request::parse(&got[0], &Limits::default()).unwrap() {
            Request::Volume(v) => {
                assert_eq!(v.root_hash_sig.unwrap().der(), [0x30, 0x00], "{convention}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Unsigned layers carry none.
    let got = run(&[layer(1)], &[&m], Convention::Ccv0);
    assert!(
        !got[0]
            .driver_options
            .iter()
            .any(|o| o.contains("root_hash_sig"))
    );
}

#[test]
fn ccv0_verified_layer_at_a_plain_path_has_no_source_type() {
    let m = format!("{}=/dev/vdb", disk(1));
    let got = run(&[layer(1)], &[&m], Convention::Ccv0);
    assert_eq!(got[0].source, "/dev/vdb");
    assert_eq!(got[0].driver_options, vec![verity_json(1)]);
}

#[test]
fn verity_info_carries_kata_mains_fields_when_the_volume_has_them() {
    let info = DmVerityInfo {
        salt: "00ff".into(),
        hash_type: Some(0),
        no_superblock: Some(false),
        offset: 1_212_416 + 4096,
        ..verity(1)
    };
    let option = encode_option(&wire(&disk(1), Some(info)));
    let m = format!("{}=02/01", disk(1));
    let got = run(&[option], &[&m], Convention::Ccv0);
    let json = got[0].driver_options[0]
        .strip_prefix("verity_info=")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "hashtype": "sha256", "hash": hash(1), "blocknum": 2361, "blocksize": 512,
            "hashsize": 4096, "offset": 1_216_512, "salt": "00ff", "hash_type": 0,
            "no_superblock": false,
        })
    );
}

#[test]
fn virtual_volume_convention_sends_each_option_as_is_and_the_guest_parses_it() {
    let options = vec![layer(2), layer(1), unverified(3)];
    let m1 = format!("{}=/dev/vdb", disk(1));
    let m2 = format!("{}=virtio_pci:02/02", disk(2));
    let m3 = format!("{}=/dev/vdd", disk(3));
    let got = run(&options, &[&m1, &m2, &m3], Convention::VirtualVolume);
    assert_eq!(
        got[0],
        Storage {
            driver: "blk".into(),
            driver_options: s(&["source_type=virtio_pci"]),
            source: "02/02".into(),
            fstype: "erofs".into(),
            options: vec![layer(2)],
            mount_point: format!("{VV}/verity/{}", hash(2)),
        }
    );
    assert_eq!(
        got[1],
        Storage {
            driver: String::new(),
            driver_options: vec![],
            source: "/dev/vdb".into(),
            fstype: "erofs".into(),
            options: vec![layer(1)],
            mount_point: format!("{VV}/verity/{}", hash(1)),
        }
    );
    assert_eq!(got[2].mount_point, format!("{VV}/L2Rldi92ZGQ="));
    assert_eq!(got[2].options, vec![unverified(3)]);
    let lowers: Vec<String> = got[..3].iter().map(|s| s.mount_point.clone()).collect();
    assert_eq!(got[3], overlay(&lowers, "c1"));

    // The guest parser takes every one: the disk, not the host image; the overlay too.
    let volume = |s: &Storage| match request::parse(s, &Limits::default()).unwrap() {
        Request::Volume(v) => v,
        other => panic!("not a volume: {other:?}"),
    };
    let v = volume(&got[1]);
    assert_eq!(v.source, GuestAddress::Path("/dev/vdb".into()));
    assert_eq!(v.verity.unwrap().root_hash().to_hex(), hash(1));
    assert_eq!(v.mount_point.to_str().unwrap(), got[1].mount_point);
    let v = volume(&got[2]);
    assert!(v.verity.is_none());
    assert_eq!(v.source, GuestAddress::Path("/dev/vdd".into()));
    match request::parse(&got[3], &Limits::default()).unwrap() {
        Request::Overlay(o) => {
            let want: Vec<std::path::PathBuf> = lowers.iter().map(Into::into).collect();
            assert_eq!(o.lowers, want);
        }
        other => panic!("not an overlay: {other:?}"),
    }
}

#[test]
fn dropped_host_options_change_nothing() {
    let m = format!("{}=02/01", disk(1));
    let plain = run(&[layer(1)], &[&m], Convention::Ccv0);
    let mut options = s(&[
        "index=off",
        "userxattr",
        "volatile",
        "ro",
        "rw",
        "redirect_dir=off",
        "metacopy=off",
        "xino=off",
        "nfs_export=off",
        "uuid=null",
        "extraoption=eyJ9",
        "lowerdir=/a:/b",
        "upperdir=/u",
        "workdir=/w",
    ]);
    options.insert(5, layer(1));
    assert_eq!(run(&options, &[&m], Convention::Ccv0), plain);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the input, an answer or a typed error, never a panic; and every answer ends
    /// with the overlay over exactly the volumes before it.
    #[test]
    fn any_input_gives_storages_or_an_error(
        options in prop::collection::vec(
            prop_oneof![
                Just(layer(1)), Just(layer(2)), Just(unverified(3)),
                "[ -~]{0,40}", "io\\.katacontainers\\.volume=[A-Za-z0-9+/=]{0,40}",
                "(lowerdir|upperdir|workdir)=[/a-z:]{0,12}",
            ],
            0..6,
        ),
        extra in prop::collection::vec("[ -~]{0,30}", 0..2),
        id in prop_oneof![Just("c1".to_owned()), "[ -~]{0,12}"],
        vv in any::<bool>(),
    ) {
        let convention = if vv { Convention::VirtualVolume } else { Convention::Ccv0 };
        let mut entries = vec![
            format!("{}=02/01", disk(1)),
            format!("{}=scsi:0:2", disk(2)),
            format!("{}=virtio_mmio:/dev/vdd", disk(3)),
        ];
        entries.extend(extra);
        let (Ok(map), Ok(id)) = (SourceMap::parse(&entries), ContainerId::parse(&id)) else {
            return Ok(());
        };
        if let Ok(out) = host::storages(&nydus(&options), &id, &map, convention) {
            let (last, volumes) = out.split_last().unwrap();
            prop_assert_eq!(&last.driver, "overlayfs");
            let lowers: Vec<String> =
                volumes.iter().map(|s| format!("lowerdir={}", s.mount_point)).collect();
            prop_assert_eq!(&last.options[..volumes.len()], &lowers[..]);
        }
    }
}

#[path = "host/refusals.rs"]
mod refusals;
