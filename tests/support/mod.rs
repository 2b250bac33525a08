//! Helpers shared by the integration tests: fixed hashes, JSON builders, option encoding.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::volume::Volume;

/// A SHA-256 root hash (64 hex digits).
pub const H256: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
/// A SHA-1 root hash (40 hex digits).
pub const H1: &str = "0123456789abcdef0123456789abcdef01234567";
/// A SHA-512 root hash (128 hex digits).
pub const H512: &str = concat!(
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
);

/// The full mount option for a JSON text.
pub fn option(json: &str) -> String {
    format!("io.katacontainers.volume={}", STANDARD.encode(json))
}

/// Bare standard base64 of a JSON text.
pub fn b64(json: &str) -> String {
    STANDARD.encode(json)
}

/// A `dm_verity` object.
pub fn verity(
    hashtype: &str,
    hash: &str,
    blocknum: u64,
    blocksize: u64,
    hashsize: u64,
    offset: u64,
) -> String {
    format!(
        r#"{{"hashtype":"{hashtype}","hash":"{hash}","blocknum":{blocknum},"blocksize":{blocksize},"hashsize":{hashsize},"offset":{offset}}}"#
    )
}

/// The tarfs-style verity of the issue: 16384 blocks of 512, 4 KiB hash blocks at 8 MiB.
pub fn tarfs_verity() -> String {
    verity("sha256", H256, 16384, 512, 4096, 8_388_608)
}

/// A `layer_raw_block` volume on `/dev/vdb` with the given `dm_verity` object text.
pub fn raw_with(verity: &str) -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs","dm_verity":{verity}}}"#
    )
}

/// A `dm_verity` object with one member replaced by raw JSON text.
pub fn verity_with(member: &str, raw: &str) -> String {
    let mut fields = vec![
        ("hashtype", "\"sha256\"".to_owned()),
        ("hash", format!("\"{H256}\"")),
        ("blocknum", "16384".to_owned()),
        ("blocksize", "512".to_owned()),
        ("hashsize", "4096".to_owned()),
        ("offset", "8388608".to_owned()),
    ];
    for f in &mut fields {
        if f.0 == member {
            f.1 = raw.to_owned();
        }
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// The error message of parsing `input` (which must fail).
pub fn err(input: &str) -> String {
    match Volume::parse(input) {
        Ok(v) => panic!("accepted {input:?} as {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `msg` mentions every one of `parts` and is a single line.
pub fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not mention {p:?}");
    }
    assert!(!msg.contains('\n'), "{msg:?} is more than one line");
}
