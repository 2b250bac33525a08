//! The eight volume types, each valid and each missing what it needs; the rules on `source`,
//! `fs_type` and `options`; `find_volume_option`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::verity::VerityError;
use kata_volume::volume::{
    Scope, Volume, VolumeError, VolumeType, find_volume_option, truncate_for_error,
};
use support::{H256, assert_names, err, option, raw_with, tarfs_verity, verity};

/// A valid volume of each type, as the host would send it.
fn valid(t: VolumeType) -> String {
    let v = tarfs_verity();
    match t {
        VolumeType::DirectBlock => r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","options":["noatime"],"direct_volume":{"metadata":{"device":"vdc"}}}"#
            .to_owned(),
        VolumeType::ImageRawBlock => format!(
            r#"{{"volume_type":"image_raw_block","source":"/dev/vdb","dm_verity":{v}}}"#
        ),
        VolumeType::LayerRawBlock => raw_with(&v),
        VolumeType::ImageNydusBlock
        | VolumeType::LayerNydusBlock
        | VolumeType::ImageNydusFs
        | VolumeType::LayerNydusFs => format!(
            r#"{{"volume_type":"{t}","source":"/dev/vdd","fs_type":"rafs","nydus_image":{{"config":"{{\"device\":{{}}}}","snapshot_dir":"/snap/1"}}}}"#
        ),
        VolumeType::ImageGuestPull => r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"io.kubernetes.cri.image-name":"busybox:latest"}}}"#.to_owned(),
    }
}

#[test]
fn each_type_valid() {
    assert_eq!(VolumeType::ALL.len(), 8);
    for t in VolumeType::ALL {
        let v = Volume::parse(&option(&valid(t))).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(v.volume_type(), t);
        assert_eq!(t.as_str().parse::<VolumeType>().unwrap(), t);
        assert_eq!(t.to_string(), t.as_str());
        // to_wire gives the same volume back.
        assert_eq!(Volume::from_wire(&v.to_wire()).unwrap(), v, "{t}");
    }
}

#[test]
fn each_type_keeps_what_it_was_given() {
    match Volume::parse(&valid(VolumeType::DirectBlock)).unwrap() {
        Volume::DirectBlock(d) => {
            assert_eq!(
                (d.source.as_str(), d.fs_type.as_str()),
                ("/dev/vdc", "ext4")
            );
            assert_eq!(d.options, ["noatime"]);
            assert_eq!(d.metadata["device"], "vdc");
            assert!(d.verity.is_none());
        }
        other => panic!("{other:?}"),
    }
    for (t, scope) in [
        (VolumeType::ImageRawBlock, Scope::Image),
        (VolumeType::LayerRawBlock, Scope::Layer),
    ] {
        match Volume::parse(&valid(t)).unwrap() {
            Volume::RawBlock(r) => {
                assert_eq!(r.scope, scope);
                assert_eq!(
                    (r.source.as_str(), r.fs_type.as_str()),
                    ("/dev/vdb", "erofs")
                );
                assert_eq!(r.verity.unwrap().data_blocks(), 16384);
            }
            other => panic!("{other:?}"),
        }
    }
    match Volume::parse(&valid(VolumeType::LayerNydusFs)).unwrap() {
        Volume::Nydus(n) => {
            assert_eq!(n.volume_type, VolumeType::LayerNydusFs);
            assert_eq!(n.config, "{\"device\":{}}");
            assert_eq!(n.snapshot_dir, "/snap/1");
        }
        other => panic!("{other:?}"),
    }
    let v = Volume::parse(&valid(VolumeType::ImageGuestPull)).unwrap();
    assert_eq!(v.source(), None);
    assert!(v.verity().is_none());
}

