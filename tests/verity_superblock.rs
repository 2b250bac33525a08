//! The verity superblock: parse and encode (round trip, every field refused with its value),
//! the comparison with a request, the "no superblock expected" refusal, the tree's place after
//! a superblock. Cross-checks with `veritysetup` images: tests/verity_superblock_veritysetup.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/veritysetup.rs"]
mod veritysetup;

mod support;

use kata_volume::verity::superblock::{
    SUPERBLOCK_MAGIC, SUPERBLOCK_SIZE, check_hash_area, expect_none,
};
use kata_volume::verity::units::BlockSize;
use kata_volume::verity::{
    HashAlgorithm, RawVerity, Salt, Superblock, SuperblockCheckError, SuperblockError,
    VerityFormat, VerityParams, VerityTarget, VerityVersion,
};
use kata_volume::volume::Volume;
use proptest::prelude::*;
use support::{H1, H256, assert_names};
use veritysetup::pattern;

/// A `layer_raw_block` volume's JSON with `extra` members appended to its `dm_verity`.
fn volume_json(
    (alg, root): (&str, &str),
    blocks: u64,
    (bs, hs): (u64, u64),
    offset: u64,
    extra: &str,
) -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs","dm_verity":{{"hashtype":"{alg}","hash":"{root}","blocknum":{blocks},"blocksize":{bs},"hashsize":{hs},"offset":{offset}{extra}}}}}"#
    )
}

/// The checked parameters of a volume's JSON.
fn params_of(json: &str) -> VerityParams {
    Volume::parse(json).unwrap().verity().unwrap().clone()
}

/// Parameters in a given format, from numbers.
fn params(version: VerityVersion, salt: &str, superblock: bool) -> VerityParams {
    VerityParams::with_format(
        &RawVerity {
            hashtype: "sha256",
            hash: H256,
            blocknum: 64,
            blocksize: 4096,
            hashsize: 4096,
            offset: 262_144,
        },
        VerityFormat {
            version,
            salt: Salt::parse(salt).unwrap(),
            superblock,
        },
    )
    .unwrap()
}

/// A valid superblock (hash type 1, sha256, 4096/4096, 64 blocks, salt `abcd`) as bytes.
fn good_bytes() -> [u8; SUPERBLOCK_SIZE] {
    Superblock::for_params(&params(VerityVersion::V1, "abcd", true), [7; 16]).encode()
}

fn with(at: usize, value: &[u8]) -> [u8; SUPERBLOCK_SIZE] {
    let mut b = good_bytes();
    b[at..at + value.len()].copy_from_slice(value);
    b
}

#[test]
fn the_layout_is_the_documented_one() {
    let b = good_bytes();
    assert_eq!(&b[0..8], b"verity\0\0");
    assert_eq!(b[8..12], 1u32.to_le_bytes(), "superblock version");
    assert_eq!(b[12..16], 1u32.to_le_bytes(), "hash type");
    assert_eq!(b[16..32], [7; 16], "uuid");
    assert_eq!(&b[32..38], b"sha256");
    assert!(b[38..64].iter().all(|&x| x == 0), "algorithm NUL-padded");
    assert_eq!(b[64..68], 4096u32.to_le_bytes());
    assert_eq!(b[68..72], 4096u32.to_le_bytes());
    assert_eq!(b[72..80], 64u64.to_le_bytes());
    assert_eq!(b[80..82], 2u16.to_le_bytes(), "salt size");
    assert!(b[82..88].iter().all(|&x| x == 0));
    assert_eq!(b[88..90], [0xab, 0xcd]);
    assert!(
        b[90..].iter().all(|&x| x == 0),
        "salt and tail padding zero"
    );
}

