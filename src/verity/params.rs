//! Typed dm-verity parameters: what a volume's `dm_verity` block means once it is checked.
//!
//! Every rule of the host (the floor) and every rule the kernel would enforce later (the
//! ceiling we check early, for a clear error instead of an opaque `EINVAL`) lives here, once,
//! shared by `inspect`, the planner and the `format`/`verify` tools.

use std::fmt;

use super::VerityError;
use super::digest::{Digest, HashAlgorithm, Salt};
use super::units::{BlockSize, Bytes};

/// Largest `blocknum` the host accepts (`u32::MAX`).
pub const MAX_DATA_BLOCKS: u64 = u32::MAX as u64;

/// Raw, unchecked dm-verity numbers, as they arrive (a volume's `dm_verity` or a tool's flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawVerity<'a> {
    /// `hashtype`.
    pub hashtype: &'a str,
    /// `hash` (root hash, hex).
    pub hash: &'a str,
    /// `blocknum`: number of data blocks.
    pub blocknum: u64,
    /// `blocksize`: data block size in bytes.
    pub blocksize: u64,
    /// `hashsize`: hash block size in bytes.
    pub hashsize: u64,
    /// `offset`: byte offset of the hash tree on the hash device.
    pub offset: u64,
}

/// The hash format version: the table's first word, the superblock's `hash_type`, the wire's
/// `hash_type` and veritysetup's `--format`.
///
/// The two differ only in how a block is hashed and where its digest sits in a hash block;
/// the tree's shape (levels, blocks per level) is the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerityVersion {
    /// Version 0, the original Chrome OS format: `H(block || salt)`, digests packed back to back.
    V0,
    /// Version 1, the default everywhere: `H(salt || block)`, each digest in a power-of-two
    /// slot.
    #[default]
    V1,
}

impl VerityVersion {
    /// The version from its number; anything but 0 and 1 is refused, naming the wire field.
    pub fn from_number(n: u64) -> Result<Self, VerityError> {
        match n {
            0 => Ok(Self::V0),
            1 => Ok(Self::V1),
            other => Err(VerityError::HashVersion(other)),
        }
    }

    /// The number written in the table, the superblock and the wire (0 or 1).
    pub fn number(self) -> u32 {
        match self {
            Self::V0 => 0,
            Self::V1 => 1,
        }
    }
}

impl fmt::Display for VerityVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.number().fmt(f)
    }
}

/// How the hash area is formatted, beyond the numbers of [`RawVerity`]: the hash format
/// version, the salt, and whether a verity superblock sits at the offset. The default is what
/// the seed producers (nydus-snapshotter, the CCv0 runtime) make: version 1, no salt, no
/// superblock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct VerityFormat {
    /// Hash format version.
    pub version: VerityVersion,
    /// Salt (empty for none).
    pub salt: Salt,
    /// Whether a 512-byte verity superblock sits at the offset, padded to one hash block, with
    /// the tree after it (`veritysetup format` without `--no-superblock`).
    pub superblock: bool,
}

/// Checked dm-verity parameters.
///
/// Invariants, established by [`VerityParams::with_format`]: block sizes are powers of two in
/// 512..=4096; the hash block holds at least two digests; `1 <= data_blocks <= 2^32-1`; the
/// data area's byte size does not overflow; the hash offset is a whole number of hash blocks
/// and lies at or after the end of the data area; with a superblock, the tree starts one hash
/// block after the offset; the whole hash area's end (superblock and tree) does not overflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerityParams {
    algorithm: HashAlgorithm,
    root_hash: Digest,
    format: VerityFormat,
    data_block_size: BlockSize,
    hash_block_size: BlockSize,
    data_blocks: u64,
    hash_offset: Bytes,
}

impl VerityParams {
    /// Checks raw numbers against every rule and returns typed parameters in the default
    /// format (version 1, no salt, no superblock).
    pub fn new(raw: &RawVerity<'_>) -> Result<Self, VerityError> {
        Self::with_format(raw, VerityFormat::default())
    }

    /// As [`VerityParams::new`], with a salt (the `format`/`verify` tools allow one).
    pub fn with_salt(raw: &RawVerity<'_>, salt: Salt) -> Result<Self, VerityError> {
        Self::with_format(
            raw,
            VerityFormat {
                salt,
                ..VerityFormat::default()
            },
        )
    }

