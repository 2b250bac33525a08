//! dm-verity, as data: typed parameters and units, the table line (`Display`/`FromStr`), the
//! tarfs block-info string, the on-disk superblock, the hash tree's shape and the userspace
//! hash-tree engine.
//!
//! Knows nothing about requests, volumes or the system: everything here is pure.

mod digest;
#[cfg(feature = "engine")]
pub mod engine;
mod hash_tree;
mod params;
pub mod superblock;
mod table;
mod tarfs;
pub mod units;

pub use digest::{Digest, HashAlgorithm, Salt};
pub use hash_tree::HashTree;
pub use params::{Geometry, MAX_DATA_BLOCKS, RawVerity, VerityFormat, VerityParams, VerityVersion};
pub use superblock::{Superblock, SuperblockCheckError, SuperblockError};
pub use table::{TARGET_TYPE, VerityOption, VerityTable, VerityTarget};
pub use tarfs::{TARFS_DATA_BLOCK_SIZE, TARFS_HASH_BLOCK_SIZE, parse_tarfs};

/// Why dm-verity parameters were refused. Field names are the wire names of `dm_verity`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerityError {
    /// Unknown hash algorithm.
    #[error("Unsupported dm_verity.hashtype {0:?}: expected sha256 or sha1")]
    HashType(String),
    /// Root hash of the wrong length or not hex.
    #[error(
        "Invalid dm_verity.hash {value:?}: expected {} hex digits for {algorithm}",
        algorithm.digest_size() * 2
    )]
    RootHash {
        /// The algorithm the hash was checked against.
        algorithm: HashAlgorithm,
        /// The offending value.
        value: String,
    },
    /// Salt not hex or too long (the value is shortened when long).
    #[error(
        "Invalid dm_verity.salt {0:?}: expected '-' or an even number of hex digits, at most 512 (256 bytes)"
    )]
    Salt(String),
    /// Hash format version other than 0 and 1.
    #[error("Invalid dm_verity.hash_type {0}: must be 0 or 1")]
    HashVersion(u64),
    /// Data block size not a power of two in range.
    #[error("Invalid dm_verity.blocksize {0}: must be a power of two from 512 to 4096")]
    DataBlockSize(u64),
    /// Hash block size not a power of two in range.
    #[error("Invalid dm_verity.hashsize {0}: must be a power of two from 512 to 4096")]
    HashBlockSize(u64),
    /// Hash block cannot hold two digests.
    #[error("Invalid dm_verity.hashsize {hashsize}: must hold at least two {algorithm} digests")]
    HashBlockTooSmall {
        /// The hash block size.
        hashsize: u64,
        /// The algorithm.
        algorithm: HashAlgorithm,
    },
    /// Data block count out of range.
    #[error("Invalid dm_verity.blocknum {0}: must be from 1 to 4294967295")]
    DataBlocks(u64),
    /// Offset not a multiple of the hash block size.
    #[error("Invalid dm_verity.offset {offset}: must be a multiple of hashsize {hashsize}")]
    OffsetAlignment {
        /// The offset.
        offset: u64,
        /// The hash block size.
        hashsize: u64,
    },
    /// Hash tree would overlap the data.
    #[error(
        "Invalid dm_verity.offset {offset}: the hash tree must start at or after the data's end (byte {data_size})"
    )]
    OffsetOverlapsData {
        /// The offset.
        offset: u64,
        /// blocknum * blocksize.
        data_size: u64,
    },
    /// Arithmetic would overflow.
    #[error("Invalid dm_verity.offset {offset}: the hash tree's end overflows 64 bits")]
    Overflow {
        /// The offset (or count) that overflowed.
        offset: u64,
    },
    /// Malformed tarfs block-info string.
    #[error("Invalid tarfs block info {value:?}: {why}")]
    Tarfs {
        /// What is wrong.
        why: &'static str,
        /// The string.
        value: String,
    },
    /// Malformed table line.
    #[error("Invalid dm-verity table {table:?}: {why}")]
    Table {
        /// What is wrong.
        why: &'static str,
        /// The table.
        table: String,
    },
    /// A device path or key that is not one word.
    #[error("Invalid {what} {value:?} for a dm-verity table: must be one word without spaces")]
    TableWord {
        /// Which word.
        what: &'static str,
        /// The value.
        value: String,
    },
}

/// A (possibly hostile, possibly huge) value shortened for an error message.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}
