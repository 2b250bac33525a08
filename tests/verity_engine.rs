//! Cross-checks of the hash-tree engine against the real `veritysetup`: identical root hashes
//! and hash areas over a matrix of sizes, block sizes, salts, algorithms and layouts; each
//! tool verifies the other's trees; corruption anywhere is reported with the right block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/verity_cases.rs"]
mod verity_cases;
#[path = "common/veritysetup.rs"]
mod veritysetup;

use std::path::Path;

use kata_volume::verity::engine::{self, Config, Corruption, EngineError};
use kata_volume::verity::{Digest, HashAlgorithm};
use verity_cases::{Built, Case, LONG_SALT, Layout, case};
use veritysetup::{Flags, flip, read_range};

fn digest(alg: HashAlgorithm, hex: &str) -> Digest {
    Digest::from_hex(alg, hex).unwrap()
}

/// Formats with both tools and checks everything agrees.
fn cross_check(c: &Case, seed: u64) {
    let ours = c.build(seed, "ours");
    let theirs = c.build(seed, "theirs");
    let summary = engine::format(&ours.image, &ours.config, None)
        .unwrap_or_else(|e| panic!("{c:?}: format: {e}"));
    let their_root = veritysetup::format(&theirs.image, &theirs.hash, &theirs.flags);
    assert_eq!(summary.root_hash.to_hex(), their_root, "{c:?}: root hash");
    assert_eq!(
        summary.geometry.hash_offset.0, ours.flags.hash_offset,
        "{c:?}"
    );
    assert_eq!(summary.tree().size().0, ours.tree_size, "{c:?}");

    let offset = ours.flags.hash_offset;
    assert_eq!(
        read_range(&ours.hash, offset, ours.tree_size),
        read_range(&theirs.hash, offset, theirs.tree_size),
        "{c:?}: hash area"
    );
    assert!(
        veritysetup::verify(&ours.image, &ours.hash, &their_root, &ours.flags),
        "{c:?}: veritysetup verify rejects our tree"
    );
    let root = digest(c.alg, &their_root);
    if let Err(e) = engine::verify(&theirs.image, &theirs.config, &root, None) {
        panic!("{c:?}: our verify rejects veritysetup's tree: {e}");
    }
}

#[test]
fn matrix_sha256_4k() {
    use HashAlgorithm::Sha256;
    // One block (no levels), a partial hash block, exactly one full block, two levels.
    for (i, blocks) in [1, 5, 128, 129, 300].into_iter().enumerate() {
        cross_check(&case(Sha256, 4096, 4096, blocks, "-"), i as u64);
    }
    cross_check(&case(Sha256, 4096, 4096, 77, "deadbeef"), 9);
    cross_check(&case(Sha256, 4096, 4096, 130, LONG_SALT), 10);
}

#[test]
fn matrix_small_data_blocks() {
    use HashAlgorithm::Sha256;
    // Sizes not a multiple of the hash block: the default offset rounds up.
    for (i, blocks) in [1, 7, 129, 1000].into_iter().enumerate() {
        cross_check(&case(Sha256, 512, 4096, blocks, "-"), 20 + i as u64);
    }
    cross_check(&case(Sha256, 512, 4096, 3000, "0011223344"), 25);
    cross_check(&case(Sha256, 2048, 1024, 33, "-"), 26);
}

#[test]
fn matrix_many_levels() {
    use HashAlgorithm::Sha256;
    // 16 digests per 512-byte hash block: 300 blocks → 3 levels, 5000 → 4 levels.
    cross_check(&case(Sha256, 1024, 512, 300, "-"), 30);
    cross_check(&case(Sha256, 1024, 512, 5000, "abcdef"), 31);
    cross_check(&case(Sha256, 512, 512, 4097, LONG_SALT), 32);
    cross_check(&case(Sha256, 4096, 512, 257, "-"), 33);
}

#[test]
fn matrix_sha1_and_sha512() {
    use HashAlgorithm::{Sha1, Sha512};
    for (i, (dbs, hbs, blocks, salt)) in [
        (4096, 4096, 1, "-"),
        (4096, 4096, 129, "-"),
        (512, 4096, 1000, "cafe"),
        (512, 512, 300, "-"),
        (1024, 512, 1, LONG_SALT),
    ]
    .into_iter()
    .enumerate()
    {
        cross_check(&case(Sha1, dbs, hbs, blocks, salt), 40 + i as u64);
        cross_check(&case(Sha512, dbs, hbs, blocks, salt), 50 + i as u64);
    }
}

