//! The userspace dm-verity hash-tree engine: computes and verifies format-1 trees without a
//! superblock, byte for byte as `veritysetup format --no-superblock` writes them.
//!
//! Owns the hashing and the I/O of trees; the tree's shape comes from [`HashTree`] and every
//! parameter rule from [`Geometry`], shared with `inspect` and the planner.
//!
//! The format: each data block's digest is `H(salt || block)`; digests sit in power-of-two
//! slots, zero padded, in hash blocks (last block of a level zero padded too); each level is
//! hashed the same way into the level above until one block remains, and the root hash is the
//! hash of that top block (of the only data block when there is one). Levels are stored top
//! level first from the hash offset.
//!
//! Both operations stream: the data are hashed in chunks spread over all cores (rayon), in
//! place in the page cache (`mapped`), each level is written to the hash device as it is
//! made (and synced in the background, `writeback`) and read back for the next, so memory
//! stays at a chunk or two per thread whatever the image size.

mod error;
mod files;
mod hasher;
mod level;
mod mapped;
mod progress;
#[cfg(target_arch = "x86_64")]
mod sha256_ni;
mod writeback;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use error::{Corruption, EngineError};
pub use hasher::Hasher;
pub use progress::ProgressFn;

use self::files::{Access, Target};
use self::hasher::BlockHasher;
use self::level::{Blocks, Mismatch, Mode, Parents, Tuning};
use self::progress::Progress;
use self::writeback::Writeback;
use crate::verity::{
    Digest, Geometry, HashAlgorithm, HashTree, RawVerity, Salt, VerityError, VerityParams,
};

/// What to hash and where the tree goes: the options of `veritysetup format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Hash algorithm (default sha256).
    pub algorithm: HashAlgorithm,
    /// Salt (default none).
    pub salt: Salt,
    /// Data block size in bytes (default 4096).
    pub data_block_size: u64,
    /// Hash block size in bytes (default 4096).
    pub hash_block_size: u64,
    /// Data blocks covered; default: the whole image, which must then be a whole number of
    /// blocks (required by `verify` when the tree is in the image).
    pub data_blocks: Option<u64>,
    /// Byte offset of the tree; default: the data size rounded up to a hash block in the
    /// image, 0 in a separate hash file.
    pub hash_offset: Option<u64>,
    /// A separate file for the tree; default: the tree is in the image.
    pub hash_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            algorithm: HashAlgorithm::Sha256,
            salt: Salt::none(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: None,
            hash_offset: None,
            hash_file: None,
        }
    }
}

/// A tree, formatted or verified: its root hash and the resolved parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The root hash.
    pub root_hash: Digest,
    /// The salt.
    pub salt: Salt,
    /// Sizes, block count and tree offset, defaults applied.
    pub geometry: Geometry,
    /// The separate hash file, `None` when the tree is in the image.
    pub hash_file: Option<PathBuf>,
}

impl Summary {
    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.root_hash.algorithm()
    }

    /// The tree's shape.
    pub fn tree(&self) -> HashTree {
        let g = &self.geometry;
        HashTree::new(self.algorithm(), g.hash_block_size, g.data_blocks)
    }

    /// The checked parameters of a single-device volume (tree in the image). Fails, with the
    /// shared rules' error, for a tree in a separate file at an offset inside the data area.
    pub fn params(&self) -> Result<VerityParams, VerityError> {
        let g = &self.geometry;
        let hash = self.root_hash.to_hex();
        let raw = RawVerity {
            hashtype: self.algorithm().name(),
            hash: &hash,
            blocknum: g.data_blocks,
            blocksize: g.data_block_size.bytes(),
            hashsize: g.hash_block_size.bytes(),
            offset: g.hash_offset.0,
        };
        VerityParams::with_salt(&raw, self.salt.clone())
    }
}

/// Computes the hash tree of `image` and writes it (into the image at the hash offset, or to
/// the hash file); returns the root hash and the parameters used.
pub fn format(
    image: &Path,
    config: &Config,
    progress: Option<&ProgressFn<'_>>,
) -> Result<Summary, EngineError> {
    format_tuned(image, config, progress, &Tuning::default())
}

fn format_tuned(
    image: &Path,
    config: &Config,
    progress: Option<&ProgressFn<'_>>,
    tuning: &Tuning,
) -> Result<Summary, EngineError> {
    let target = files::open(image, config, Access::Format)?;
    let hasher = BlockHasher::new(config.algorithm, &config.salt);
    let progress = Progress::new(progress, total_bytes(&target));
    let (file, path) = target.hash_device();
    std::thread::scope(|scope| {
        let writeback = Writeback::start(scope, file, path, tuning.sync_every);
        for level in 0..target.tree.levels() {
            level::run(
                &hasher,
                &children(&target, level),
                &parents(&target, level),
                Mode::Write(&writeback),
                &progress,
                tuning,
            )?;
        }
        writeback.finish()
    })?;
    let (_, root_hash) = root(&target, &hasher, &progress)?;
    Ok(summary(&target, config, root_hash))
}

