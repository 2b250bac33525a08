//! What can go wrong in the hash-tree engine: bad parameters, I/O, files of the wrong size,
//! and — for `verify` — the first corrupted block, named the way the kernel would find it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::verity::{Digest, VerityError};

/// The first corruption found by [`verify`](super::verify), in the kernel's order: the root
/// hash is checked first, then each level from the top down, then the data. A block is only
/// blamed once its parent has been checked, so a flipped byte in a hash block is reported as
/// that hash block, not as the data blocks below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// A data block does not match its digest in hash level 0.
    DataBlock {
        /// Index of the data block.
        index: u64,
        /// Its byte offset in the image.
        offset: u64,
    },
    /// A hash block does not match its digest in the level above.
    HashBlock {
        /// Level of the block (0 = just above the data).
        level: usize,
        /// Index of the block within its level.
        index: u64,
        /// Its byte offset in the hash device (the image or the hash file).
        offset: u64,
    },
    /// Every block matches its digest, but a hash block holds a non-zero byte where `format`
    /// writes zeros: in a digest slot's padding, or past the last digest of its level (the
    /// first such block, top level first; reported only when no block is corrupted). The
    /// kernel never reads those bytes; a tree with them is still not the one these
    /// parameters make (typically: `--data-blocks` smaller than the tree was made for).
    Padding {
        /// Level of the hash block.
        level: usize,
        /// Index of the block within its level.
        index: u64,
        /// Byte offset of the first such byte in the hash device.
        offset: u64,
    },
    /// The top hash block — or the only data block, for a one-block image (`level` is
    /// `None`) — does not hash to the expected root hash: it is corrupted, or the root hash
    /// given is not this image's.
    Root {
        /// Level of the top block, `None` when the tree has no levels.
        level: Option<usize>,
        /// Byte offset of the block hashed (in the hash device, or the image for `None`).
        offset: u64,
        /// The root hash expected.
        expected: Digest,
        /// The root hash computed from the image.
        actual: Digest,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataBlock { index, offset } => write!(
                f,
                "data block {index} (byte offset {offset}) is corrupted: its hash does not match hash level 0"
            ),
            Self::HashBlock {
                level,
                index,
                offset,
            } => write!(
                f,
                "hash block {index} of level {level} (byte offset {offset} in the hash device) is corrupted: its hash does not match level {}",
                level + 1
            ),
            Self::Padding {
                level,
                index,
                offset,
            } => write!(
                f,
                "hash block {index} of level {level} has a non-zero byte at byte offset {offset} of the hash device, where this tree has zero padding (was it made for more data blocks?)"
            ),
            Self::Root {
                level,
                offset,
                expected,
                actual,
            } => {
                match level {
                    Some(l) => write!(
                        f,
                        "root hash mismatch: the top hash block (level {l}, byte offset {offset} in the hash device) is corrupted"
                    )?,
                    None => write!(
                        f,
                        "root hash mismatch: the only data block (byte offset {offset}) is corrupted"
                    )?,
                }
                write!(
                    f,
                    ", or the root hash is wrong (expected {expected}, computed {actual})"
                )
            }
        }
    }
}

/// Why the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The parameters break a dm-verity rule (shared with `inspect` and the planner).
    #[error(transparent)]
    Params(#[from] VerityError),
    /// A system call failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`, …).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The image is not a whole number of data blocks and no block count was given.
    #[error(
        "{}: size {size} is not a multiple of the data block size {block_size}; give the number of data blocks (--data-blocks) to cover a prefix",
        path.display()
    )]
    NotWholeBlocks {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The data block size.
        block_size: u64,
    },
    /// The image's size makes a block count no tree can have (none, or more than dm-verity
    /// takes), and no count was given.
    #[error(
        "{}: {blocks} data blocks of {block_size} bytes; a tree covers 1 to {}: give the number of data blocks (--data-blocks)",
        path.display(),
        crate::verity::MAX_DATA_BLOCKS
    )]
    ImageBlocks {
        /// The image.
        path: PathBuf,
        /// Whole data blocks in it.
        blocks: u64,
        /// The data block size.
        block_size: u64,
    },
    /// A file is smaller than the data or the tree needs.
    #[error("{}: {size} bytes, but the {what} needs {needed}", path.display())]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// What needs the room (`data area`, `hash tree`).
        what: &'static str,
        /// Its size in bytes.
        size: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// Verifying a tree stored in the image needs the data block count: the image's size
    /// includes the tree, so it cannot be the default.
    #[error(
        "the hash tree is inside the image, so the number of data blocks (--data-blocks) must be given"
    )]
    DataBlocksRequired,
    /// The root hash given is for another algorithm.
    #[error("the root hash is a {actual} digest, but the tree uses {expected}")]
    RootAlgorithm {
        /// The tree's algorithm.
        expected: crate::verity::HashAlgorithm,
        /// The root hash's algorithm.
        actual: crate::verity::HashAlgorithm,
    },
    /// Verification found a corrupted block.
    #[error("{0}")]
    Corrupted(Corruption),
}

impl EngineError {
    /// An I/O error on `path`.
    pub(super) fn io<'p>(
        op: &'static str,
        path: &'p std::path::Path,
    ) -> impl FnOnce(io::Error) -> Self + 'p {
        move |source| Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The corruption, if this is one.
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Self::Corrupted(c) => Some(c),
            _ => None,
        }
    }
}
