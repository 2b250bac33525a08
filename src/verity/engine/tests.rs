//! Unit tests of the engine: a naive in-memory tree builder as an oracle, and edge cases of
//! layout, defaults and errors.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;

use super::*;
use crate::verity::units::Bytes;

/// The tree the slow, obvious way: every level in memory. Returns (root, tree bytes).
fn oracle(
    data: &[u8],
    dbs: usize,
    hbs: usize,
    alg: HashAlgorithm,
    salt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let hash = |b: &[u8]| -> Vec<u8> {
        match alg {
            HashAlgorithm::Sha256 => sha2::Sha256::new()
                .chain_update(salt)
                .chain_update(b)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::new()
                .chain_update(salt)
                .chain_update(b)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha1 => sha1::Sha1::new()
                .chain_update(salt)
                .chain_update(b)
                .finalize()
                .to_vec(),
        }
    };
    let slot = alg.digest_size().next_power_of_two();
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = data.to_vec();
    let mut block = dbs;
    while current.len() > block {
        let mut next = Vec::new();
        for b in current.chunks(block) {
            let mut d = hash(b);
            d.resize(slot, 0);
            next.extend_from_slice(&d);
        }
        next.resize(next.len().next_multiple_of(hbs), 0);
        levels.push(next.clone());
        current = next;
        block = hbs;
    }
    let root = hash(&current);
    let tree = levels.into_iter().rev().flatten().collect();
    (root, tree)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed ^ ((i >> 9) as u8))
        .collect()
}

fn image(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("img");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write: {e}"));
    (dir, path)
}

#[test]
fn matches_the_oracle() {
    for (alg, dbs, hbs, blocks, salt) in [
        (HashAlgorithm::Sha256, 4096, 4096, 1, &b""[..]),
        (HashAlgorithm::Sha256, 512, 512, 17, b"s"),
        (HashAlgorithm::Sha256, 512, 512, 256, b""),
        (HashAlgorithm::Sha256, 512, 512, 257, b""),
        (HashAlgorithm::Sha1, 1024, 512, 100, b"salty salt"),
        (HashAlgorithm::Sha512, 512, 1024, 1000, &[7u8; 100][..]),
        (HashAlgorithm::Sha256, 512, 4096, 2049, b""),
        (HashAlgorithm::Sha256, 4096, 4096, 300, &[0xa5; 32][..]),
        (HashAlgorithm::Sha256, 1024, 512, 99, &[0x3c; 100][..]),
        (HashAlgorithm::Sha256, 512, 1024, 33, &[0x11; 256][..]),
    ] {
        let data = pattern(dbs * blocks, blocks as u8);
        let (_dir, path) = image(&data);
        let config = Config {
            algorithm: alg,
            salt: Salt::parse(&hex::encode(salt)).unwrap_or_default(),
            data_block_size: dbs as u64,
            hash_block_size: hbs as u64,
            ..Config::default()
        };
        let s = format(&path, &config, None).unwrap_or_else(|e| panic!("{e}"));
        let (root, tree) = oracle(&data, dbs, hbs, alg, salt);
        assert_eq!(
            s.root_hash.as_bytes(),
            &root[..],
            "{alg} {dbs}/{hbs} x{blocks}"
        );
        let written = std::fs::read(&path).unwrap_or_default();
        let offset = s.geometry.hash_offset.0 as usize;
        assert_eq!(
            written.get(offset..),
            Some(&tree[..]),
            "{alg} {dbs}/{hbs} x{blocks}"
        );
        assert_eq!(s.tree().size().0 as usize, tree.len());
    }
}

#[test]
fn defaults_round_the_offset_up_to_a_hash_block() {
    let (_dir, path) = image(&pattern(512 * 9, 1));
    let config = Config {
        data_block_size: 512,
        ..Config::default()
    };
    let s = format(&path, &config, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.geometry.data_blocks, 9);
    assert_eq!(s.geometry.hash_offset, Bytes(8192));
    assert_eq!(
        std::fs::metadata(&path).map(|m| m.len()).ok(),
        Some(8192 + 4096)
    );
    // Verify needs the count when the tree is in the image; with it, all is well.
    let root = s.root_hash.clone();
    assert!(matches!(
        verify(&path, &config, &root, None),
        Err(EngineError::DataBlocksRequired)
    ));
    let config = Config {
        data_blocks: Some(9),
        ..config
    };
    assert_eq!(verify(&path, &config, &root, None).ok(), Some(s));
}

