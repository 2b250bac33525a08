//! Every rule of `dm_verity` parameters (`VerityParams::new`, `Geometry::check`), with the
//! upstream projects' own cases, and the tarfs block-info string.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kata_volume::verity::{
    Geometry, HashAlgorithm, MAX_DATA_BLOCKS, RawVerity, Salt, VerityError, VerityParams,
    parse_tarfs,
};
use support::{H1, H256, H512, assert_names};

fn raw<'a>(
    hashtype: &'a str,
    hash: &'a str,
    blocknum: u64,
    blocksize: u64,
    hashsize: u64,
    offset: u64,
) -> RawVerity<'a> {
    RawVerity {
        hashtype,
        hash,
        blocknum,
        blocksize,
        hashsize,
        offset,
    }
}

/// The error of checking these numbers with a SHA-256 hash.
fn refuse(blocknum: u64, blocksize: u64, hashsize: u64, offset: u64) -> VerityError {
    VerityParams::new(&raw("sha256", H256, blocknum, blocksize, hashsize, offset))
        .expect_err("must be refused")
}

#[test]
fn upstream_valid_case_512_512_16384_8388608() {
    let p = VerityParams::new(&raw("sha256", H256, 16384, 512, 512, 8_388_608)).unwrap();
    assert_eq!(p.algorithm(), HashAlgorithm::Sha256);
    assert_eq!(p.data_blocks(), 16384);
    assert_eq!(p.data_block_size().bytes(), 512);
    assert_eq!(p.hash_block_size().bytes(), 512);
    assert_eq!(p.hash_offset().0, 8_388_608);
    assert_eq!(p.data_size().0, 8_388_608);
    assert_eq!(p.hash_start_block(), 16384);
    assert!(p.salt().is_empty());
    // 16 digests per 512-byte block: 1024 + 64 + 4 + 1 hash blocks in four levels.
    let tree = p.tree();
    assert_eq!((tree.levels(), tree.total_blocks()), (4, 1093));
    assert_eq!(p.required_device_size().0, 8_388_608 + 1093 * 512);
}

#[test]
fn hashtype_md5_is_refused() {
    let e = VerityParams::new(&raw("md5", H256, 16384, 512, 4096, 8_388_608)).unwrap_err();
    assert_eq!(e, VerityError::HashType("md5".into()));
    assert_names(&e.to_string(), &["dm_verity.hashtype", "\"md5\""]);
    for bad in ["", "sha", "sha-256", "sha256 ", "crc32", "blake2b-256"] {
        let e = VerityParams::new(&raw(bad, H256, 16384, 512, 4096, 8_388_608)).unwrap_err();
        assert!(matches!(e, VerityError::HashType(_)), "{bad:?}: {e}");
    }
}

#[test]
fn hashtype_is_case_insensitive_and_hash_either_case() {
    for (t, h, alg) in [
        ("SHA256", H256, HashAlgorithm::Sha256),
        (
            "Sha256",
            H256.to_uppercase().leak() as &str,
            HashAlgorithm::Sha256,
        ),
        ("sha1", H1, HashAlgorithm::Sha1),
        ("SHA1", H1, HashAlgorithm::Sha1),
        ("sha512", H512, HashAlgorithm::Sha512),
    ] {
        let p = VerityParams::new(&raw(t, h, 16384, 512, 4096, 8_388_608)).unwrap();
        assert_eq!(p.algorithm(), alg);
        // The root hash is kept as bytes and printed in lower case.
        assert_eq!(p.root_hash().to_hex(), h.to_lowercase());
    }
}

#[test]
fn hash_of_wrong_length_or_not_hex_is_refused() {
    let long = "a".repeat(65);
    let sixty_three = &H256[..63];
    let not_hex = format!("{}zz", &H256[..62]);
    let spaced = format!(" {}", &H256[..63]);
    for (t, h) in [
        ("sha256", ""),
        ("sha256", sixty_three),
        ("sha256", long.as_str()),
        ("sha256", not_hex.as_str()),
        ("sha256", spaced.as_str()),
        ("sha256", H1),
        ("sha1", H256),
        ("sha512", H256),
        // 64 bytes but not 64 ASCII hex digits.
        ("sha256", "éééééééééééééééééééééééééééééééé"),
    ] {
        let e = VerityParams::new(&raw(t, h, 16384, 512, 4096, 8_388_608)).unwrap_err();
        assert!(matches!(e, VerityError::RootHash { .. }), "{t} {h:?}: {e}");
        assert_names(&e.to_string(), &["dm_verity.hash", &format!("{h:?}")]);
    }
}

