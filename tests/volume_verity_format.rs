//! The full `DmVerityInfo`: `salt`, `hash_type` and `no_superblock` on the wire (decoded with
//! Go's rules: case-insensitive names, duplicates refused, JSON types), in the typed
//! parameters (each used or refused with a message naming the field and the value), in the
//! table, and back out through the encoder (absent fields stay absent, round trips exact).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::verity::{VerityError, VerityTable, VerityTarget, VerityVersion};
use kata_volume::volume::{
    DmVerityInfo, KataVirtualVolume, Volume, VolumeError, decode, verity_info,
};
use support::{H256, assert_names, err, option, raw_with, tarfs_verity, verity_with};

/// The tarfs `dm_verity` with extra members appended.
fn verity_plus(members: &str) -> String {
    let v = tarfs_verity();
    format!("{}{members}}}", &v[..v.len() - 1])
}

fn wire(members: &str) -> DmVerityInfo {
    decode(&option(&raw_with(&verity_plus(members))))
        .unwrap()
        .dm_verity
        .unwrap()
}

fn table(members: &str) -> String {
    let v = Volume::parse(&option(&raw_with(&verity_plus(members)))).unwrap();
    let p = v.verity().unwrap();
    VerityTable::new(VerityTarget::new(p, "/dev/vdb", Vec::new()).unwrap())
        .unwrap()
        .to_string()
}

fn decode_err(members: &str) -> VolumeError {
    decode(&option(&raw_with(&verity_plus(members)))).expect_err("must be refused")
}

