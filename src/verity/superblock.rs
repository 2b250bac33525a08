//! The verity superblock: the 512-byte header `veritysetup format` writes at the hash offset
//! unless told `--no-superblock`, padded to one hash block, with the tree after it.
//!
//! Owns the on-disk layout (parse and encode, little-endian) and the comparison of a
//! superblock with a request's [`VerityParams`]. Pure functions over byte slices: reading the
//! bytes from a device is the caller's. The kernel never reads the superblock (the table
//! carries every parameter), so nothing here is trusted: a request that expects one has every
//! field checked against it, and one that expects none refuses a superblock's magic, so a
//! mismatch is a clear error before the device is built instead of `EIO` later.
//!
//! Layout (bytes): 0 magic `verity\0\0`; 8 superblock version (u32, 1); 12 hash type (u32, 0
//! or 1); 16 UUID (16); 32 algorithm name (32, NUL-padded); 64 data block size (u32); 68 hash
//! block size (u32); 72 data blocks (u64); 80 salt size (u16); 82 padding (6); 88 salt (256,
//! zero after the salt); 344 padding (168). Padding is written as zeros and not read.

use super::digest::{HashAlgorithm, Salt};
use super::params::{VerityParams, VerityVersion};
use super::units::BlockSize;

/// Size of the superblock in bytes (it occupies one whole hash block on disk).
pub const SUPERBLOCK_SIZE: usize = 512;

/// The magic at the start of a superblock.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"verity\0\0";

/// The only superblock layout version there is.
pub const SUPERBLOCK_VERSION: u32 = 1;

const VERSION_AT: usize = 8;
const HASH_TYPE_AT: usize = 12;
const UUID_AT: usize = 16;
const ALGORITHM_AT: usize = 32;
const ALGORITHM_LEN: usize = 32;
const DATA_BLOCK_SIZE_AT: usize = 64;
const HASH_BLOCK_SIZE_AT: usize = 68;
const DATA_BLOCKS_AT: usize = 72;
const SALT_SIZE_AT: usize = 80;
const SALT_AT: usize = 88;

/// Why 512 bytes are not a valid verity superblock. Each names the superblock field and the
/// value found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockError {
    /// Fewer than 512 bytes.
    #[error("Verity superblock is {0} bytes: expected {SUPERBLOCK_SIZE}")]
    Short(usize),
    /// Not the magic.
    #[error("Invalid verity superblock magic \"{0}\": expected \"verity\\x00\\x00\"")]
    Magic(String),
    /// A superblock layout version other than 1.
    #[error("Unsupported verity superblock version {0}: expected 1")]
    Version(u32),
    /// A hash type other than 0 and 1.
    #[error("Invalid verity superblock hash_type {0}: must be 0 or 1")]
    HashType(u32),
    /// An algorithm name that is not NUL-terminated or not one we know.
    #[error("Unsupported verity superblock algorithm \"{0}\": expected sha256, sha1 or sha512")]
    Algorithm(String),
    /// A data block size out of range.
    #[error(
        "Invalid verity superblock data block size {0}: must be a power of two from 512 to 4096"
    )]
    DataBlockSize(u32),
    /// A hash block size out of range.
    #[error(
        "Invalid verity superblock hash block size {0}: must be a power of two from 512 to 4096"
    )]
    HashBlockSize(u32),
    /// No data blocks.
    #[error("Invalid verity superblock data block count 0: must be at least 1")]
    DataBlocks,
    /// A salt longer than the field.
    #[error("Invalid verity superblock salt size {0}: must be at most 256 bytes")]
    SaltSize(u16),
}

/// Why the bytes at a request's hash offset do not match the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockCheckError {
    /// The request expects a superblock and the bytes are not one.
    #[error("Expected a verity superblock at byte {offset} (dm_verity.no_superblock is false)")]
    Invalid {
        /// Byte offset of the superblock (`dm_verity.offset`).
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: SuperblockError,
    },
    /// A superblock field that differs from the request.
    #[error(
        "Verity superblock at byte {offset} has {field} {found} but dm_verity.{wire} is {expected}"
    )]
    Mismatch {
        /// Byte offset of the superblock.
        offset: u64,
        /// The superblock's field.
        field: &'static str,
        /// Its value.
        found: String,
        /// The request's (wire) field.
        wire: &'static str,
        /// The request's value.
        expected: String,
    },
    /// A superblock where the request says there is none.
    #[error("A verity superblock was found at byte {offset} but dm_verity.no_superblock is true")]
    Unexpected {
        /// Byte offset of the superblock.
        offset: u64,
    },
}