#[test]
fn blocksize_out_of_range_or_not_power_of_two() {
    for bad in [
        3000,
        0,
        524_800,
        8192,
        256,
        1,
        511,
        513,
        524_288,
        1 << 40,
        u64::MAX,
    ] {
        let e = refuse(16384, bad, 4096, 8_388_608);
        assert_eq!(e, VerityError::DataBlockSize(bad));
        assert_names(&e.to_string(), &["dm_verity.blocksize", &bad.to_string()]);
    }
}

#[test]
fn hashsize_out_of_range_or_not_power_of_two() {
    for bad in [
        3000,
        0,
        524_800,
        8192,
        256,
        1,
        511,
        513,
        524_288,
        1 << 40,
        u64::MAX,
    ] {
        let e = refuse(16384, 512, bad, 8_388_608);
        assert_eq!(e, VerityError::HashBlockSize(bad));
        assert_names(&e.to_string(), &["dm_verity.hashsize", &bad.to_string()]);
    }
}

#[test]
fn every_power_of_two_block_size_up_to_the_page_is_accepted() {
    for bs in [512u64, 1024, 2048, 4096] {
        for hs in [512u64, 1024, 2048, 4096] {
            let offset = (16 * bs).next_multiple_of(hs);
            let p = VerityParams::new(&raw("sha256", H256, 16, bs, hs, offset)).unwrap();
            assert_eq!(p.data_size().0, 16 * bs);
            assert_eq!(p.hash_start_block(), offset / hs);
        }
    }
}

#[test]
fn blocknum_zero_and_two_to_the_32_are_refused() {
    for bad in [0u64, 1 << 32, u64::MAX] {
        let e = refuse(bad, 512, 4096, 1 << 50);
        assert_eq!(e, VerityError::DataBlocks(bad));
        assert_names(&e.to_string(), &["dm_verity.blocknum", &bad.to_string()]);
    }
}

#[test]
fn blocknum_two_to_the_32_minus_one_is_accepted() {
    assert_eq!(MAX_DATA_BLOCKS, (1 << 32) - 1);
    for bs in [512u64, 4096] {
        let offset = (MAX_DATA_BLOCKS * bs).next_multiple_of(4096);
        let p = VerityParams::new(&raw("sha256", H256, MAX_DATA_BLOCKS, bs, 4096, offset)).unwrap();
        assert_eq!(p.data_size().0, MAX_DATA_BLOCKS * bs);
        assert!(p.required_device_size().0 > offset);
    }
    // One block is the smallest device: no hash blocks at all, the root is the block's hash.
    let p = VerityParams::new(&raw("sha256", H256, 1, 4096, 4096, 4096)).unwrap();
    assert_eq!(p.tree().levels(), 0);
    assert_eq!(p.required_device_size().0, 4096);
}

#[test]
fn offset_zero_overlaps_the_data() {
    let e = refuse(16384, 512, 4096, 0);
    assert_eq!(
        e,
        VerityError::OffsetOverlapsData {
            offset: 0,
            data_size: 8_388_608
        }
    );
    assert_names(&e.to_string(), &["dm_verity.offset", " 0:", "8388608"]);
}

#[test]
fn offset_8193_is_not_a_multiple_of_the_hash_block() {
    let e = refuse(1, 4096, 4096, 8193);
    assert_eq!(
        e,
        VerityError::OffsetAlignment {
            offset: 8193,
            hashsize: 4096
        }
    );
    assert_names(&e.to_string(), &["dm_verity.offset", "8193", "4096"]);
    // Also with a 512-byte hash block, and just past an aligned offset.
    assert!(matches!(
        refuse(1, 512, 512, 8193),
        VerityError::OffsetAlignment { .. }
    ));
    assert!(matches!(
        refuse(16384, 512, 4096, 8_388_608 + 512),
        VerityError::OffsetAlignment { .. }
    ));
}

#[test]
fn offset_just_below_the_data_end_overlaps() {
    // blocksize × blocknum = 8388608; one hash block below, and one data block below.
    for offset in [8_388_608 - 4096, 8_388_608 - 512] {
        let e = refuse(16384, 512, 512, offset);
        assert_eq!(
            e,
            VerityError::OffsetOverlapsData {
                offset,
                data_size: 8_388_608
            }
        );
        assert_names(&e.to_string(), &["dm_verity.offset", &offset.to_string()]);
    }
    // Exactly at the end of the data is fine.
    assert!(VerityParams::new(&raw("sha256", H256, 16384, 512, 512, 8_388_608)).is_ok());
}

