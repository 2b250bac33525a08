//! The catalogue's malformed encodings of the volume option: base64 and JSON gone wrong,
//! fields of the wrong type or value, ambiguity, hostile nesting. Each is a `(name, option)`
//! built from `j`, the good request's volume JSON.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

use super::{TRUSTED, UNTRUSTED, opt_of, verity_json};

/// Every malformed encoding of the volume `j`.
pub fn cases(j: &str) -> Vec<(&'static str, String)> {
    vec![
        ("empty option", "io.katacontainers.volume=".into()),
        (
            "not base64",
            "io.katacontainers.volume=!!!not-base64!!!".into(),
        ),
        (
            "base64 without padding",
            format!(
                "io.katacontainers.volume={}",
                STANDARD_NO_PAD.encode(format!("{j} "))
            ),
        ),
        (
            "url-safe base64",
            format!(
                "io.katacontainers.volume={}",
                URL_SAFE.encode("{\"volume_type\":\"???>>>\"}")
            ),
        ),
        (
            "base64 with a space",
            format!("io.katacontainers.volume= {}", STANDARD.encode(j)),
        ),
        (
            "base64 of non-UTF-8",
            format!(
                "io.katacontainers.volume={}",
                STANDARD.encode([0xff, 0xfe, 0x7b])
            ),
        ),
        ("base64 of non-JSON", opt_of("volume_type=layer_raw_block")),
        ("JSON array", opt_of("[1,2,3]")),
        ("JSON null", opt_of("null")),
        ("JSON string", opt_of("\"layer_raw_block\"")),
        ("JSON number", opt_of("42")),
        ("truncated JSON", opt_of(&j[..j.len() / 2])),
        ("trailing garbage", opt_of(&format!("{j}xyz"))),
        ("two objects", opt_of(&format!("{j}{j}"))),
        ("empty object", opt_of("{}")),
        (
            "unknown volume type",
            opt_of(r#"{"volume_type":"raw_block"}"#),
        ),
        (
            "volume type in wrong case",
            opt_of(&j.replace("layer_raw_block", "LAYER_RAW_BLOCK")),
        ),
        (
            "duplicate source",
            opt_of(&j.replace(
                r#""source":"/dev/vdb""#,
                r#""source":"/dev/vdb","Source":"/dev/mem""#,
            )),
        ),
        (
            "duplicate hash",
            opt_of(&j.replace(
                r#""hashtype""#,
                &format!(r#""hash":"{UNTRUSTED}","hashtype""#),
            )),
        ),
        (
            "hash as a number",
            opt_of(&j.replace(&format!("\"{TRUSTED}\""), "1111")),
        ),
        (
            "blocknum as a string",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":"4096""#)),
        ),
        (
            "negative blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":-1"#)),
        ),
        (
            "float blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4096.0"#)),
        ),
        (
            "exponent blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4e3"#)),
        ),
        (
            "huge blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":18446744073709551616"#)),
        ),
        (
            "blocknum 2^32",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4294967296"#)),
        ),
        (
            "blocknum 0",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":0"#)),
        ),
        (
            "offset overlapping data",
            opt_of(&j.replace(r#""offset":16777216"#, r#""offset":4096"#)),
        ),
        (
            "offset near u64::MAX",
            opt_of(&j.replace(r#""offset":16777216"#, r#""offset":18446744073709547520"#)),
        ),
        (
            "blocksize 8192",
            opt_of(&j.replace(r#""blocksize":4096"#, r#""blocksize":8192"#)),
        ),
        (
            "blocksize 3000",
            opt_of(&j.replace(r#""blocksize":4096"#, r#""blocksize":3000"#)),
        ),
        (
            "hashsize 0",
            opt_of(&j.replace(r#""hashsize":4096"#, r#""hashsize":0"#)),
        ),
        (
            "hashtype md5",
            opt_of(&j.replace(r#""hashtype":"sha256""#, r#""hashtype":"md5""#)),
        ),
        ("short hash", opt_of(&j.replace(TRUSTED, &TRUSTED[..63]))),
        ("non-hex hash", opt_of(&j.replace(TRUSTED, &"g".repeat(64)))),
        (
            "dm_verity as a string",
            opt_of(r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":"yes"}"#),
        ),
        (
            "options as a string",
            opt_of(&verity_json(TRUSTED, r#","options":"rw""#)),
        ),
        (
            "fs_type with spaces",
            opt_of(&verity_json(TRUSTED, r#","fs_type":"erofs rw""#)),
        ),
        (
            "fs_type with a comma",
            opt_of(&verity_json(TRUSTED, r#","fs_type":"erofs,rw""#)),
        ),
        (
            "lone surrogate",
            opt_of(&j.replace("/dev/vdb", "/dev/vdb\\ud800")),
        ),
        (
            "deeply nested JSON",
            opt_of(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ),
        (
            "deeply nested object",
            opt_of(&format!(
                r#"{{"volume_type":"layer_raw_block","x":{}1{}}}"#,
                "{\"a\":".repeat(5000),
                "}".repeat(5000)
            )),
        ),
        (
            "deep arrays in an unknown field",
            opt_of(&j.replacen(
                '{',
                &format!(r#"{{"x":{}{},"#, "[".repeat(5000), "]".repeat(5000)),
                1,
            )),
        ),
        (
            "33 levels in an unknown field",
            opt_of(&j.replacen(
                '{',
                &format!(r#"{{"x":{}{},"#, "[".repeat(32), "]".repeat(32)),
                1,
            )),
        ),
    ]
}
