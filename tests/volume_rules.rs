//! Decoding rules: base64 and JSON framing, JSON types of every field, duplicates, Go's
//! case-insensitive names, unknown and null fields, escapes, order, omitted fields; plus the
//! regression cases found by fuzzing and by these tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::volume::{
    DmVerityInfo, KataVirtualVolume, MAX_OPTION_BYTES, VolumeError, decode, decode_base64,
    encode_option,
};
use support::{H256, assert_names, b64, err, option, raw_with, tarfs_verity, verity_with};

/// What the host's Go encoder writes for the tarfs layer of the issue (struct field order,
/// `omitempty`).
fn go_encoded() -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs","dm_verity":{{"hashtype":"sha256","hash":"{H256}","blocknum":16384,"blocksize":512,"hashsize":4096,"offset":8388608}}}}"#
    )
}

fn expected_wire() -> KataVirtualVolume {
    KataVirtualVolume {
        volume_type: "layer_raw_block".into(),
        source: "/dev/vdb".into(),
        fs_type: "erofs".into(),
        dm_verity: Some(DmVerityInfo {
            hashtype: "sha256".into(),
            hash: H256.into(),
            blocknum: 16384,
            blocksize: 512,
            hashsize: 4096,
            offset: 8_388_608,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn decode_err(input: &str) -> VolumeError {
    decode(input).expect_err("must be refused")
}

#[test]
fn option_bare_base64_and_json_decode_alike() {
    let json = go_encoded();
    for input in [
        option(&json),
        b64(&json),
        json.clone(),
        format!("  \n{json}"),
    ] {
        assert_eq!(decode(&input).unwrap(), expected_wire(), "{input:?}");
    }
    assert_eq!(decode_base64(&b64(&json)).unwrap(), expected_wire());
    // What we encode is what Go encodes, and decodes back.
    assert_eq!(expected_wire().to_json(), json);
    assert_eq!(encode_option(&expected_wire()), option(&json));
}

#[test]
fn an_empty_option_says_so() {
    for empty in ["", "  \n", "io.katacontainers.volume="] {
        let e = decode_err(empty).to_string();
        assert!(e.contains("the option is empty"), "{empty:?}: {e}");
    }
}

#[test]
fn invalid_base64_is_refused() {
    let json = go_encoded();
    let unpadded = b64(&json).trim_end_matches('=').to_owned();
    assert!(b64(&json).ends_with('='), "the case needs padding");
    let url_safe = b64("{\"volume_type\":\"??>>\"}")
        .replace('/', "_")
        .replace('+', "-");
    for bad in [
        "io.katacontainers.volume=!!!!".to_owned(),
        "io.katacontainers.volume=e".to_owned(),
        format!("io.katacontainers.volume={unpadded}"),
        format!("io.katacontainers.volume={url_safe}"),
        format!("io.katacontainers.volume= {}", b64(&json)),
        format!("io.katacontainers.volume={}\n", b64(&json)),
        "not base64 at all".to_owned(),
    ] {
        let e = decode_err(&bad);
        assert!(matches!(e, VolumeError::Base64(_)), "{bad:?}: {e}");
        assert_names(&e.to_string(), &["base64", "io.katacontainers.volume"]);
    }
}

#[test]
fn invalid_json_is_refused() {
    for bad in [
        "",
        "{",
        "{\"volume_type\":}",
        "{\"volume_type\":\"direct_block\",}",
        "{'volume_type':'direct_block'}",
        "{\"volume_type\":\"x\"} trailing",
        "{\"volume_type\":\"\\ud800\"}",
        "{\"a\":NaN}",
        "{\"a\":01}",
        "{\"a\":[1,]}",
        "{\"a\":\"\\x\"}",
        "{\"dm_verity\":{\"blocknum\":1e400}}",
        "{\"options\":[\"\\ud800\"]}",
    ] {
        let e = decode_err(&option(bad));
        assert!(matches!(e, VolumeError::Json(_)), "{bad:?}: {e}");
        assert_names(&e.to_string(), &["JSON"]);
    }
    // Bytes that are not UTF-8.
    let e = decode_err(&format!(
        "io.katacontainers.volume={}",
        support::b64("\u{0}")
    ));
    assert!(matches!(e, VolumeError::Json(_)), "{e}");
    use base64::Engine as _;
    let latin1 = base64::engine::general_purpose::STANDARD.encode([b'{', 0xff, b'}']);
    assert!(matches!(decode_err(&latin1), VolumeError::Json(_)));
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    for (bad, kind) in [
        ("[]", "an array"),
        ("\"direct_block\"", "a string"),
        ("1", "a number"),
        ("true", "a boolean"),
    ] {
        let e = decode_err(&option(bad));
        assert_eq!(
            e,
            VolumeError::FieldType {
                field: "volume".into(),
                expected: "an object",
                found: kind
            }
        );
        assert_names(&e.to_string(), &["volume", kind]);
    }
    // `null` is Go's empty struct: then the type is missing.
    assert_names(&err(&option("null")), &["volume_type", "\"\""]);
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let big = format!("io.katacontainers.volume={}", "A".repeat(MAX_OPTION_BYTES));
    let e = decode_err(&big);
    assert_eq!(
        e,
        VolumeError::TooLarge {
            size: big.len(),
            limit: MAX_OPTION_BYTES
        }
    );
    assert_names(
        &e.to_string(),
        &[&big.len().to_string(), &MAX_OPTION_BYTES.to_string()],
    );
    // The limit itself is allowed: an option of exactly that size is decoded (and refused
    // for what it says, not for its size).
    let json = raw_with(&tarfs_verity());
    let pad = MAX_OPTION_BYTES - json.len();
    let at_limit = format!("{}{json}", " ".repeat(pad));
    assert_eq!(at_limit.len(), MAX_OPTION_BYTES);
    assert!(decode(&at_limit).is_ok());
    let over = format!(" {at_limit}");
    assert_eq!(
        decode_err(&over),
        VolumeError::TooLarge {
            size: MAX_OPTION_BYTES + 1,
            limit: MAX_OPTION_BYTES
        }
    );
}

#[test]
fn duplicate_fields_are_refused_in_any_spelling() {
    let v = tarfs_verity();
    for (json, field) in [
        (
            r#"{"volume_type":"layer_raw_block","source":"/dev/a","source":"/dev/b"}"#.to_owned(),
            "source",
        ),
        (
            r#"{"volume_type":"layer_raw_block","source":"/dev/a","Source":"/dev/b"}"#.into(),
            "source",
        ),
        (
            r#"{"Volume_Type":"direct_block","volume_type":"layer_raw_block","source":"/dev/a"}"#
                .into(),
            "volume_type",
        ),
        (
            format!(r#"{{"volume_type":"layer_raw_block","source":"/dev/a","dm_verity":{v},"DM_VERITY":null}}"#),
            "dm_verity",
        ),
        (
            raw_with(&verity_with("blocknum", "16384,\"BLOCKNUM\":8")),
            "dm_verity.blocknum",
        ),
        (
            r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{"a":"1","a":"2"}}}"#
                .into(),
            "direct_volume.metadata.\"a\"",
        ),
        (
            r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"k":"1"},"Metadata":{}}}"#
                .into(),
            "image_pull.metadata",
        ),
        (
            r#"{"volume_type":"image_nydus_fs","source":"s","nydus_image":{"config":"a","ſnapshot_dir":"x","snapshot_dir":"y"}}"#
                .into(),
            "nydus_image.snapshot_dir",
        ),
    ] {
        let e = decode_err(&option(&json));
        assert_eq!(e, VolumeError::DuplicateField(field.into()), "{json}");
        assert_names(&e.to_string(), &[field, "Duplicate"]);
    }
    // Metadata keys are data: they are case-sensitive, so `a` and `A` are two keys.
    let w = decode(&option(
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{"a":"1","A":"2"}}}"#,
    ))
    .unwrap();
    assert_eq!(w.direct_volume.unwrap().metadata.unwrap().len(), 2);
}

