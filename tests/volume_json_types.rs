//! Decoding rules: every field of the wrong JSON type, and numbers that are not `u64`
//! (negative, fractional, exponent, beyond `u64::MAX`); each error names the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::volume::{VolumeError, decode};
use support::{assert_names, err, option, raw_with, verity_with};

fn decode_err(input: &str) -> VolumeError {
    decode(input).expect_err("must be refused")
}

#[test]
fn string_fields_of_the_wrong_type() {
    for (json, field, found) in [
        (r#"{"volume_type":1}"#.to_owned(), "volume_type", "a number"),
        (
            r#"{"volume_type":["layer_raw_block"]}"#.into(),
            "volume_type",
            "an array",
        ),
        (
            r#"{"volume_type":"layer_raw_block","source":1}"#.into(),
            "source",
            "a number",
        ),
        (
            r#"{"volume_type":"layer_raw_block","source":{}}"#.into(),
            "source",
            "an object",
        ),
        (
            r#"{"volume_type":"layer_raw_block","fs_type":true}"#.into(),
            "fs_type",
            "a boolean",
        ),
        (
            r#"{"volume_type":"layer_raw_block","options":"ro"}"#.into(),
            "options",
            "a string",
        ),
        (
            r#"{"volume_type":"layer_raw_block","options":["ro",1]}"#.into(),
            "options[1]",
            "a number",
        ),
        (
            r#"{"volume_type":"layer_raw_block","options":[["ro"]]}"#.into(),
            "options[0]",
            "an array",
        ),
        (
            r#"{"volume_type":"direct_block","direct_volume":"x"}"#.into(),
            "direct_volume",
            "a string",
        ),
        (
            r#"{"volume_type":"direct_block","direct_volume":{"metadata":[]}}"#.into(),
            "direct_volume.metadata",
            "an array",
        ),
        (
            r#"{"volume_type":"direct_block","direct_volume":{"metadata":{"k":1}}}"#.into(),
            "direct_volume.metadata.\"k\"",
            "a number",
        ),
        (
            r#"{"volume_type":"image_guest_pull","image_pull":1}"#.into(),
            "image_pull",
            "a number",
        ),
        (
            r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"k":{}}}}"#.into(),
            "image_pull.metadata.\"k\"",
            "an object",
        ),
        (
            r#"{"volume_type":"image_nydus_fs","nydus_image":[]}"#.into(),
            "nydus_image",
            "an array",
        ),
        (
            r#"{"volume_type":"image_nydus_fs","nydus_image":{"config":1}}"#.into(),
            "nydus_image.config",
            "a number",
        ),
        (
            r#"{"volume_type":"image_nydus_fs","nydus_image":{"snapshot_dir":false}}"#.into(),
            "nydus_image.snapshot_dir",
            "a boolean",
        ),
        (raw_with("\"x\""), "dm_verity", "a string"),
        (
            raw_with(&verity_with("hashtype", "256")),
            "dm_verity.hashtype",
            "a number",
        ),
        (
            raw_with(&verity_with("hash", "[]")),
            "dm_verity.hash",
            "an array",
        ),
    ] {
        let e = decode_err(&option(&json));
        assert!(matches!(e, VolumeError::FieldType { .. }), "{json}: {e}");
        assert_names(&e.to_string(), &[&format!("field {field}:"), found]);
    }
}

#[test]
fn numbers_of_the_wrong_type_or_range() {
    for field in ["blocknum", "blocksize", "hashsize", "offset"] {
        let path = format!("dm_verity.{field}");
        // A number written as a string, a boolean, an object: wrong JSON type.
        for (raw, found) in [
            ("\"16384\"", "a string"),
            ("true", "a boolean"),
            ("{}", "an object"),
        ] {
            let e = decode_err(&option(&raw_with(&verity_with(field, raw))));
            assert!(
                matches!(e, VolumeError::FieldType { .. }),
                "{field} {raw}: {e}"
            );
            assert_names(&e.to_string(), &[&path, found, "unsigned integer"]);
        }
        // Numbers that are not u64: negative, fractional, exponent, beyond u64::MAX.
        for (raw, shown) in [
            ("-1", "-1"),
            ("-16384", "-16384"),
            ("1.5", "1.5"),
            ("4096.0", "4096"),
            ("1e3", "1000"),
            ("18446744073709551616", "e+19"),
            ("-0.0", "-0"),
        ] {
            let e = decode_err(&option(&raw_with(&verity_with(field, raw))));
            assert!(
                matches!(e, VolumeError::Number { .. }),
                "{field} {raw}: {e}"
            );
            assert_names(
                &e.to_string(),
                &[&path, shown, "not an unsigned 64-bit integer"],
            );
        }
    }
    // u64::MAX itself is a u64: it reaches the verity rules.
    let e = err(&option(&raw_with(&verity_with(
        "blocknum",
        "18446744073709551615",
    ))));
    assert_names(&e, &["dm_verity.blocknum 18446744073709551615"]);
}
