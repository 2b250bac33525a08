//! The inputs and every refusal: the source map's grammar and errors, container ids,
//! convention names, the mount's options, the volumes.

use super::*;
use kata_volume::address::GuestAddress;
use kata_volume::error_chain;
use kata_volume::host::SourceMapEntry;

#[test]
fn the_source_map_grammar() {
    let entry = |e: &str| e.parse::<SourceMapEntry>().unwrap();
    let cases = [
        (
            "/h/a=virtio_pci:02/01",
            "/h/a",
            GuestAddress::parse(Some("virtio_pci"), "02/01"),
        ),
        (
            "/h/a=02/01.0",
            "/h/a",
            GuestAddress::parse(Some("virtio_pci"), "02/01"),
        ),
        (
            "/h/a=scsi:2:1",
            "/h/a",
            GuestAddress::parse(Some("scsi"), "2:1"),
        ),
        (
            "/h/a=ccw:0.0.0005",
            "/h/a",
            GuestAddress::parse(Some("virtio_ccw"), "0.0.0005"),
        ),
        (
            "/h/a=virtio_mmio:/dev/vdc",
            "/h/a",
            GuestAddress::parse(Some("virtio_mmio"), "/dev/vdc"),
        ),
        (
            "/h/a=/dev/vdb",
            "/h/a",
            GuestAddress::parse(None, "/dev/vdb"),
        ),
        (
            "/h/x=y.disk=05",
            "/h/x=y.disk",
            GuestAddress::parse(Some("virtio_pci"), "05"),
        ),
    ];
    for (text, host, address) in cases {
        let e = entry(text);
        assert_eq!(e.host_path, host, "{text}");
        assert_eq!(e.address, address.unwrap(), "{text}");
    }
    assert_eq!(entry("/h/a=02/01.0").address.to_string(), "02/01");
    let m = map(&["/h/a=02/01", "/h/b=/dev/vdc"]);
    assert_eq!(m.get("/h/b").unwrap().to_string(), "/dev/vdc");
    assert!(m.get("/h/a/").is_none(), "paths match byte for byte");
    assert_eq!(m.entries().len(), 2);
}

#[test]
fn source_map_refusals_name_the_entry() {
    let cases = [
        (
            "02/01",
            "Invalid source map entry \"02/01\": expected HOST_PATH=ADDRESS",
        ),
        (
            "h/a=02/01",
            "Invalid source map entry \"h/a=02/01\": the host path must be absolute",
        ),
        (
            "/h/a=",
            "Invalid source map entry \"/h/a=\": the guest address is empty",
        ),
        (
            "/h/\na=02/01",
            "Invalid source map entry \"/h/\\na=02/01\": contains a control character",
        ),
        (
            "/h/a=virtio-pci:02/01",
            "Invalid guest address in source map entry \"/h/a=virtio-pci:02/01\": Unknown \
             source_type \"virtio-pci\" (source \"02/01\"): expected virtio_pci, scsi, \
             virtio_mmio, pmem or virtio_ccw",
        ),
        (
            "/h/a=scsi:02/01",
            "Invalid guest address in source map entry \"/h/a=scsi:02/01\": Invalid source \
             \"02/01\" for source_type scsi: expected <target>:<lun>",
        ),
    ];
    for (entry, message) in cases {
        let e = SourceMap::parse(&[entry]).unwrap_err();
        assert_eq!(error_chain(&e), message, "{entry}");
    }
    let long = format!("/{}=02/01", "a".repeat(4096));
    let e = SourceMap::parse(&[long]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("the host path is longer than 4096 bytes"),
        "{e}"
    );
    let e = SourceMap::parse(&["/h/a=02/01", "/h/a=02/02"]).unwrap_err();
    assert_eq!(e.to_string(), "Source map gives \"/h/a\" twice");
    let e = SourceMap::parse(&["/h/a=02/01", "/h/b=virtio_pci:02/01.0"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Source map puts both \"/h/a\" and \"/h/b\" at guest address 02/01 (virtio_pci)"
    );
}

#[test]
fn container_ids_are_one_safe_path_component() {
    for ok in ["c1", "abc-DEF_1.2", "0a", &"x".repeat(255)] {
        assert_eq!(ContainerId::parse(ok).unwrap().as_str(), ok);
    }
    let cases = [
        ("", "must be at least 2 characters"),
        ("a", "must be at least 2 characters"),
        (".x", "must start with an ASCII letter or digit"),
        ("..", "must start with an ASCII letter or digit"),
        (
            "a/b",
            "may contain only ASCII letters, digits, '_', '.' and '-'",
        ),
        (
            "a b",
            "may contain only ASCII letters, digits, '_', '.' and '-'",
        ),
        ("é1", "must start with an ASCII letter or digit"),
        (
            "a\0",
            "may contain only ASCII letters, digits, '_', '.' and '-'",
        ),
    ];
    for (id, why) in cases {
        let e = ContainerId::parse(id).unwrap_err();
        assert_eq!(e.to_string(), format!("Invalid container id {id:?}: {why}"));
    }
    let e = ContainerId::parse(&"x".repeat(256)).unwrap_err();
    assert!(e.to_string().ends_with(": longer than 255 bytes"), "{e}");
    let m = format!("{}=02/01", disk(1));
    let got = host::storages(
        &nydus(&[layer(1)]),
        &cid("sandbox-7.x"),
        &map(&[&m]),
        Convention::Ccv0,
    )
    .unwrap();
    assert_eq!(
        got[1].mount_point,
        "/run/kata-containers/sandbox-7.x/rootfs"
    );
}

#[test]
fn conventions_by_name() {
    assert_eq!("ccv0".parse::<Convention>().unwrap(), Convention::Ccv0);
    assert_eq!(
        "virtual-volume".parse::<Convention>().unwrap(),
        Convention::VirtualVolume
    );
    assert_eq!(Convention::default(), Convention::Ccv0);
    assert_eq!(Convention::VirtualVolume.to_string(), "virtual-volume");
    let e = "CCv0".parse::<Convention>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unknown convention \"CCv0\": expected ccv0 or virtual-volume"
    );
}

