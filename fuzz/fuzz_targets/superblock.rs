//! The verity superblock parser on any bytes: never panics, errors are one line, whatever
//! parses encodes back to the same fields (and to the same bytes outside the padding), and the
//! hash-area check never panics for a request with or without a superblock.
#![no_main]

use kata_volume::verity::superblock::{Superblock, check_hash_area};
use kata_volume::verity::{RawVerity, VerityFormat, VerityParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Superblock::parse(data) {
        Ok(sb) => {
            let bytes = sb.encode();
            assert_eq!(Superblock::parse(&bytes).as_ref(), Ok(&sb));
            // The fields are what was read (the algorithm's name is rewritten in lower case
            // with NUL padding; padding is not read).
            assert_eq!(bytes[..32], data[..32]);
            assert_eq!(bytes[64..82], data[64..82]);
            let salt = sb.salt.as_bytes().len();
            assert_eq!(bytes[88..88 + salt], data[88..88 + salt]);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error {e}"),
    }
    let raw = RawVerity {
        hashtype: "sha256",
        hash: "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a",
        blocknum: 64,
        blocksize: 4096,
        hashsize: 4096,
        offset: 262_144,
    };
    for superblock in [false, true] {
        let format = VerityFormat {
            superblock,
            ..VerityFormat::default()
        };
        let Ok(p) = VerityParams::with_format(&raw, format) else {
            return;
        };
        if let Err(e) = check_hash_area(&p, data) {
            assert!(!e.to_string().contains('\n'), "multi-line error {e}");
        }
    }
});