/// Recomputes every digest of the tree of `image` and checks it against the stored tree and
/// `root_hash`, top down as the kernel does; the first corrupted block is returned as
/// [`EngineError::Corrupted`].
pub fn verify(
    image: &Path,
    config: &Config,
    root_hash: &Digest,
    progress: Option<&ProgressFn<'_>>,
) -> Result<Summary, EngineError> {
    verify_tuned(image, config, root_hash, progress, &Tuning::default())
}

fn verify_tuned(
    image: &Path,
    config: &Config,
    root_hash: &Digest,
    progress: Option<&ProgressFn<'_>>,
    tuning: &Tuning,
) -> Result<Summary, EngineError> {
    if root_hash.algorithm() != config.algorithm {
        return Err(EngineError::RootAlgorithm {
            expected: config.algorithm,
            actual: root_hash.algorithm(),
        });
    }
    let target = files::open(image, config, Access::Verify)?;
    let hasher = BlockHasher::new(config.algorithm, &config.salt);
    let progress = Progress::new(progress, total_bytes(&target));
    let (offset, actual) = root(&target, &hasher, &progress)?;
    if actual != *root_hash {
        let levels = target.tree.levels();
        return Err(EngineError::Corrupted(Corruption::Root {
            level: levels.checked_sub(1),
            offset,
            expected: root_hash.clone(),
            actual,
        }));
    }
    let mut padding = None;
    for level in (0..target.tree.levels()).rev() {
        let kids = children(&target, level);
        let found = level::run(
            &hasher,
            &kids,
            &parents(&target, level),
            Mode::Verify,
            &progress,
            tuning,
        )?;
        match found {
            Some(Mismatch::Child(index)) => {
                let offset = kids.offset + index * kids.block_size as u64;
                return Err(EngineError::Corrupted(match level.checked_sub(1) {
                    Some(level) => Corruption::HashBlock {
                        level,
                        index,
                        offset,
                    },
                    None => Corruption::DataBlock { index, offset },
                }));
            }
            // Every digest matched; a block below may still be corrupted, which matters more.
            Some(Mismatch::Padding(offset)) if padding.is_none() => {
                let block = target.geometry.hash_block_size.bytes();
                let index = offset.saturating_sub(level_offset(&target, level)) / block;
                padding = Some(Corruption::Padding {
                    level,
                    index,
                    offset,
                });
            }
            Some(Mismatch::Padding(_)) | None => {}
        }
    }
    match padding {
        Some(p) => Err(EngineError::Corrupted(p)),
        None => Ok(summary(&target, config, actual)),
    }
}

/// Bytes hashed in all: every data block and every hash block.
fn total_bytes(target: &Target) -> u64 {
    let g = &target.geometry;
    (g.data_blocks * g.data_block_size.bytes()).saturating_add(target.tree.size().0)
}

/// The children hashed into `level`: the data for level 0, else the level below.
fn children(target: &Target, level: usize) -> Blocks<'_> {
    let g = &target.geometry;
    match level.checked_sub(1) {
        None => Blocks {
            file: &target.data,
            path: &target.data_path,
            offset: 0,
            block_size: g.data_block_size.as_usize(),
            count: g.data_blocks,
        },
        Some(below) => {
            let (file, path) = target.hash_device();
            Blocks {
                file,
                path,
                offset: level_offset(target, below),
                block_size: g.hash_block_size.as_usize(),
                count: target.tree.level_blocks(below),
            }
        }
    }
}

/// Where `level` is stored.
fn parents(target: &Target, level: usize) -> Parents<'_> {
    let (file, path) = target.hash_device();
    Parents {
        file,
        path,
        offset: level_offset(target, level),
        block_size: target.geometry.hash_block_size.as_usize(),
        slot: target.tree.digest_slot(),
        digest: target.algorithm.digest_size(),
    }
}

/// Byte offset of `level` in the hash device (Geometry checked the tree's end fits in u64).
fn level_offset(target: &Target, level: usize) -> u64 {
    let g = &target.geometry;
    g.hash_offset.0 + target.tree.level_start(level) * g.hash_block_size.bytes()
}

/// Hashes the block the root hash covers (the top hash block, or the only data block);
/// returns its byte offset and the root hash.
fn root(
    target: &Target,
    hasher: &BlockHasher,
    progress: &Progress<'_>,
) -> Result<(u64, Digest), EngineError> {
    let g = &target.geometry;
    let (file, path, offset, size): (&File, &Path, u64, usize) = match target.tree.levels() {
        0 => (
            &target.data,
            &target.data_path,
            0,
            g.data_block_size.as_usize(),
        ),
        _ => {
            let (file, path) = target.hash_device();
            (file, path, g.hash_offset.0, g.hash_block_size.as_usize())
        }
    };
    let mut block = vec![0u8; size];
    file.read_exact_at(&mut block, offset)
        .map_err(EngineError::io("read", path))?;
    progress.advance(size as u64);
    Ok((offset, hasher.digest(&block)?))
}

fn summary(target: &Target, config: &Config, root_hash: Digest) -> Summary {
    Summary {
        root_hash,
        salt: config.salt.clone(),
        geometry: target.geometry,
        hash_file: target.hash.as_ref().map(|(_, path)| path.clone()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]
mod tests;