#[test]
fn the_six_field_json_means_version_1_no_salt_no_superblock() {
    let w = wire("");
    assert_eq!(
        (w.salt.as_str(), w.hash_type, w.no_superblock),
        ("", None, None)
    );
    let v = Volume::parse(&option(&raw_with(&tarfs_verity()))).unwrap();
    let p = v.verity().unwrap();
    assert_eq!(p.version(), VerityVersion::V1);
    assert!(p.salt().is_empty());
    assert!(
        !p.has_superblock(),
        "absent no_superblock means no superblock"
    );
    assert_eq!(p.hash_start_block(), 2048);
    assert_eq!(
        table(""),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    // Explicit defaults mean the same.
    assert_eq!(
        table(r#","salt":"","hash_type":1,"no_superblock":true"#),
        table("")
    );
    assert_eq!(table(r#","salt":"-""#), table(""));
}

#[test]
fn each_field_reaches_the_table() {
    let t = |m: &str| table(m);
    let base = "/dev/vdb /dev/vdb 512 4096 16384";
    assert_eq!(
        t(r#","salt":"00FFab""#),
        format!("0 16384 verity 1 {base} 2048 sha256 {H256} 00ffab")
    );
    assert_eq!(
        t(r#","hash_type":0"#),
        format!("0 16384 verity 0 {base} 2048 sha256 {H256} -")
    );
    assert_eq!(
        t(r#","no_superblock":false"#),
        format!("0 16384 verity 1 {base} 2049 sha256 {H256} -")
    );
    assert_eq!(
        t(r#","salt":"abcd","hash_type":0,"no_superblock":false"#),
        format!("0 16384 verity 0 {base} 2049 sha256 {H256} abcd")
    );
    // A 256-byte salt is the longest.
    let long = "ab".repeat(256);
    assert!(t(&format!(r#","salt":"{long}""#)).ends_with(&format!(" {long}")));
}

#[test]
fn names_match_case_insensitively_with_go_folding() {
    for (members, salt, hash_type, no_superblock) in [
        (r#","SALT":"ab""#, "ab", None, None),
        (r#","Salt":"ab","Hash_Type":0"#, "ab", Some(0), None),
        (
            r#","HASH_TYPE":1,"No_SuperBlock":false"#,
            "",
            Some(1),
            Some(false),
        ),
        // U+017F folds to 's', U+212A to 'k' (Go's folding).
        (
            "\"\u{17f}alt\":\"ab\",\"no_\u{17f}uperblock\":true",
            "ab",
            None,
            Some(true),
        ),
    ] {
        let members = if members.starts_with(',') {
            members.to_owned()
        } else {
            format!(",{members}")
        };
        let w = wire(&members);
        assert_eq!(
            (w.salt.as_str(), w.hash_type, w.no_superblock),
            (salt, hash_type, no_superblock),
            "{members}"
        );
    }
    // `hashtype` (the algorithm) and `hash_type` (the version) are different fields.
    let w = wire(r#","hash_type":0"#);
    assert_eq!((w.hashtype.as_str(), w.hash_type), ("sha256", Some(0)));
}

#[test]
fn duplicates_are_refused_in_any_spelling() {
    for (members, field) in [
        (r#","salt":"ab","salt":"ab""#, "dm_verity.salt"),
        (r#","salt":"ab","SALT":"cd""#, "dm_verity.salt"),
        (r#","hash_type":1,"Hash_Type":0"#, "dm_verity.hash_type"),
        (
            r#","no_superblock":true,"NO_SUPERBLOCK":false"#,
            "dm_verity.no_superblock",
        ),
        (
            "\"no_superblock\":true,\"no_\u{17f}uperblock\":true",
            "dm_verity.no_superblock",
        ),
    ] {
        let members = if members.starts_with(',') {
            members.to_owned()
        } else {
            format!(",{members}")
        };
        let e = decode_err(&members);
        assert_eq!(e, VolumeError::DuplicateField(field.into()), "{members}");
        assert_names(&e.to_string(), &[field, "Duplicate"]);
    }
}

#[test]
fn json_types_are_checked() {
    for (members, field, found, expected) in [
        (
            r#","no_superblock":"true""#,
            "dm_verity.no_superblock",
            "a string",
            "a boolean",
        ),
        (
            r#","no_superblock":1"#,
            "dm_verity.no_superblock",
            "a number",
            "a boolean",
        ),
        (
            r#","no_superblock":[]"#,
            "dm_verity.no_superblock",
            "an array",
            "a boolean",
        ),
        (
            r#","hash_type":"1""#,
            "dm_verity.hash_type",
            "a string",
            "unsigned integer",
        ),
        (
            r#","hash_type":true"#,
            "dm_verity.hash_type",
            "a boolean",
            "unsigned integer",
        ),
        (r#","salt":12"#, "dm_verity.salt", "a number", "a string"),
        (
            r#","salt":false"#,
            "dm_verity.salt",
            "a boolean",
            "a string",
        ),
    ] {
        let e = decode_err(members);
        assert!(matches!(e, VolumeError::FieldType { .. }), "{members}: {e}");
        assert_names(&e.to_string(), &[field, found, expected]);
    }
    for raw in ["-1", "1.5", "18446744073709551616"] {
        let e = decode_err(&format!(r#","hash_type":{raw}"#));
        assert!(matches!(e, VolumeError::Number { .. }), "{raw}: {e}");
        assert_names(&e.to_string(), &["dm_verity.hash_type"]);
    }
    // null is the empty value, as for every field: absent.
    let w = wire(r#","salt":null,"hash_type":null,"no_superblock":null"#);
    assert_eq!(
        (w.salt.as_str(), w.hash_type, w.no_superblock),
        ("", None, None)
    );
}

#[test]
fn bad_values_are_refused_naming_the_field_and_the_value() {
    for (members, want) in [
        (
            r#","hash_type":2"#,
            "Invalid dm_verity.hash_type 2: must be 0 or 1",
        ),
        (
            r#","hash_type":4294967295"#,
            "Invalid dm_verity.hash_type 4294967295: must be 0 or 1",
        ),
        (
            r#","hash_type":4294967296"#,
            "Invalid dm_verity.hash_type 4294967296: must be 0 or 1",
        ),
    ] {
        let e = err(&option(&raw_with(&verity_plus(members))));
        assert_eq!(e, want, "{members}");
    }
    // Past u32 it cannot even be held on the wire: refused by the decoder, same message.
    assert_eq!(
        decode_err(r#","hash_type":4294967296"#),
        VolumeError::Verity(VerityError::HashVersion(4_294_967_296))
    );
    for salt in [
        "xyz",
        "abc",
        "0x00",
        "ab cd",
        " ab",
        "--",
        &"ab".repeat(257),
    ] {
        let e = err(&option(&raw_with(&verity_plus(&format!(
            r#","salt":"{salt}""#
        )))));
        let shown = if salt.len() > 80 {
            format!("\"{}…\"", &salt[..80])
        } else {
            format!("{salt:?}")
        };
        assert_names(
            &e,
            &["Invalid dm_verity.salt", &shown, "hex digits", "256 bytes"],
        );
        assert!(e.len() < 250, "a hostile salt is shortened: {e}");
    }
    // The superblock's block must fit too.
    let e = err(&option(&raw_with(&verity_with(
        "offset",
        "18446744073709547520,\"no_superblock\":false",
    ))));
    assert_names(&e, &["dm_verity.offset 18446744073709547520", "overflows"]);
}

#[test]
fn the_encoder_writes_them_back_and_round_trips_are_exact() {
    // Absent stays absent: the six-field JSON is unchanged (Go's and the seed producers').
    let six = raw_with(&tarfs_verity());
    assert_eq!(decode(&six).unwrap().to_json(), six);
    // Present stays present, exactly as sent.
    for members in [
        r#","salt":"ABCD""#,
        r#","salt":"-""#,
        r#","hash_type":1"#,
        r#","hash_type":0"#,
        r#","no_superblock":true"#,
        r#","no_superblock":false"#,
        r#","salt":"abcd","hash_type":0,"no_superblock":false"#,
    ] {
        let json = raw_with(&verity_plus(members));
        let w = decode(&json).unwrap();
        assert_eq!(w.to_json(), json, "{members}");
        assert_eq!(decode(&w.to_json()).unwrap(), w);
    }
    // Typed to wire: defaults absent, the rest in canonical form, and back to the same volume.
    for (members, canonical) in [
        ("", ""),
        (r#","salt":"-","hash_type":1,"no_superblock":true"#, ""),
        (r#","salt":"ABCD""#, r#","salt":"abcd""#),
        (
            r#","hash_type":0,"no_superblock":false"#,
            r#","hash_type":0,"no_superblock":false"#,
        ),
    ] {
        let v = Volume::parse(&raw_with(&verity_plus(members))).unwrap();
        let w: KataVirtualVolume = v.to_wire();
        assert_eq!(w.to_json(), raw_with(&verity_plus(canonical)), "{members}");
        assert_eq!(Volume::from_wire(&w).unwrap(), v);
        assert_eq!(
            Volume::from_wire(&KataVirtualVolume {
                dm_verity: Some(verity_info(v.verity().unwrap())),
                ..w.clone()
            })
            .unwrap(),
            v
        );
    }
}

#[test]
fn the_rules_of_the_six_numbers_hold_with_a_superblock() {
    for (field, raw, parts) in [
        (
            "offset",
            "8388609",
            &["dm_verity.offset 8388609", "multiple"][..],
        ),
        (
            "offset",
            "4096",
            &["dm_verity.offset 4096", "data's end"][..],
        ),
        ("blocknum", "0", &["dm_verity.blocknum 0"][..]),
    ] {
        let e = err(&option(&raw_with(&verity_with(
            field,
            &format!("{raw},\"no_superblock\":false"),
        ))));
        assert_names(&e, parts);
    }
}

#[test]
fn dm_names_tell_the_formats_apart_and_keep_the_default() {
    let name = |members: &str| {
        let v = Volume::parse(&option(&raw_with(&verity_plus(members)))).unwrap();
        kata_volume::plan::dm_name("/dev/vdb", v.verity().unwrap(), &[]).to_string()
    };
    // The name the README shows for the default volume: unchanged by the new fields.
    assert_eq!(name(""), "kata-volume-9f2a6c4e0b1d3f5a-686f6115db436dea");
    assert_eq!(
        name(r#","hash_type":1,"no_superblock":true,"salt":"-""#),
        name("")
    );
    let names = [
        name(""),
        name(r#","hash_type":0"#),
        name(r#","no_superblock":false"#),
        name(r#","hash_type":0,"no_superblock":false"#),
        name(r#","salt":"00""#),
    ];
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn root_hash_sig_is_decoded_with_the_same_rules_and_kept_as_sent() {
    // Any spelling Go folds; kept verbatim (decoded and verified further down the pipeline).
    for name in [
        "root_hash_sig",
        "Root_Hash_Sig",
        "ROOT_HASH_SIG",
        "root_haſh_ſig",
    ] {
        assert_eq!(
            wire(&format!(r#","{name}":"MAA=""#)).root_hash_sig,
            "MAA=",
            "{name}"
        );
    }
    let v = Volume::parse(&option(&raw_with(&verity_plus(
        r#","root_hash_sig":"MAA=""#,
    ))))
    .unwrap();
    assert_eq!(v.root_hash_sig(), Some("MAA="));
    // Empty or null is none; and none stays absent on the way out.
    for none in [r#","root_hash_sig":"""#, r#","root_hash_sig":null"#, ""] {
        let v = Volume::parse(&option(&raw_with(&verity_plus(none)))).unwrap();
        assert_eq!(v.root_hash_sig(), None, "{none}");
        assert!(!v.to_wire().to_json().contains("root_hash_sig"));
    }
    // The encoder writes it back inside dm_verity, and the round trip is exact.
    let w = v_with_sig("MAA=");
    assert!(w.to_json().contains(r#""root_hash_sig":"MAA=""#));
    assert_eq!(Volume::from_wire(&w).unwrap().to_wire(), w);
    // Twice in any spelling: refused; not a string: refused naming the field.
    assert_eq!(
        decode_err(r#","root_hash_sig":"MAA=","ROOT_HASH_SIG":"MAA=""#).to_string(),
        "Duplicate field dm_verity.root_hash_sig: refused as ambiguous"
    );
    for (bad, found) in [
        ("1", "number"),
        ("[]", "array"),
        ("{}", "object"),
        ("true", "boolean"),
    ] {
        let e = decode_err(&format!(r#","root_hash_sig":{bad}"#)).to_string();
        assert_names(&e, &["dm_verity.root_hash_sig", "a string", found]);
    }
}

fn v_with_sig(sig: &str) -> KataVirtualVolume {
    let mut w = decode(&option(&raw_with(&tarfs_verity()))).unwrap();
    if let Some(d) = w.dm_verity.as_mut() {
        d.root_hash_sig = sig.to_owned();
    }
    w
}