/// A parsed, well-formed verity superblock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Superblock {
    /// Hash format version (the `hash_type` field).
    pub version: VerityVersion,
    /// The image's UUID (veritysetup's `--uuid`); not part of any request.
    pub uuid: [u8; 16],
    /// Hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Data block size.
    pub data_block_size: BlockSize,
    /// Hash block size.
    pub hash_block_size: BlockSize,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Salt (empty for none).
    pub salt: Salt,
}

/// `N` bytes of `bytes` at `at` (the caller has checked the length).
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(bytes, at))
}

impl Superblock {
    /// Parses the first 512 bytes of `bytes`, checking each field.
    pub fn parse(bytes: &[u8]) -> Result<Self, SuperblockError> {
        if bytes.len() < SUPERBLOCK_SIZE {
            return Err(SuperblockError::Short(bytes.len()));
        }
        let magic: [u8; 8] = field(bytes, 0);
        if magic != SUPERBLOCK_MAGIC {
            return Err(SuperblockError::Magic(magic.escape_ascii().to_string()));
        }
        let version = u32_at(bytes, VERSION_AT);
        if version != SUPERBLOCK_VERSION {
            return Err(SuperblockError::Version(version));
        }
        let hash_type = u32_at(bytes, HASH_TYPE_AT);
        let version = VerityVersion::from_number(u64::from(hash_type))
            .map_err(|_| SuperblockError::HashType(hash_type))?;
        let name: [u8; ALGORITHM_LEN] = field(bytes, ALGORITHM_AT);
        let end = name.iter().position(|&b| b == 0);
        let text = name.get(..end.unwrap_or(ALGORITHM_LEN)).unwrap_or_default();
        let algorithm = end
            .and_then(|_| std::str::from_utf8(text).ok())
            .and_then(|n| n.parse::<HashAlgorithm>().ok())
            .ok_or_else(|| SuperblockError::Algorithm(text.escape_ascii().to_string()))?;
        let data_block_size = u32_at(bytes, DATA_BLOCK_SIZE_AT);
        let data_block_size = BlockSize::new(u64::from(data_block_size))
            .ok_or(SuperblockError::DataBlockSize(data_block_size))?;
        let hash_block_size = u32_at(bytes, HASH_BLOCK_SIZE_AT);
        let hash_block_size = BlockSize::new(u64::from(hash_block_size))
            .ok_or(SuperblockError::HashBlockSize(hash_block_size))?;
        let data_blocks = u64::from_le_bytes(field(bytes, DATA_BLOCKS_AT));
        if data_blocks == 0 {
            return Err(SuperblockError::DataBlocks);
        }
        let salt_size = u16::from_le_bytes(field(bytes, SALT_SIZE_AT));
        let salt = Some(usize::from(salt_size))
            .filter(|&n| n <= Salt::MAX_LEN)
            .and_then(|n| bytes.get(SALT_AT..SALT_AT + n))
            .and_then(Salt::from_bytes)
            .ok_or(SuperblockError::SaltSize(salt_size))?;
        Ok(Self {
            version,
            uuid: field(bytes, UUID_AT),
            algorithm,
            data_block_size,
            hash_block_size,
            data_blocks,
            salt,
        })
    }