#[test]
fn every_bad_field_is_refused_with_its_value() {
    let cases: Vec<([u8; SUPERBLOCK_SIZE], SuperblockError, &[&str])> = vec![
        (
            with(0, b"verify\0\0"),
            SuperblockError::Magic("verify\\x00\\x00".into()),
            &["magic", "verify\\x00\\x00", "expected \"verity\\x00\\x00\""],
        ),
        (
            with(8, &2u32.to_le_bytes()),
            SuperblockError::Version(2),
            &["version 2", "expected 1"],
        ),
        (
            with(12, &2u32.to_le_bytes()),
            SuperblockError::HashType(2),
            &["hash_type 2", "0 or 1"],
        ),
        (
            with(32, b"md5\0\0\0"),
            SuperblockError::Algorithm("md5".into()),
            &["algorithm \"md5\""],
        ),
        (
            with(32, &[b'a'; 32]),
            SuperblockError::Algorithm("a".repeat(32)),
            &["algorithm", "aaaa"],
        ),
        (
            with(64, &3000u32.to_le_bytes()),
            SuperblockError::DataBlockSize(3000),
            &["data block size 3000"],
        ),
        (
            with(64, &8192u32.to_le_bytes()),
            SuperblockError::DataBlockSize(8192),
            &["data block size 8192", "512 to 4096"],
        ),
        (
            with(68, &256u32.to_le_bytes()),
            SuperblockError::HashBlockSize(256),
            &["hash block size 256"],
        ),
        (
            with(72, &0u64.to_le_bytes()),
            SuperblockError::DataBlocks,
            &["data block count 0"],
        ),
        (
            with(80, &257u16.to_le_bytes()),
            SuperblockError::SaltSize(257),
            &["salt size 257", "256"],
        ),
        (
            with(80, &u16::MAX.to_le_bytes()),
            SuperblockError::SaltSize(u16::MAX),
            &["salt size 65535"],
        ),
    ];
    for (bytes, want, parts) in cases {
        let e = Superblock::parse(&bytes).unwrap_err();
        assert_eq!(e, want);
        let msg = e.to_string();
        assert!(msg.starts_with(char::is_uppercase), "{msg}");
        assert_names(&msg, parts);
    }
    // Padding is not read: after the algorithm's NUL, or between the fields.
    let sb = Superblock::parse(&with(32, b"sha256\0x")).unwrap();
    assert_eq!(sb.algorithm, HashAlgorithm::Sha256);
    assert_eq!(Superblock::parse(&with(84, &[1, 2])).unwrap(), sb);
    assert_eq!(Superblock::parse(&with(400, &[1, 2])).unwrap(), sb);
    for len in [0, 8, 511] {
        let e = Superblock::parse(&good_bytes()[..len]).unwrap_err();
        assert_eq!(e, SuperblockError::Short(len));
        assert_names(&e.to_string(), &[&format!("{len} bytes"), "expected 512"]);
    }
    // More than 512 bytes: the first 512 are the superblock.
    let mut long = good_bytes().to_vec();
    long.extend([0xff; 100]);
    assert_eq!(
        Superblock::parse(&long).unwrap(),
        Superblock::parse(&good_bytes()).unwrap()
    );
}

#[test]
fn check_names_the_first_mismatch_with_both_values() {
    let request = params(VerityVersion::V1, "abcd", true);
    let good = Superblock::for_params(&request, [1; 16]);
    assert_eq!(good.check(&request), Ok(()));
    let mismatch = |sb: Superblock| match sb.check(&request).unwrap_err() {
        e @ SuperblockCheckError::Mismatch { .. } => e.to_string(),
        other => panic!("{other:?}"),
    };
    let cases: Vec<(Superblock, &[&str])> = vec![
        (
            Superblock {
                version: VerityVersion::V0,
                ..good.clone()
            },
            &["hash_type 0", "dm_verity.hash_type is 1"],
        ),
        (
            Superblock {
                algorithm: HashAlgorithm::Sha1,
                ..good.clone()
            },
            &["algorithm sha1", "dm_verity.hashtype is sha256"],
        ),
        (
            Superblock {
                data_block_size: BlockSize::B512,
                ..good.clone()
            },
            &["data block size 512", "dm_verity.blocksize is 4096"],
        ),
        (
            Superblock {
                hash_block_size: BlockSize::B512,
                ..good.clone()
            },
            &["hash block size 512", "dm_verity.hashsize is 4096"],
        ),
        (
            Superblock {
                data_blocks: 65,
                ..good.clone()
            },
            &["data blocks 65", "dm_verity.blocknum is 64"],
        ),
        (
            Superblock {
                salt: Salt::none(),
                ..good.clone()
            },
            &["salt -", "dm_verity.salt is abcd"],
        ),
        (
            Superblock {
                salt: Salt::parse("abce").unwrap(),
                ..good.clone()
            },
            &["salt abce", "dm_verity.salt is abcd"],
        ),
        // Two differences: the first in the documented order is named.
        (
            Superblock {
                data_blocks: 65,
                algorithm: HashAlgorithm::Sha512,
                ..good.clone()
            },
            &["algorithm sha512"],
        ),
    ];
    for (sb, parts) in cases {
        let msg = mismatch(sb);
        assert_names(&msg, &["Verity superblock at byte 262144 has"]);
        assert_names(&msg, parts);
    }
    // The UUID is not part of any request.
    let other_uuid = Superblock {
        uuid: [9; 16],
        ..good.clone()
    };
    assert_eq!(other_uuid.check(&request), Ok(()));
}