#[test]
fn matrix_layouts() {
    use HashAlgorithm::Sha256;
    for (i, layout) in [
        Layout::InImageGap(8192),
        Layout::HashFile(0),
        Layout::HashFile(4096 * 3),
    ]
    .into_iter()
    .enumerate()
    {
        for blocks in [1, 9, 200] {
            let c = Case {
                layout,
                ..case(Sha256, 512, 4096, blocks, "-")
            };
            cross_check(&c, 60 + i as u64 + blocks);
        }
    }
}

#[test]
fn data_blocks_covers_a_prefix() {
    let c = case(HashAlgorithm::Sha256, 4096, 4096, 10, "-");
    let b = c.build(70, "prefix");
    // Ten blocks and a tail that is not a whole block: only the first seven are covered.
    let mut bytes = std::fs::read(&b.image).unwrap();
    bytes.extend_from_slice(b"tail");
    std::fs::write(&b.image, &bytes).unwrap();
    let config = Config {
        data_blocks: None,
        ..b.config.clone()
    };
    assert!(matches!(
        engine::format(&b.image, &config, None),
        Err(EngineError::NotWholeBlocks { size, .. }) if size == 40964
    ));
    let config = Config {
        data_blocks: Some(7),
        hash_offset: Some(7 * 4096),
        ..b.config
    };
    let ours = engine::format(&b.image, &config, None).unwrap();
    let theirs_dir = tempfile::tempdir().unwrap();
    let theirs = theirs_dir.path().join("theirs.img");
    std::fs::write(&theirs, &bytes).unwrap();
    let flags = Flags {
        data_blocks: 7,
        hash_offset: 7 * 4096,
        ..b.flags
    };
    let root = veritysetup::format(&theirs, &theirs, &flags);
    assert_eq!(ours.root_hash.to_hex(), root);
    assert_eq!(
        std::fs::read(&b.image).unwrap(),
        std::fs::read(&theirs).unwrap()
    );
}

/// Corruption on a 3-level tree: 1 KiB data blocks, 512-byte hash blocks (16 digests each),
/// 300 data blocks → level 0: 19 blocks, level 1: 2, level 2 (top): 1.
fn three_levels(name: &str) -> (Built, Digest) {
    let c = case(HashAlgorithm::Sha256, 1024, 512, 300, "-");
    let b = c.build(80, name);
    let s = engine::format(&b.image, &b.config, None).unwrap();
    let tree = s.tree();
    assert_eq!(
        (tree.levels(), tree.level_blocks(0), tree.level_blocks(1)),
        (3, 19, 2)
    );
    (b, s.root_hash)
}

fn verify_err(b: &Built, root: &Digest) -> Corruption {
    match engine::verify(&b.image, &b.config, root, None) {
        Err(EngineError::Corrupted(c)) => c,
        other => panic!("expected a corruption, got {other:?}"),
    }
}

/// Byte offset of hash block `index` of `level` in the 3-level tree (top first: 2, 1, 0).
fn hash_block_at(b: &Built, level: usize, index: u64) -> u64 {
    let start = [3, 1, 0][level];
    b.flags.hash_offset + (start + index) * 512
}

#[test]
fn intact_tree_verifies() {
    let (b, root) = three_levels("intact");
    let s = engine::verify(&b.image, &b.config, &root, None).unwrap();
    assert_eq!(s.root_hash, root);
}

#[test]
fn flipped_data_byte_names_the_data_block() {
    let (b, root) = three_levels("data");
    flip(&b.image, 123 * 1024 + 500);
    assert_eq!(
        verify_err(&b, &root),
        Corruption::DataBlock {
            index: 123,
            offset: 123 * 1024
        }
    );
    assert!(!veritysetup::verify(
        &b.image,
        &b.hash,
        &root.to_hex(),
        &b.flags
    ));
}

#[test]
fn flipped_hash_bytes_name_the_level_and_block() {
    for (level, index, byte) in [(0, 5, 40), (0, 18, 511), (1, 1, 0), (1, 0, 300)] {
        let (b, root) = three_levels("hash");
        let at = hash_block_at(&b, level, index);
        flip(&b.image, at + byte);
        assert_eq!(
            verify_err(&b, &root),
            Corruption::HashBlock {
                level,
                index,
                offset: at
            },
            "level {level} block {index} byte {byte}"
        );
        assert!(!veritysetup::verify(
            &b.image,
            &b.hash,
            &root.to_hex(),
            &b.flags
        ));
    }
}

#[test]
fn flipped_top_block_is_a_root_mismatch() {
    let (b, root) = three_levels("top");
    let at = hash_block_at(&b, 2, 0);
    flip(&b.image, at + 7);
    assert!(matches!(
        verify_err(&b, &root),
        Corruption::Root { level: Some(2), offset, ref expected, .. } if offset == at && *expected == root
    ));
}