#[test]
fn hash_tree_end_overflowing_64_bits_is_refused() {
    let offset = u64::MAX - 4095; // a multiple of 4096, past the data
    let e = refuse(MAX_DATA_BLOCKS, 4096, 4096, offset);
    assert_eq!(e, VerityError::Overflow { offset });
    assert_names(
        &e.to_string(),
        &["dm_verity.offset", &offset.to_string(), "overflow"],
    );
    // The largest offset whose tree still fits is accepted.
    let p = VerityParams::new(&raw("sha256", H256, 1, 4096, 4096, u64::MAX - 4095)).unwrap();
    assert_eq!(p.required_device_size().0, u64::MAX - 4095);
    let p = VerityParams::new(&raw("sha256", H256, 2, 4096, 4096, u64::MAX - 8191)).unwrap();
    assert_eq!(p.required_device_size().0, u64::MAX - 4095);
    assert!(matches!(
        refuse(2, 4096, 4096, u64::MAX - 4095),
        VerityError::Overflow { .. }
    ));
}

#[test]
fn the_first_rule_broken_is_reported() {
    // Hash type before hash, hash before sizes, sizes before count, count before offset.
    let e = VerityParams::new(&raw("md5", "x", 0, 3000, 3000, 1)).unwrap_err();
    assert!(matches!(e, VerityError::HashType(_)));
    let e = VerityParams::new(&raw("sha256", "x", 0, 3000, 3000, 1)).unwrap_err();
    assert!(matches!(e, VerityError::RootHash { .. }));
    assert!(matches!(
        refuse(0, 3000, 3000, 1),
        VerityError::DataBlockSize(3000)
    ));
    assert!(matches!(
        refuse(0, 512, 3000, 1),
        VerityError::HashBlockSize(3000)
    ));
    assert!(matches!(refuse(0, 512, 512, 1), VerityError::DataBlocks(0)));
}

#[test]
fn geometry_hash_block_holds_two_digests_at_the_smallest_sizes() {
    // 512 bytes hold 8 SHA-512 digests (128 bytes for two): the rule cannot fail with the
    // block sizes allowed, but the smallest legal combination must pass and be well shaped.
    for alg in [
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha512,
    ] {
        let g = Geometry::check(alg, 512, 512, 1000, None).unwrap();
        assert_eq!(g.hash_block_size.bytes(), 512);
        assert!(g.hash_block_size.bytes() >= 2 * alg.digest_size() as u64);
    }
    let t = kata_volume::verity::HashTree::new(
        HashAlgorithm::Sha512,
        kata_volume::verity::units::BlockSize::B512,
        1000,
    );
    assert_eq!(t.digests_per_block(), 8);
    assert_eq!(t.digest_slot(), 64);
}

#[test]
fn geometry_default_offset_is_the_data_end_rounded_to_a_hash_block() {
    let g = Geometry::check(HashAlgorithm::Sha256, 512, 4096, 3, None).unwrap();
    assert_eq!(g.hash_offset.0, 4096);
    let g = Geometry::check(HashAlgorithm::Sha256, 4096, 512, 3, None).unwrap();
    assert_eq!(g.hash_offset.0, 3 * 4096);
    let g = Geometry::check(HashAlgorithm::Sha256, 512, 512, 16384, Some(8_388_608)).unwrap();
    assert_eq!((g.data_blocks, g.hash_offset.0), (16384, 8_388_608));
    // Geometry has the same rules as the parameters.
    assert_eq!(
        Geometry::check(HashAlgorithm::Sha256, 512, 512, 0, None),
        Err(VerityError::DataBlocks(0))
    );
    assert_eq!(
        Geometry::check(HashAlgorithm::Sha256, 8192, 512, 1, None),
        Err(VerityError::DataBlockSize(8192))
    );
}

#[test]
fn salt_rules() {
    assert!(Salt::parse("-").unwrap().is_empty());
    assert!(Salt::parse("").unwrap().is_empty());
    assert!(Salt::none().is_empty());
    assert!(!Salt::parse("00").unwrap().is_empty());
    assert_eq!(Salt::parse("00").unwrap().as_bytes(), [0]);
    assert_eq!(Salt::parse("-").unwrap().to_string(), "-");
    assert_eq!(Salt::parse("00FF").unwrap().to_string(), "00ff");
    assert_eq!(
        Salt::parse(&"ab".repeat(256)).unwrap().as_bytes().len(),
        256
    );
    for bad in ["0", "zz", "--", &"ab".repeat(257)] {
        let e = Salt::parse(bad).unwrap_err();
        assert!(e.to_string().contains("salt"), "{e}");
    }
}