#[test]
fn single_block_leaves_the_image_alone() {
    let data = pattern(4096, 3);
    let (_dir, path) = image(&data);
    let s = format(&path, &Config::default(), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.tree().levels(), 0);
    assert_eq!(std::fs::read(&path).ok(), Some(data.clone()));
    let plain = sha2::Sha256::digest(&data);
    assert_eq!(s.root_hash.as_bytes(), &plain[..]);
}

#[test]
fn separate_hash_file_defaults_to_offset_zero() {
    let data = pattern(4096 * 200, 4);
    let (dir, path) = image(&data);
    let hash = dir.path().join("hash");
    let config = Config {
        hash_file: Some(hash.clone()),
        ..Config::default()
    };
    let s = format(&path, &config, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.geometry.hash_offset, Bytes(0));
    assert_eq!(s.hash_file.as_deref(), Some(hash.as_path()));
    assert_eq!(std::fs::read(&path).ok(), Some(data), "image untouched");
    assert_eq!(
        std::fs::metadata(&hash).map(|m| m.len()).ok(),
        Some(3 * 4096)
    );
    // A separate tree at offset 0 cannot be described as a single-device volume.
    assert!(matches!(
        s.params(),
        Err(VerityError::OffsetOverlapsData { .. })
    ));
    let misaligned = Config {
        hash_offset: Some(100),
        ..config.clone()
    };
    assert!(matches!(
        format(&path, &misaligned, None),
        Err(EngineError::Params(VerityError::OffsetAlignment {
            offset: 100,
            ..
        }))
    ));
    // A hash file naming the image itself means "in the image": the overlap rule applies.
    let itself = Config {
        hash_file: Some(path.clone()),
        hash_offset: Some(0),
        ..config
    };
    assert!(matches!(
        format(&path, &itself, None),
        Err(EngineError::Params(VerityError::OffsetOverlapsData { .. }))
    ));
}

#[test]
fn params_round_trip_for_a_tree_in_the_image() {
    let (_dir, path) = image(&pattern(4096 * 3, 5));
    let s = format(&path, &Config::default(), None).unwrap_or_else(|e| panic!("{e}"));
    let p = s.params().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.root_hash(), &s.root_hash);
    assert_eq!((p.data_blocks(), p.hash_offset()), (3, Bytes(3 * 4096)));
}

#[test]
fn progress_reaches_the_total() {
    let (_dir, path) = image(&pattern(512 * 5000, 6));
    let config = Config {
        data_block_size: 512,
        ..Config::default()
    };
    let last = AtomicU64::new(0);
    let total = AtomicU64::new(0);
    let cb = |done: u64, all: u64| {
        last.fetch_max(done, Ordering::Relaxed);
        total.store(all, Ordering::Relaxed);
    };
    let s = format(&path, &config, Some(&cb)).unwrap_or_else(|e| panic!("{e}"));
    let expected = 512 * 5000 + s.tree().size().0;
    assert_eq!(total.load(Ordering::Relaxed), expected);
    assert_eq!(last.load(Ordering::Relaxed), expected);
}

#[test]
fn root_hash_of_another_algorithm_is_refused() {
    let (_dir, path) = image(&pattern(4096 * 2, 7));
    let root = Digest::from_bytes(HashAlgorithm::Sha1, &[0u8; 20]);
    let config = Config {
        data_blocks: Some(2),
        ..Config::default()
    };
    assert!(matches!(
        root.map(|r| verify(&path, &config, &r, None)),
        Some(Err(EngineError::RootAlgorithm { .. }))
    ));
}

#[test]
fn corruption_messages_name_the_block() {
    let c = Corruption::HashBlock {
        level: 1,
        index: 4,
        offset: 8192,
    };
    assert_eq!(
        c.to_string(),
        "hash block 4 of level 1 (byte offset 8192 in the hash device) is corrupted: its hash does not match level 2"
    );
    let d = Corruption::DataBlock {
        index: 3,
        offset: 1536,
    };
    assert!(d.to_string().starts_with("data block 3 (byte offset 1536)"));
}