#[test]
fn highest_corruption_wins() {
    // Data block 3 and level-1 block 1 both corrupted: the kernel would trip on level 1 first.
    let (b, root) = three_levels("both");
    flip(&b.image, 3 * 1024);
    let at = hash_block_at(&b, 1, 1);
    flip(&b.image, at + 1);
    assert!(matches!(
        verify_err(&b, &root),
        Corruption::HashBlock {
            level: 1,
            index: 1,
            ..
        }
    ));
}

#[test]
fn first_of_several_data_blocks_is_reported() {
    let (b, root) = three_levels("several");
    for block in [290, 17, 200] {
        flip(&b.image, block * 1024 + 9);
    }
    assert!(matches!(
        verify_err(&b, &root),
        Corruption::DataBlock { index: 17, .. }
    ));
}

#[test]
fn single_block_corruption_and_wrong_root() {
    let c = case(HashAlgorithm::Sha1, 4096, 4096, 1, "-");
    let b = c.build(90, "one");
    let s = engine::format(&b.image, &b.config, None).unwrap();
    let other = digest(HashAlgorithm::Sha1, &"ab".repeat(20));
    assert!(matches!(
        verify_err(&b, &other),
        Corruption::Root {
            level: None,
            offset: 0,
            ..
        }
    ));
    flip(&b.image, 100);
    assert!(matches!(
        verify_err(&b, &s.root_hash),
        Corruption::Root { level: None, .. }
    ));
}

#[test]
fn corrupted_separate_hash_file() {
    let c = Case {
        layout: Layout::HashFile(4096),
        ..case(HashAlgorithm::Sha256, 512, 4096, 1000, "-")
    };
    let b = c.build(95, "sep");
    let s = engine::format(&b.image, &b.config, None).unwrap();
    // Level 0 has 8 blocks after the top block at 4096: block 3 is at 4096 * (1 + 1 + 3).
    flip(&b.hash, 4096 * 5 + 64);
    assert!(matches!(
        verify_err(&b, &s.root_hash),
        Corruption::HashBlock {
            level: 0,
            index: 3,
            offset: 20480
        }
    ));
}

#[test]
fn missing_files_and_short_images_are_errors() {
    let c = case(HashAlgorithm::Sha256, 4096, 4096, 4, "-");
    let b = c.build(99, "short");
    let root = engine::format(&b.image, &b.config, None).unwrap().root_hash;
    let too_many = Config {
        data_blocks: Some(100),
        hash_offset: Some(100 * 4096),
        ..b.config.clone()
    };
    assert!(matches!(
        engine::verify(&b.image, &too_many, &root, None),
        Err(EngineError::TooSmall {
            what: "data area",
            ..
        })
    ));
    let no_count = Config {
        data_blocks: None,
        ..b.config.clone()
    };
    assert!(matches!(
        engine::verify(&b.image, &no_count, &root, None),
        Err(EngineError::DataBlocksRequired)
    ));
    let missing = Path::new("/nonexistent/image");
    assert!(matches!(
        engine::format(missing, &b.config, None),
        Err(EngineError::Io { op: "open", .. })
    ));
    let bad = Config {
        hash_block_size: 3000,
        ..b.config
    };
    assert!(matches!(
        engine::format(&b.image, &bad, None),
        Err(EngineError::Params(_))
    ));
}

#[test]
fn a_tree_made_for_more_data_blocks_is_refused_like_veritysetup_does() {
    // Level 0's last block holds 12 digests for 300 blocks; with 296 it should hold 8.
    let (b, root) = three_levels("fewer");
    let config = Config {
        data_blocks: Some(296),
        hash_offset: Some(b.flags.hash_offset),
        ..b.config.clone()
    };
    let flags = Flags {
        data_blocks: 296,
        ..b.flags.clone()
    };
    let found = match engine::verify(&b.image, &config, &root, None) {
        Err(EngineError::Corrupted(c)) => c,
        other => panic!("expected a corruption, got {other:?}"),
    };
    assert_eq!(
        found,
        Corruption::Padding {
            level: 0,
            index: 18,
            offset: hash_block_at(&b, 0, 18) + 8 * 32,
        }
    );
    assert!(!veritysetup::verify(
        &b.image,
        &b.hash,
        &root.to_hex(),
        &flags
    ));

    // A corrupted data block under that padding is what gets reported.
    flip(&b.image, 5 * 1024 + 7);
    let found = match engine::verify(&b.image, &config, &root, None) {
        Err(EngineError::Corrupted(c)) => c,
        other => panic!("expected a corruption, got {other:?}"),
    };
    assert_eq!(
        found,
        Corruption::DataBlock {
            index: 5,
            offset: 5 * 1024
        }
    );
}