    /// As [`VerityParams::new`], in the given format.
    pub fn with_format(raw: &RawVerity<'_>, format: VerityFormat) -> Result<Self, VerityError> {
        let algorithm: HashAlgorithm = raw.hashtype.parse()?;
        let root_hash = Digest::from_hex(algorithm, raw.hash)?;
        let geometry = Geometry::check(
            algorithm,
            raw.blocksize,
            raw.hashsize,
            raw.blocknum,
            Some(raw.offset),
        )?;
        if format.superblock {
            // The superblock's hash block, then the tree: both ends must fit in 64 bits.
            let tree = super::HashTree::size_of(algorithm, geometry.hash_block_size, raw.blocknum);
            let end = geometry
                .hash_offset
                .0
                .checked_add(geometry.hash_block_size.bytes())
                .and_then(|start| start.checked_add(tree.0));
            if end.is_none() {
                return Err(VerityError::Overflow { offset: raw.offset });
            }
        }
        Ok(Self {
            algorithm,
            root_hash,
            format,
            data_block_size: geometry.data_block_size,
            hash_block_size: geometry.hash_block_size,
            data_blocks: geometry.data_blocks,
            hash_offset: geometry.hash_offset,
        })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }
    /// The root hash.
    pub fn root_hash(&self) -> &Digest {
        &self.root_hash
    }
    /// The salt (empty for none).
    pub fn salt(&self) -> &Salt {
        &self.format.salt
    }
    /// The hash format version.
    pub fn version(&self) -> VerityVersion {
        self.format.version
    }
    /// Whether a verity superblock sits at [`VerityParams::hash_offset`].
    pub fn has_superblock(&self) -> bool {
        self.format.superblock
    }
    /// Version, salt and superblock together.
    pub fn format(&self) -> &VerityFormat {
        &self.format
    }
    /// Data block size.
    pub fn data_block_size(&self) -> BlockSize {
        self.data_block_size
    }
    /// Hash block size.
    pub fn hash_block_size(&self) -> BlockSize {
        self.hash_block_size
    }
    /// Number of data blocks covered by the tree.
    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }
    /// The wire's `offset`: byte offset of the hash area on the hash device — the superblock
    /// when there is one, else the tree itself.
    pub fn hash_offset(&self) -> Bytes {
        self.hash_offset
    }
    /// Byte offset of the hash tree: [`VerityParams::hash_offset`], plus one hash block for
    /// the superblock (512 bytes padded to a hash block) when there is one (checked at
    /// construction).
    pub fn tree_offset(&self) -> Bytes {
        if self.format.superblock {
            Bytes(self.hash_offset.0 + self.hash_block_size.bytes())
        } else {
            self.hash_offset
        }
    }
    /// The hash tree's start in hash blocks (the table's `<hash_start_block>`): past the
    /// superblock's block when there is one.
    pub fn hash_start_block(&self) -> u64 {
        self.tree_offset().0 / self.hash_block_size.bytes()
    }
    /// Bytes of data covered: `data_blocks * data_block_size` (checked at construction).
    pub fn data_size(&self) -> Bytes {
        Bytes(self.data_blocks * self.data_block_size.bytes())
    }
    /// The tree's shape.
    pub fn tree(&self) -> super::HashTree {
        super::HashTree::new(self.algorithm, self.hash_block_size, self.data_blocks)
    }
    /// Bytes the device must have: the end of the hash tree, after the superblock's block if
    /// there is one — the kernel refuses a hash device shorter than that (checked at
    /// construction).
    pub fn required_device_size(&self) -> Bytes {
        Bytes(
            self.tree_offset().0
                + super::HashTree::size_of(self.algorithm, self.hash_block_size, self.data_blocks)
                    .0,
        )
    }
}

/// Checked block geometry, shared by [`VerityParams`] and the `format` tool (which may not
/// know its offset yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Data block size.
    pub data_block_size: BlockSize,
    /// Hash block size.
    pub hash_block_size: BlockSize,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Hash tree offset in bytes (the default, data size rounded up to a hash block, when
    /// none was given).
    pub hash_offset: Bytes,
}

impl Geometry {
    /// Checks sizes, count and offset (default when `None`) against every rule.
    pub fn check(
        algorithm: HashAlgorithm,
        blocksize: u64,
        hashsize: u64,
        blocknum: u64,
        offset: Option<u64>,
    ) -> Result<Self, VerityError> {
        let data_block_size =
            BlockSize::new(blocksize).ok_or(VerityError::DataBlockSize(blocksize))?;
        let hash_block_size =
            BlockSize::new(hashsize).ok_or(VerityError::HashBlockSize(hashsize))?;
        let digest = algorithm.digest_size() as u64;
        if hash_block_size.bytes() < 2 * digest {
            return Err(VerityError::HashBlockTooSmall {
                hashsize,
                algorithm,
            });
        }
        if blocknum == 0 || blocknum > MAX_DATA_BLOCKS {
            return Err(VerityError::DataBlocks(blocknum));
        }
        // Cannot overflow: both factors are below 2^32.
        let data_size = blocknum * data_block_size.bytes();
        let offset = match offset {
            Some(o) => o,
            None => data_size.next_multiple_of(hash_block_size.bytes()),
        };
        if offset % hash_block_size.bytes() != 0 {
            return Err(VerityError::OffsetAlignment { offset, hashsize });
        }
        if offset < data_size {
            return Err(VerityError::OffsetOverlapsData { offset, data_size });
        }
        let tree_size = super::HashTree::size_of(algorithm, hash_block_size, blocknum);
        if offset.checked_add(tree_size.0).is_none() {
            return Err(VerityError::Overflow { offset });
        }
        Ok(Self {
            data_block_size,
            hash_block_size,
            data_blocks: blocknum,
            hash_offset: Bytes(offset),
        })
    }
}