#[test]
fn raw_block_defaults_to_erofs_and_may_be_unverified() {
    let v = Volume::parse(r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#).unwrap();
    match &v {
        Volume::RawBlock(r) => {
            assert_eq!(r.fs_type, "erofs");
            assert!(r.verity.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.source(), Some("/dev/vdb"));
}

#[test]
fn each_type_missing_its_required_field() {
    let cases: Vec<(String, VolumeType, &str)> = vec![
        (
            r#"{"volume_type":"direct_block","source":"/dev/vdc"}"#.into(),
            VolumeType::DirectBlock,
            "direct_volume",
        ),
        (
            r#"{"volume_type":"direct_block","source":"/dev/vdc","direct_volume":null}"#.into(),
            VolumeType::DirectBlock,
            "direct_volume",
        ),
        (
            r#"{"volume_type":"direct_block","direct_volume":{"metadata":{"a":"b"}}}"#.into(),
            VolumeType::DirectBlock,
            "source",
        ),
        (
            r#"{"volume_type":"image_raw_block"}"#.into(),
            VolumeType::ImageRawBlock,
            "source",
        ),
        (
            format!(
                r#"{{"volume_type":"layer_raw_block","source":"","dm_verity":{}}}"#,
                tarfs_verity()
            ),
            VolumeType::LayerRawBlock,
            "source",
        ),
        (
            r#"{"volume_type":"image_guest_pull"}"#.into(),
            VolumeType::ImageGuestPull,
            "image_pull.metadata",
        ),
        (
            r#"{"volume_type":"image_guest_pull","image_pull":{}}"#.into(),
            VolumeType::ImageGuestPull,
            "image_pull.metadata",
        ),
        (
            r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":null}}"#.into(),
            VolumeType::ImageGuestPull,
            "image_pull.metadata",
        ),
        (
            r#"{"volume_type":"direct_block","source":"/d","direct_volume":{}}"#.into(),
            VolumeType::DirectBlock,
            "direct_volume.metadata",
        ),
        (
            r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":null}}"#
                .into(),
            VolumeType::DirectBlock,
            "direct_volume.metadata",
        ),
    ];
    let mut cases = cases;
    for t in [
        VolumeType::ImageNydusBlock,
        VolumeType::LayerNydusBlock,
        VolumeType::ImageNydusFs,
        VolumeType::LayerNydusFs,
    ] {
        let need = "nydus_image.config or nydus_image.snapshot_dir";
        cases.push((format!(r#"{{"volume_type":"{t}","source":"/d"}}"#), t, need));
        cases.push((
            format!(r#"{{"volume_type":"{t}","source":"/d","nydus_image":{{}}}}"#),
            t,
            need,
        ));
        cases.push((
            format!(r#"{{"volume_type":"{t}","source":"/d","nydus_image":{{"config":"","snapshot_dir":""}}}}"#),
            t,
            need,
        ));
        cases.push((
            format!(r#"{{"volume_type":"{t}","nydus_image":{{"config":"c"}}}}"#),
            t,
            "source",
        ));
    }
    for (json, volume_type, field) in &cases {
        let e = Volume::parse(&option(json)).unwrap_err();
        assert_eq!(
            e,
            VolumeError::Missing {
                volume_type: *volume_type,
                field
            },
            "{json}"
        );
        assert_names(
            &e.to_string(),
            &[&format!("Missing {field}"), volume_type.as_str()],
        );
    }
    // Either nydus field alone is enough.
    for nydus in [r#"{"config":"c"}"#, r#"{"snapshot_dir":"/s"}"#] {
        let json =
            format!(r#"{{"volume_type":"image_nydus_block","source":"/d","nydus_image":{nydus}}}"#);
        assert!(Volume::parse(&json).is_ok(), "{json}");
    }
}

#[test]
fn unknown_or_empty_volume_type() {
    for (json, shown) in [
        (
            r#"{"volume_type":"raw_block","source":"/d"}"#,
            "\"raw_block\"",
        ),
        (r#"{"volume_type":"","source":"/d"}"#, "\"\""),
        (r#"{"source":"/d"}"#, "\"\""),
        (
            r#"{"volume_type":" direct_block","source":"/d"}"#,
            "\" direct_block\"",
        ),
        (
            r#"{"volume_type":"Direct_Block","source":"/d"}"#,
            "\"Direct_Block\"",
        ),
        (
            r#"{"volume_type":"direct_block\u0000","source":"/d"}"#,
            "\"direct_block\\0\"",
        ),
        (r#"{"volume_type":"a\nb"}"#, "\"a\\nb\""),
    ] {
        let e = Volume::parse(&option(json)).unwrap_err();
        assert!(matches!(e, VolumeError::UnknownType(_)), "{json}: {e}");
        assert_names(&e.to_string(), &["volume_type", shown]);
    }
    // A huge type name is shortened in the message.
    let e = err(&option(&format!(
        r#"{{"volume_type":"{}"}}"#,
        "x".repeat(100_000)
    )));
    assert!(e.len() < 200 && e.contains('…'), "{e}");
}

#[test]
fn bad_dm_verity_is_refused_for_every_type_that_carries_it() {
    let bad = verity("md5", H256, 16384, 512, 4096, 8_388_608);
    for json in [
        raw_with(&bad),
        format!(r#"{{"volume_type":"image_raw_block","source":"/d","dm_verity":{bad}}}"#),
        format!(
            r#"{{"volume_type":"direct_block","source":"/d","direct_volume":{{}},"dm_verity":{bad}}}"#
        ),
        format!(
            r#"{{"volume_type":"image_nydus_fs","source":"/d","nydus_image":{{"config":"c"}},"dm_verity":{bad}}}"#
        ),
        format!(
            r#"{{"volume_type":"image_guest_pull","image_pull":{{"metadata":{{"a":"b"}}}},"dm_verity":{bad}}}"#
        ),
    ] {
        let e = Volume::parse(&json).unwrap_err();
        assert_eq!(
            e,
            VolumeError::Verity(VerityError::HashType("md5".into())),
            "{json}"
        );
        assert_names(&e.to_string(), &["dm_verity.hashtype", "\"md5\""]);
    }
    // An empty dm_verity object is no valid verity either.
    assert_names(&err(&raw_with("{}")), &["dm_verity.hashtype", "\"\""]);
}

#[test]
fn options_with_a_comma_or_nul_are_refused() {
    for (opt, why) in [
        ("ro,exec", "contains ','"),
        (",", "contains ','"),
        ("a\u{0}b", "NUL"),
    ] {
        let json = serde_json::json!({
            "volume_type": "layer_raw_block", "source": "/dev/vdb", "options": ["ro", opt]
        })
        .to_string();
        let e = Volume::parse(&json).unwrap_err();
        assert!(
            matches!(&e, VolumeError::Invalid { field: "options", value, .. } if value == opt),
            "{e:?}"
        );
        assert_names(&e.to_string(), &["options", &format!("{opt:?}"), why]);
    }
    let long = "o".repeat(4097);
    let e = err(
        &serde_json::json!({"volume_type":"layer_raw_block","source":"/d","options":[long]})
            .to_string(),
    );
    assert_names(&e, &["options", "longer than 4096"]);
    // 4096 bytes is the limit, not over it.
    let at_limit = "o".repeat(4096);
    let v = Volume::parse(
        &serde_json::json!({"volume_type":"layer_raw_block","source":"/d","options":[at_limit]})
            .to_string(),
    )
    .unwrap();
    assert_eq!(v.to_wire().options, [at_limit]);
    // Empty items and ordinary ones are fine here (the mount plan filters them).
    assert!(
        Volume::parse(
            r#"{"volume_type":"layer_raw_block","source":"/d","options":["","ro","x=y"]}"#
        )
        .is_ok()
    );
}

#[test]
fn fs_type_must_be_one_plain_word() {
    for bad in [
        "ext4 ro",
        " erofs",
        "erofs\n",
        "ext/4",
        "erofs,ro",
        "ext4\u{0}",
        "é",
        &"x".repeat(65),
    ] {
        let json = serde_json::json!({"volume_type":"layer_raw_block","source":"/d","fs_type":bad})
            .to_string();
        let e = Volume::parse(&json).unwrap_err();
        assert!(
            matches!(
                e,
                VolumeError::Invalid {
                    field: "fs_type",
                    ..
                }
            ),
            "{bad:?}: {e}"
        );
        assert_names(
            &e.to_string(),
            &["fs_type", &format!("{:?}", truncate_for_error(bad))],
        );
    }
    for good in [
        "erofs",
        "ext4",
        "fuse.nydus-overlayfs",
        "x_y",
        &"x".repeat(64),
    ] {
        let json =
            serde_json::json!({"volume_type":"layer_raw_block","source":"/d","fs_type":good})
                .to_string();
        assert!(Volume::parse(&json).is_ok(), "{good}");
    }
}

#[test]
fn source_with_nul_or_too_long_is_refused() {
    for (bad, why) in [
        ("/dev/vdb\u{0}x", "NUL"),
        (&*"/".repeat(4097), "longer than 4096"),
    ] {
        let json = serde_json::json!({"volume_type":"layer_raw_block","source":bad}).to_string();
        let e = Volume::parse(&json).unwrap_err();
        assert!(
            matches!(
                e,
                VolumeError::Invalid {
                    field: "source",
                    ..
                }
            ),
            "{e}"
        );
        assert_names(
            &e.to_string(),
            &["source", why, &format!("{:?}", truncate_for_error(bad))],
        );
    }
    let ok = "/".repeat(4096);
    let json = serde_json::json!({"volume_type":"layer_raw_block","source":ok}).to_string();
    assert!(Volume::parse(&json).is_ok());
}

#[test]
fn truncation_keeps_char_boundaries() {
    assert_eq!(truncate_for_error("short"), "short");
    let s = "é".repeat(100);
    let t = truncate_for_error(&s);
    assert_eq!(t.chars().count(), 81);
    assert!(t.ends_with('…'));
}

#[test]
fn find_volume_option_with_zero_one_two() {
    let opt = option(&valid(VolumeType::LayerRawBlock));
    let none: [&str; 0] = [];
    assert_eq!(find_volume_option(&none).unwrap(), None);
    assert_eq!(
        find_volume_option(&[
            "ro",
            "io.katacontainers.volume",
            "x=io.katacontainers.volume=a"
        ])
        .unwrap(),
        None
    );
    let one = vec!["ro".to_owned(), opt.clone(), "nodev".to_owned()];
    assert_eq!(find_volume_option(&one).unwrap(), Some(opt.as_str()));
    let two = [opt.as_str(), "io.katacontainers.volume="];
    let e = find_volume_option(&two).unwrap_err();
    assert_eq!(e, VolumeError::SeveralOptions(2));
    assert_names(&e.to_string(), &["2", "io.katacontainers.volume"]);
    let three = [opt.as_str(), opt.as_str(), opt.as_str()];
    assert_eq!(
        find_volume_option(&three).unwrap_err(),
        VolumeError::SeveralOptions(3)
    );
    // The found option decodes.
    let found = find_volume_option(&one).unwrap().unwrap();
    assert_eq!(
        Volume::parse(found).unwrap().volume_type(),
        VolumeType::LayerRawBlock
    );
}

/// The contract's hash types are sha256 and sha1 (any case); sha512, which the kernel and
/// `kata-volume format` know, is refused in a volume as the host itself refuses it.
#[test]
fn sha512_is_not_a_volume_hash_type() {
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{{"hashtype":"sha512","hash":"{}","blocknum":1,"blocksize":4096,"hashsize":4096,"offset":4096}}}}"#,
        "ab".repeat(64)
    );
    let e = kata_volume::volume::Volume::parse(&json).unwrap_err();
    assert!(e.to_string().contains("\"sha512\""), "{e}");
}

/// As the host's own validation (Go's `Metadata != nil`): an empty metadata map is valid, a
/// missing or null one is not (issue 11 item 14).
#[test]
fn empty_metadata_maps_are_valid_and_null_ones_are_not() {
    for json in [
        r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{}}}"#,
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{}}}"#,
    ] {
        let v = Volume::parse(&option(json)).unwrap();
        // And it goes back to the wire as Go writes it.
        assert_eq!(v.to_wire().to_json(), json);
    }
}