/// Every way of reading and cutting up the work: tiny chunks (one parent block each, or a
/// few), mapped or copied, a background sync after every write or none.
fn tunings() -> Vec<Tuning> {
    use level::Read::{Copy, Map};
    let mut all = Vec::new();
    for chunk in [1, 3000, 1 << 20] {
        for read in [Map, Copy] {
            for sync_every in [0, 1, 5000] {
                all.push(Tuning {
                    chunk,
                    read,
                    sync_every,
                });
            }
        }
    }
    all
}

#[test]
fn every_tuning_makes_and_checks_the_oracles_tree() {
    for (alg, dbs, hbs, blocks, salt) in [
        (HashAlgorithm::Sha256, 512, 4096, 2049, &b""[..]),
        (HashAlgorithm::Sha256, 4096, 4096, 300, b"salt"),
        (HashAlgorithm::Sha256, 1024, 512, 301, b""),
        (HashAlgorithm::Sha1, 512, 1024, 1000, &[9u8; 70][..]),
    ] {
        let data = pattern(dbs * blocks, 40);
        let (root, tree) = oracle(&data, dbs, hbs, alg, salt);
        for tuning in tunings() {
            let what = format!("{alg} {dbs}/{hbs} x{blocks}, {tuning:?}");
            let (_dir, path) = image(&data);
            let config = Config {
                algorithm: alg,
                salt: Salt::parse(&hex::encode(salt)).unwrap_or_default(),
                data_block_size: dbs as u64,
                hash_block_size: hbs as u64,
                ..Config::default()
            };
            let s = format_tuned(&path, &config, None, &tuning)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(s.root_hash.as_bytes(), &root[..], "{what}");
            let written = std::fs::read(&path).unwrap_or_default();
            let offset = s.geometry.hash_offset.0 as usize;
            assert_eq!(written.get(offset..), Some(&tree[..]), "{what}");

            let config = Config {
                data_blocks: Some(blocks as u64),
                ..config
            };
            let checked = verify_tuned(&path, &config, &s.root_hash, None, &tuning);
            assert_eq!(checked.as_ref().ok(), Some(&s), "{what}");
            // A data block near the end, then a level-0 hash block: each named.
            let bad = blocks as u64 - 2;
            flip(&path, bad * dbs as u64 + 7);
            assert_eq!(
                corruption(&path, &config, &s.root_hash, &tuning),
                Corruption::DataBlock {
                    index: bad,
                    offset: bad * dbs as u64
                },
                "{what}"
            );
            let level0 = level_offset_of(&s, 0);
            flip(&path, level0 + hbs as u64 + 1);
            assert_eq!(
                corruption(&path, &config, &s.root_hash, &tuning),
                Corruption::HashBlock {
                    level: 0,
                    index: 1,
                    offset: level0 + hbs as u64
                },
                "{what}"
            );
        }
    }
}

#[test]
fn a_tree_past_the_end_of_a_short_hash_file_is_an_error_with_every_tuning() {
    let data = pattern(4096 * 300, 41);
    let (dir, path) = image(&data);
    let hash = dir.path().join("hash");
    let config = Config {
        hash_file: Some(hash.clone()),
        ..Config::default()
    };
    let s = format(&path, &config, None).unwrap_or_else(|e| panic!("{e}"));
    let full = std::fs::read(&hash).unwrap_or_default();
    std::fs::write(&hash, &full[..full.len() - 1]).unwrap();
    let config = Config {
        data_blocks: Some(300),
        ..config
    };
    for tuning in tunings() {
        assert!(
            matches!(
                verify_tuned(&path, &config, &s.root_hash, None, &tuning),
                Err(EngineError::TooSmall { .. })
            ),
            "{tuning:?}"
        );
    }
}

fn corruption(path: &Path, config: &Config, root: &Digest, tuning: &Tuning) -> Corruption {
    match verify_tuned(path, config, root, None, tuning) {
        Err(EngineError::Corrupted(c)) => c,
        other => panic!("{tuning:?}: expected a corruption, got {other:?}"),
    }
}

/// Byte offset of `level` of the tree `s` describes, in the image.
fn level_offset_of(s: &Summary, level: usize) -> u64 {
    let tree = s.tree();
    s.geometry.hash_offset.0 + tree.level_start(level) * s.geometry.hash_block_size.bytes()
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], offset).unwrap();
}