#[test]
fn go_case_insensitive_names_are_matched() {
    let v = tarfs_verity();
    for json in [
        format!(
            r#"{{"Volume_Type":"layer_raw_block","SOURCE":"/dev/vdb","Fs_Type":"erofs","Dm_Verity":{v}}}"#
        ),
        format!(
            r#"{{"volume_type":"layer_raw_block","\u017fource":"/dev/vdb","fs_type":"erofs","dm_verity":{v}}}"#
        ),
        format!(
            r#"{{"volume_type":"layer_raw_block","ſOURCE":"/dev/vdb","fs_type":"erofs","dm_verity":{v}}}"#
        ),
        raw_with(&verity_with("blocknum", "16384").replace("blocknum", "bloc\u{212A}num")),
        raw_with(&verity_with("hashtype", "\"sha256\"").replace("hashtype", "HaShTyPe")),
    ] {
        assert_eq!(decode(&option(&json)).unwrap(), expected_wire(), "{json}");
    }
    // Folding is Go's simple folding only: these do not name a field, so they are ignored.
    for name in [
        "sourcé",
        "source ",
        " source",
        "s-o-urce",
        "src",
        "sour\u{0130}e",
        "\u{0131}d",
    ] {
        let json = format!(r#"{{"volume_type":"layer_raw_block","{name}":"/dev/vdb"}}"#);
        let w = decode(&option(&json)).unwrap();
        assert_eq!(w.source, "", "{name:?}");
    }
    // `Volume_Type`'s value is still exact: the type names are constants.
    assert_names(
        &err(&option(
            r#"{"volume_type":"LAYER_RAW_BLOCK","source":"/d"}"#,
        )),
        &["volume_type", "\"LAYER_RAW_BLOCK\""],
    );
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let json = format!(
        r#"{{"future":{{"deep":[1,{{"x":null}}]}},"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs","labels":["a"],"dm_verity":{}}}"#,
        verity_with("offset", "8388608,\"signature\":\"00ff\",\"version\":2")
    );
    assert_eq!(decode(&option(&json)).unwrap(), expected_wire());
    let w = decode(&option(
        r#"{"volume_type":"image_nydus_fs","source":"s","nydus_image":{"config":"c","extra":1}}"#,
    ))
    .unwrap();
    assert_eq!(w.nydus_image.unwrap().config, "c");
}

#[test]
fn null_is_the_empty_value() {
    let w = decode(&option(
        r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":null,"options":null,"direct_volume":null,"image_pull":null,"nydus_image":null,"dm_verity":null}"#,
    ))
    .unwrap();
    assert_eq!(
        w,
        KataVirtualVolume {
            volume_type: "layer_raw_block".into(),
            source: "/dev/vdb".into(),
            ..Default::default()
        }
    );
    // A null required field is a missing one.
    assert_names(
        &err(&option(
            r#"{"volume_type":"layer_raw_block","source":null}"#,
        )),
        &["Missing source", "layer_raw_block"],
    );
    assert_names(
        &err(&option(
            r#"{"volume_type":"direct_block","source":"/d","direct_volume":null}"#,
        )),
        &["Missing direct_volume", "direct_block"],
    );
    // A null number is zero, which the rules then refuse by name.
    assert_names(
        &err(&option(&raw_with(&verity_with("blocknum", "null")))),
        &["dm_verity.blocknum 0"],
    );
    // Null inside metadata maps and lists.
    let w = decode(&option(
        r#"{"volume_type":"direct_block","source":"/d","options":[null],"direct_volume":{"metadata":{"k":null}}}"#,
    ))
    .unwrap();
    assert_eq!(w.options, vec![String::new()]);
    assert_eq!(w.direct_volume.unwrap().metadata.unwrap()["k"], "");
}

#[test]
fn go_escapes_are_decoded() {
    // Go's encoder writes <, > and & as \u003c, \u003e, \u0026, and U+2028/9 escaped.
    let json = r#"{"volume_type":"direct_block","source":"/dev/a\u0026b","direct_volume":{"metadata":{"\u003ckey\u003e":"x\u0026y\u2028z","q":"\"\\\/\b\f\n\r\t"}}}"#;
    let w = decode(&option(json)).unwrap();
    assert_eq!(w.source, "/dev/a&b");
    let md = w.direct_volume.unwrap().metadata.unwrap();
    assert_eq!(md["<key>"], "x&y\u{2028}z");
    assert_eq!(md["q"], "\"\\/\u{8}\u{c}\n\r\t");
    // Escaped field names match too.
    let w = decode(&option(
        r#"{"volume\u005ftype":"layer_raw_block","\u0073ource":"/d"}"#,
    ))
    .unwrap();
    assert_eq!(
        (w.volume_type.as_str(), w.source.as_str()),
        ("layer_raw_block", "/d")
    );
}

#[test]
fn field_order_and_whitespace_do_not_matter() {
    let json = format!(
        "{{ \"dm_verity\" : {{\"offset\":8388608,\"hashsize\":4096,\"blocksize\":512,\"blocknum\":16384,\"hash\":\"{H256}\",\"hashtype\":\"sha256\"}},\n\t\"fs_type\":\"erofs\", \"source\":\"/dev/vdb\",\r\n\"volume_type\":\"layer_raw_block\" }}"
    );
    assert_eq!(decode(&option(&json)).unwrap(), expected_wire());
}

#[test]
fn omitted_empty_fields_are_empty() {
    let w = decode(&option(
        r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"a":"b"}}}"#,
    ))
    .unwrap();
    assert_eq!(w.source, "");
    assert_eq!(w.fs_type, "");
    assert!(w.options.is_empty());
    assert!(w.direct_volume.is_none() && w.nydus_image.is_none() && w.dm_verity.is_none());
    // And Go's omitempty is what we write: no empty fields on the way out.
    assert_eq!(
        w.to_json(),
        r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"a":"b"}}}"#
    );
    assert_eq!(
        KataVirtualVolume::default().to_json(),
        r#"{"volume_type":""}"#
    );
    // `{}` objects are present but empty, as Go's non-nil pointers to empty structs.
    let w = decode(&option(
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{}}"#,
    ))
    .unwrap();
    assert!(w.direct_volume.is_some());
    // Go writes a nil map as null.
    assert_eq!(
        w.to_json(),
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":null}}"#
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // Nesting past 32 levels is refused anywhere, known field or not: the contract's deepest
    // value is two levels, and deep junk is a hostile host's, never a real one's.
    for deep in [
        format!(
            "{{\"options\":{}1{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        format!(
            "{{\"volume_type\":\"layer_raw_block\",\"source\":\"/d\",\"x\":{}}}",
            "{\"a\":".repeat(100) + "1" + &"}".repeat(100)
        ),
    ] {
        let e = decode_err(&option(&deep));
        assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    }
    let ok = format!(
        "{{\"volume_type\":\"layer_raw_block\",\"source\":\"/d\",\"x\":{}}}",
        "{\"a\":".repeat(30) + "1" + &"}".repeat(30)
    );
    assert!(decode(&option(&ok)).is_ok());
    // Exactly 32 levels (the volume's object and 31 arrays) is allowed, also with more than
    // 32 brackets in all; one level more is not.
    let at = |levels: usize| {
        format!(
            "{{\"volume_type\":\"layer_raw_block\",\"source\":\"/d\",\"x\":{}1{},\"y\":[[],[]]}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    assert!(decode(&option(&at(32))).is_ok());
    let e = decode_err(&option(&at(33)));
    assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    // Escapes in strings end where they should: what follows the string still counts.
    for escaped in [r#"\n"#, r#"\\"#, r#"\""#, r#"\u005b"#] {
        let deep = format!(
            "{{\"volume_type\":\"layer_raw_block\",\"source\":\"/d{escaped}\",\"x\":{}1{}}}",
            "[".repeat(40),
            "]".repeat(40)
        );
        let e = decode_err(&option(&deep));
        assert!(
            e.to_string().contains("nested deeper than 32"),
            "{escaped}: {e}"
        );
    }
}

#[test]
fn unknown_fields_are_checked_for_syntax_but_not_kept() {
    // An unknown member is skipped without building a tree (up to 32 levels deep, see
    // above); it must still be valid JSON, and numbers in it need not fit any type (Go skips
    // unknown fields the same way).
    for unknown in [
        format!("{}1{}", "[".repeat(30), "]".repeat(30)),
        format!("{}{}", "{\"a\":".repeat(30), "}".repeat(30)).replacen('}', "1}", 1),
        "1e400".to_owned(),
        "[\"\\ud800\"]".to_owned(),
    ] {
        let json =
            format!(r#"{{"volume_type":"layer_raw_block","future":{unknown},"source":"/d"}}"#);
        let w = decode(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.source, "/d");
    }
    for broken in ["[1,]", "{\"a\"}", "01", "\"\\x\"", "tru"] {
        let json = format!(r#"{{"volume_type":"layer_raw_block","future":{broken}}}"#);
        assert!(
            matches!(decode_err(&json), VolumeError::Json(_)),
            "{broken}"
        );
    }
}

// ---- regressions -------------------------------------------------------------------------------

#[test]
fn regression_metadata_keys_keep_errors_on_one_line() {
    // A metadata key is host data; it once went into the field path raw, so a key with a
    // newline split the CLI's one `error:` line in two.
    for json in [
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{"a\nb":1}}}"#,
        r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{"a\nb":"1","a\nb":"2"}}}"#,
    ] {
        let e = err(&option(json));
        assert_names(&e, &["direct_volume.metadata.\"a\\nb\""]);
    }
    let long = "k".repeat(10_000);
    let e = err(&option(&format!(
        r#"{{"volume_type":"direct_block","source":"/d","direct_volume":{{"metadata":{{"{long}":1}}}}}}"#
    )));
    assert!(e.len() < 300, "{} bytes", e.len());
}