    /// The 512 bytes of this superblock, as veritysetup writes them (padding zero).
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut out = [0u8; SUPERBLOCK_SIZE];
        let mut put = |at: usize, src: &[u8]| {
            if let Some(dst) = out.get_mut(at..at + src.len()) {
                dst.copy_from_slice(src);
            }
        };
        put(0, &SUPERBLOCK_MAGIC);
        put(VERSION_AT, &SUPERBLOCK_VERSION.to_le_bytes());
        put(HASH_TYPE_AT, &self.version.number().to_le_bytes());
        put(UUID_AT, &self.uuid);
        put(ALGORITHM_AT, self.algorithm.name().as_bytes());
        // Block sizes are at most 4096: they fit in the u32 fields.
        let size = |b: BlockSize| u32::try_from(b.bytes()).unwrap_or(u32::MAX);
        put(
            DATA_BLOCK_SIZE_AT,
            &size(self.data_block_size).to_le_bytes(),
        );
        put(
            HASH_BLOCK_SIZE_AT,
            &size(self.hash_block_size).to_le_bytes(),
        );
        put(DATA_BLOCKS_AT, &self.data_blocks.to_le_bytes());
        // A salt is at most 256 bytes.
        let salt = self.salt.as_bytes();
        let salt_size = u16::try_from(salt.len()).unwrap_or(u16::MAX);
        put(SALT_SIZE_AT, &salt_size.to_le_bytes());
        put(SALT_AT, salt);
        out
    }

    /// The superblock veritysetup would write for `params`, with this UUID.
    pub fn for_params(params: &VerityParams, uuid: [u8; 16]) -> Self {
        Self {
            version: params.version(),
            uuid,
            algorithm: params.algorithm(),
            data_block_size: params.data_block_size(),
            hash_block_size: params.hash_block_size(),
            data_blocks: params.data_blocks(),
            salt: params.salt().clone(),
        }
    }

    /// The UUID as veritysetup prints it (`8-4-4-4-12` lower-case hex).
    pub fn uuid_string(&self) -> String {
        let h = hex::encode(self.uuid);
        let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default();
        format!(
            "{}-{}-{}-{}-{}",
            part(0..8),
            part(8..12),
            part(12..16),
            part(16..20),
            part(20..32)
        )
    }

    /// Compares every field with the request; the first that differs is named with both
    /// values (in this order: hash type, algorithm, data block size, hash block size, data
    /// blocks, salt). The magic and the layout version were checked by [`Superblock::parse`].
    pub fn check(&self, params: &VerityParams) -> Result<(), SuperblockCheckError> {
        let offset = params.hash_offset().0;
        let mismatch = |field, found: String, wire, expected: String| {
            Err(SuperblockCheckError::Mismatch {
                offset,
                field,
                found,
                wire,
                expected,
            })
        };
        if self.version != params.version() {
            return mismatch(
                "hash_type",
                self.version.to_string(),
                "hash_type",
                params.version().to_string(),
            );
        }
        if self.algorithm != params.algorithm() {
            return mismatch(
                "algorithm",
                self.algorithm.to_string(),
                "hashtype",
                params.algorithm().to_string(),
            );
        }
        if self.data_block_size != params.data_block_size() {
            return mismatch(
                "data block size",
                self.data_block_size.to_string(),
                "blocksize",
                params.data_block_size().to_string(),
            );
        }
        if self.hash_block_size != params.hash_block_size() {
            return mismatch(
                "hash block size",
                self.hash_block_size.to_string(),
                "hashsize",
                params.hash_block_size().to_string(),
            );
        }
        if self.data_blocks != params.data_blocks() {
            return mismatch(
                "data blocks",
                self.data_blocks.to_string(),
                "blocknum",
                params.data_blocks().to_string(),
            );
        }
        if &self.salt != params.salt() {
            return mismatch(
                "salt",
                self.salt.to_string(),
                "salt",
                params.salt().to_string(),
            );
        }
        Ok(())
    }
}

/// Checks the bytes found at the request's hash offset (`dm_verity.offset`) against it: with
/// `no_superblock` false they must be a superblock matching every field (returned); with it
/// true they must not start with a superblock's magic.
///
/// `bytes` is what the hash device holds from the offset: [`SUPERBLOCK_SIZE`] bytes, or fewer
/// where the device ends sooner (an image without a superblock whose tree is empty may end at
/// the offset; one with a superblock must hold all of it).
pub fn check_hash_area(
    params: &VerityParams,
    bytes: &[u8],
) -> Result<Option<Superblock>, SuperblockCheckError> {
    if !params.has_superblock() {
        return expect_none(params, bytes).map(|()| None);
    }
    let superblock = Superblock::parse(bytes).map_err(|source| SuperblockCheckError::Invalid {
        offset: params.hash_offset().0,
        source,
    })?;
    superblock.check(params)?;
    Ok(Some(superblock))
}

/// For a request without a superblock: refuses `bytes` (read at its hash offset) that start
/// with a superblock's magic. The kernel would take the superblock for the tree's first block
/// and fail every read with `EIO`; the first block of a real tree starting with these 8 bytes
/// has a chance of 2^-64.
pub fn expect_none(params: &VerityParams, bytes: &[u8]) -> Result<(), SuperblockCheckError> {
    if bytes.starts_with(&SUPERBLOCK_MAGIC) {
        return Err(SuperblockCheckError::Unexpected {
            offset: params.hash_offset().0,
        });
    }
    Ok(())
}