#[test]
fn the_hash_area_is_checked_against_the_request() {
    let with_sb = params(VerityVersion::V1, "abcd", true);
    let without = params(VerityVersion::V1, "abcd", false);
    let bytes = good_bytes();

    // Expected and there: every field checked, the superblock returned.
    let sb = check_hash_area(&with_sb, &bytes).unwrap().unwrap();
    assert_eq!(sb.uuid, [7; 16]);
    // Expected and not there (a tree's first block, zeros, too short).
    for bad in [pattern(512, 3), vec![0; 512], bytes[..100].to_vec()] {
        let e = check_hash_area(&with_sb, &bad).unwrap_err();
        assert!(
            matches!(
                e,
                SuperblockCheckError::Invalid {
                    offset: 262_144,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = kata_volume::error_chain(&e);
        assert_names(
            &msg,
            &[
                "byte 262144",
                "dm_verity.no_superblock is false",
                "superblock",
            ],
        );
    }
    // Expected, there, but for other parameters.
    let e = check_hash_area(&params(VerityVersion::V0, "abcd", true), &bytes).unwrap_err();
    assert_names(&e.to_string(), &["hash_type 1", "dm_verity.hash_type is 0"]);

    // Not expected and there: refused, with the message the issue asks for.
    let e = check_hash_area(&without, &bytes).unwrap_err();
    assert_eq!(e, SuperblockCheckError::Unexpected { offset: 262_144 });
    assert_eq!(
        e.to_string(),
        "A verity superblock was found at byte 262144 but dm_verity.no_superblock is true"
    );
    assert_eq!(expect_none(&without, &SUPERBLOCK_MAGIC), Err(e));
    // Not expected and not there: fine, whatever the length (a device may end at the offset).
    for ok in [
        Vec::new(),
        SUPERBLOCK_MAGIC[..7].to_vec(),
        pattern(512, 4),
        vec![0; 512],
    ] {
        assert_eq!(check_hash_area(&without, &ok), Ok(None));
    }
}

#[test]
fn the_tree_starts_one_hash_block_after_a_superblock() {
    for (hs, offset) in [
        (512u64, 262_144u64),
        (1024, 262_144),
        (4096, 262_144),
        (4096, 1 << 20),
    ] {
        let raw = RawVerity {
            hashtype: "sha256",
            hash: H256,
            blocknum: 64,
            blocksize: 4096,
            hashsize: hs,
            offset,
        };
        let plain = VerityParams::new(&raw).unwrap();
        let sb = VerityParams::with_format(
            &raw,
            VerityFormat {
                superblock: true,
                ..VerityFormat::default()
            },
        )
        .unwrap();
        assert_eq!(
            sb.hash_offset(),
            plain.hash_offset(),
            "offset is the superblock's"
        );
        assert_eq!(sb.tree_offset().0, offset + hs);
        assert_eq!(sb.hash_start_block(), plain.hash_start_block() + 1);
        assert_eq!(
            sb.required_device_size().0,
            plain.required_device_size().0 + hs
        );
        let t = VerityTarget::new(&sb, "/dev/vdb", Vec::new()).unwrap();
        assert_eq!(t.hash_start_block, offset / hs + 1);
    }
    // The hash area's end, superblock included, must fit in 64 bits.
    let offset = u64::MAX - 4095;
    let raw = RawVerity {
        hashtype: "sha256",
        hash: H256,
        blocknum: 1,
        blocksize: 4096,
        hashsize: 4096,
        offset,
    };
    assert!(VerityParams::new(&raw).is_ok());
    let e = VerityParams::with_format(
        &raw,
        VerityFormat {
            superblock: true,
            ..VerityFormat::default()
        },
    )
    .unwrap_err();
    assert_names(&e.to_string(), &["dm_verity.offset", &offset.to_string()]);
}

#[test]
fn upstream_agent_vector_reads_as_no_superblock() {
    // kata-containers CC-0.8.1 src/agent/src/storage/dm_verity.rs `test_get_dm_verity_info`:
    // 2361 blocks of 512 bytes, 4 KiB hash blocks at byte 1212416, the six CCv0 fields.
    let json = volume_json(("sha256", H256), 2361, (512, 4096), 1_212_416, "");
    let p = params_of(&json);
    assert!(!p.has_superblock());
    assert_eq!(p.hash_start_block(), 296);
    let t = VerityTarget::new(&p, "/dev/vdb", Vec::new()).unwrap();
    assert_eq!(
        kata_volume::verity::VerityTable::new(t)
            .unwrap()
            .to_string(),
        format!("0 2361 verity 1 /dev/vdb /dev/vdb 512 4096 2361 296 sha256 {H256} -")
    );
    // The same numbers with Kata main's explicit fields and a superblock: one block later.
    let json = volume_json(
        ("sha1", H1),
        2361,
        (512, 4096),
        1_212_416,
        r#","salt":"","hash_type":1,"no_superblock":false"#,
    );
    let p = params_of(&json);
    assert_eq!(p.hash_start_block(), 297);
    assert!(p.salt().is_empty());
}

fn any_superblock() -> impl Strategy<Value = Superblock> {
    let size = prop::sample::select(&[512u64, 1024, 2048, 4096][..]);
    (
        any::<bool>(),
        any::<[u8; 16]>(),
        prop::sample::select(
            &[
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha1,
                HashAlgorithm::Sha512,
            ][..],
        ),
        size.clone(),
        size,
        1u64..=u64::MAX,
        prop::collection::vec(any::<u8>(), 0..=256),
    )
        .prop_map(
            |(v0, uuid, algorithm, bs, hs, data_blocks, salt)| Superblock {
                version: if v0 {
                    VerityVersion::V0
                } else {
                    VerityVersion::V1
                },
                uuid,
                algorithm,
                data_block_size: BlockSize::new(bs).unwrap(),
                hash_block_size: BlockSize::new(hs).unwrap(),
                data_blocks,
                salt: Salt::from_bytes(&salt).unwrap(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn superblocks_round_trip(sb in any_superblock()) {
        let bytes = sb.encode();
        prop_assert_eq!(&Superblock::parse(&bytes).unwrap(), &sb);
        prop_assert_eq!(Superblock::parse(&bytes).unwrap().encode(), bytes);
    }

    #[test]
    fn any_bytes_parse_or_give_one_line_error(
        tail in prop::collection::vec(any::<u8>(), 0..600),
        magic in any::<bool>(),
    ) {
        let mut bytes = tail;
        if magic && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&SUPERBLOCK_MAGIC);
            if bytes.len() >= 12 {
                bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
            }
        }
        match Superblock::parse(&bytes) {
            Ok(sb) => prop_assert_eq!(sb.encode()[..88].to_vec(), bytes[..88].to_vec()),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
        let p = params(VerityVersion::V1, "-", true);
        let _ = check_hash_area(&p, &bytes);
    }
}