#[test]
fn mount_refusals_name_the_value() {
    let m1 = format!("{}=02/01", disk(1));
    let e = host::storages(
        &ContainerdMount {
            mount_type: "overlay".into(),
            options: vec![layer(1)],
        },
        &cid("c1"),
        &map(&[&m1]),
        Convention::Ccv0,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unknown mount type \"overlay\": expected fuse.nydus-overlayfs"
    );
    let e = refused(&s(&["lowerdir=/a:/b", "upperdir=/u"]), &[&m1]);
    assert!(matches!(e, HostError::NoVolume), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("No io.katacontainers.volume option")
    );

    for bad in [
        "io.katacontainers.volume.x=1",
        "nodev",
        "lowerdir",
        "Index=off",
    ] {
        let e = refused(&[layer(1), bad.into()], &[&m1]);
        assert!(
            e.to_string()
                .starts_with(&format!("Unknown mount option {bad:?}: expected")),
            "{e}"
        );
    }
    let cases = [
        ("", "is empty"),
        ("upperdir=/u\n", "contains a control character"),
        (
            "lowerdir=/a:b",
            "every directory must be an absolute host path",
        ),
        ("lowerdir=", "every directory must be an absolute host path"),
        ("workdir=w", "every directory must be an absolute host path"),
    ];
    for (bad, why) in cases {
        let e = refused(&[layer(1), bad.into()], &[&m1]);
        assert_eq!(
            e.to_string(),
            format!("Invalid mount option {bad:?}: {why}"),
            "{bad:?}"
        );
    }
    let e = refused(&s(&["upperdir=/u", "upperdir=/v"]), &[&m1]);
    assert_eq!(
        e.to_string(),
        "Invalid mount option \"upperdir=/v\": given twice"
    );
}

#[test]
fn volume_refusals_name_the_volume() {
    let m1 = format!("{}=02/01", disk(1));
    let m2 = format!("{}=02/02", disk(2));
    let e = refused(&[layer(1), "io.katacontainers.volume=%%%".into()], &[&m1]);
    assert!(matches!(e, HostError::Volume { index: 2, .. }), "{e:?}");
    assert!(
        error_chain(&e).starts_with(
            "Invalid volume option 2 (counting from the top layer): Invalid base64 in \
             io.katacontainers.volume"
        ),
        "{}",
        error_chain(&e)
    );

    let pull = encode_option(&KataVirtualVolume {
        volume_type: "image_guest_pull".into(),
        image_pull: Some(kata_volume::volume::ImagePullVolume {
            metadata: Some([("a".to_owned(), "b".to_owned())].into()),
        }),
        ..Default::default()
    });
    let e = refused(&[pull], &[&m1]);
    assert_eq!(
        e.to_string(),
        "Volume 1 is image_guest_pull: the agent pulls that image in the guest, there is no \
         disk to send"
    );
    let direct = encode_option(&KataVirtualVolume {
        volume_type: "direct_block".into(),
        source: disk(1),
        fs_type: "ext4".into(),
        direct_volume: Some(kata_volume::volume::DirectAssignedVolume {
            metadata: Some(Default::default()),
        }),
        ..Default::default()
    });
    let e = refused(&[layer(2), direct], &[&m1, &m2]);
    assert_eq!(
        e.to_string(),
        "Volume 2 is direct_block: only image_raw_block and layer_raw_block volumes are disks \
         a runtime hot-plugs"
    );

    let e = refused(&[layer(1), layer(2)], &[&m1]);
    assert_eq!(
        e.to_string(),
        format!(
            "Volume 2 has source {:?}, which is not in the source map: give its guest address \
             as HOST_PATH=ADDRESS",
            disk(2)
        )
    );
    let e = refused(&[layer(1), unverified(1)], &[&m1]);
    assert_eq!(
        e.to_string(),
        format!("Volumes 1 and 2 have the same source {:?}", disk(1))
    );
    let same_hash = encode_option(&wire(&disk(2), Some(verity(1))));
    let e = refused(&[layer(1), same_hash], &[&m1, &m2]);
    assert_eq!(
        e.to_string(),
        format!(
            "Volumes 1 and 2 would both be mounted at {VV}/verity/{}: the overlay would name \
             one layer twice",
            hash(1)
        )
    );
    let at_path = format!("{}=/dev/vdb", disk(1));
    let e = refused(&[unverified(1)], &[&at_path]);
    assert_eq!(
        e.to_string(),
        "Volume 1 has no dm_verity and its disk is the plain path \"/dev/vdb\": the ccv0 \
         convention names such a disk by its block driver, so give its bus too (e.g. \
         virtio_mmio:/dev/vdb)"
    );
    // The same volume is fine under the virtual-volume convention, where a path is a source.
    assert!(
        host::storages(
            &nydus(&[unverified(1)]),
            &cid("c1"),
            &map(&[&at_path]),
            Convention::VirtualVolume,
        )
        .is_ok()
    );
}