#[test]
fn tarfs_good_strings() {
    let p = parse_tarfs(&format!("16384,8388608,sha256:{H256}")).unwrap();
    assert_eq!(
        (p.data_blocks(), p.hash_offset().0, p.hash_start_block()),
        (16384, 8_388_608, 2048)
    );
    assert_eq!(
        (p.data_block_size().bytes(), p.hash_block_size().bytes()),
        (512, 4096)
    );
    assert_eq!(p.algorithm(), HashAlgorithm::Sha256);
    // Upper-case hex is a digest too; the offset may be far past the data.
    let p = parse_tarfs(&format!("1,4096,sha256:{}", H256.to_uppercase())).unwrap();
    assert_eq!(p.root_hash().to_hex(), H256);
    // Leading zeros are plain decimal.
    let p = parse_tarfs(&format!("016384,08388608,sha256:{H256}")).unwrap();
    assert_eq!(p.data_blocks(), 16384);
}

#[test]
fn tarfs_bad_strings_name_the_string() {
    let cases = [
        String::new(),
        ",".into(),
        ",,".into(),
        "1,2".into(),
        format!("16384,8388608,sha1:{H256}"),
        format!("16384,8388608,SHA256:{H256}"),
        format!("16384,8388608,{H256}"),
        format!("16384,8388608,sha256:{H256},"),
        format!("-1,8388608,sha256:{H256}"),
        format!("+16384,8388608,sha256:{H256}"),
        format!(" 16384,8388608,sha256:{H256}"),
        format!("16384 ,8388608,sha256:{H256}"),
        format!("16384,,sha256:{H256}"),
        format!("0x10,8388608,sha256:{H256}"),
        format!("1e3,8388608,sha256:{H256}"),
        format!("18446744073709551616,8388608,sha256:{H256}"),
        format!("١٦٣٨٤,8388608,sha256:{H256}"),
    ];
    for s in &cases {
        let e = parse_tarfs(s).unwrap_err();
        assert!(matches!(e, VerityError::Tarfs { .. }), "{s:?}: {e}");
        assert_names(&e.to_string(), &["tarfs", &format!("{s:?}")]);
    }
}

#[test]
fn tarfs_numbers_follow_the_verity_rules() {
    // Well-formed strings still go through every verity rule.
    for (s, want) in [
        (format!("0,8388608,sha256:{H256}"), "dm_verity.blocknum 0"),
        (
            format!("4294967296,8388608,sha256:{H256}"),
            "dm_verity.blocknum 4294967296",
        ),
        (
            format!("16384,8388609,sha256:{H256}"),
            "dm_verity.offset 8388609",
        ),
        (
            format!("16384,8384512,sha256:{H256}"),
            "dm_verity.offset 8384512",
        ),
        (format!("16384,0,sha256:{H256}"), "dm_verity.offset 0"),
        (
            format!("16384,8388608,sha256:{}", &H256[..63]),
            "dm_verity.hash",
        ),
        ("16384,8388608,sha256:zz".into(), "dm_verity.hash \"zz\""),
        (format!("16384,8388608,sha256:{H256} "), "dm_verity.hash"),
        (format!("16384,8388608,sha256: {H256}"), "dm_verity.hash"),
    ] {
        let e = parse_tarfs(&s).unwrap_err();
        assert_names(&e.to_string(), &[want]);
    }
}

/// A salt given to the parameters is theirs, in the table and in the device's name.
#[test]
fn a_salt_is_kept_by_the_parameters() {
    let r = raw("sha256", H256, 16384, 512, 4096, 8_388_608);
    let salt = Salt::parse("00ff10").unwrap();
    let p = VerityParams::with_salt(&r, salt.clone()).unwrap();
    assert_eq!(p.salt(), &salt);
    let plain = VerityParams::new(&r).unwrap();
    assert_eq!(plain.salt(), &Salt::none());
    assert_ne!(p, plain);
    let target = kata_volume::verity::VerityTarget::new(&p, "/dev/vdb", Vec::new()).unwrap();
    assert_eq!(
        target.to_string(),
        format!("1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} 00ff10")
    );
    assert_ne!(
        kata_volume::plan::dm_name("254:16", &p, &[]),
        kata_volume::plan::dm_name("254:16", &plain, &[]),
        "the salt is part of the name"
    );
}

/// Digests print as lower-case hex of their full length, SHA-512's 128 digits included.
#[test]
fn digests_print_in_full() {
    for (alg, hex) in [
        (HashAlgorithm::Sha1, H1),
        (HashAlgorithm::Sha256, H256),
        (HashAlgorithm::Sha512, H512),
    ] {
        let d = kata_volume::verity::Digest::from_hex(alg, &hex.to_uppercase()).unwrap();
        assert_eq!(d.to_string(), hex, "{alg}");
        assert_eq!(d.to_hex(), hex, "{alg}");
        assert_eq!(d.as_bytes().len(), alg.digest_size());
    }
}
