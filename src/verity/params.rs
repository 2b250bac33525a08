//! Typed dm-verity parameters: what a volume's `dm_verity` block means once it is checked.
//!
//! Every rule of the host (the floor) and every rule the kernel would enforce later (the
//! ceiling we check early, for a clear error instead of an opaque `EINVAL`) lives here, once,
//! shared by `inspect`, the planner and the `format`/`verify` tools.

use std::fmt;
use std::str::FromStr;

use super::VerityError;
use super::units::{BlockSize, Bytes};

/// Largest `blocknum` the host accepts (`u32::MAX`).
pub const MAX_DATA_BLOCKS: u64 = u32::MAX as u64;

/// A hash algorithm dm-verity can use for these volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (32-byte digests): the default.
    Sha256,
    /// SHA-1 (20-byte digests): accepted because the host accepts it.
    Sha1,
    /// SHA-512 (64-byte digests): accepted by `format`/`verify` and by the kernel.
    Sha512,
}

impl HashAlgorithm {
    /// Digest size in bytes.
    pub fn digest_size(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
            Self::Sha512 => 64,
        }
    }

    /// The kernel crypto API name, as written in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha1 => "sha1",
            Self::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = VerityError;

    /// Case-insensitive, as the host's validation is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Sha256, Self::Sha1, Self::Sha512]
            .into_iter()
            .find(|a| s.eq_ignore_ascii_case(a.name()))
            .ok_or_else(|| VerityError::HashType(s.to_owned()))
    }
}

/// A digest of a given algorithm: the root hash of a tree, or a salt-free block hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: HashAlgorithm,
    bytes: Vec<u8>,
}

impl Digest {
    /// Parses `hex` (either case) as a digest of `algorithm`; the length must match exactly.
    pub fn from_hex(algorithm: HashAlgorithm, hex: &str) -> Result<Self, VerityError> {
        let bad = || VerityError::RootHash {
            algorithm,
            value: hex.to_owned(),
        };
        if hex.len() != algorithm.digest_size() * 2 {
            return Err(bad());
        }
        // By hand: `hex::decode` took a tenth of the decode benchmark's instructions.
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut bytes = Vec::with_capacity(algorithm.digest_size());
        for pair in hex.as_bytes().chunks_exact(2) {
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(high), Some(low)) => bytes.push(high << 4 | low),
                _ => return Err(bad()),
            }
        }
        Ok(Self { algorithm, bytes })
    }

    /// Wraps raw digest bytes; `None` if the length does not match the algorithm.
    pub fn from_bytes(algorithm: HashAlgorithm, bytes: &[u8]) -> Option<Self> {
        (bytes.len() == algorithm.digest_size()).then(|| Self {
            algorithm,
            bytes: bytes.to_vec(),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lower-case hex, as the kernel and veritysetup print it.
    pub fn to_hex(&self) -> String {
        let mut buf = [0u8; 2 * MAX_DIGEST];
        lower_hex(&self.bytes, &mut buf).to_owned()
    }
}

impl serde::Serialize for Digest {
    /// Lower-case hex (the algorithm follows from the length).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    /// Hex of 40 (SHA-1), 64 (SHA-256) or 128 (SHA-512) digits.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        let algorithm = [
            HashAlgorithm::Sha1,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.digest_size() * 2 == hex.len())
        .ok_or_else(|| serde::de::Error::custom(format!("{hex:?} is not a digest")))?;
        Digest::from_hex(algorithm, &hex).map_err(serde::de::Error::custom)
    }
}

/// The largest digest size (SHA-512).
const MAX_DIGEST: usize = 64;

/// Lower-case hex of `bytes` in `buf` (`hex::encode` builds its string a char at a time,
/// which showed in the decode benchmark). `bytes` longer than half of `buf` are cut short;
/// digests never are.
fn lower_hex<'b>(bytes: &[u8], buf: &'b mut [u8]) -> &'b str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
        n += 2;
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(&buf[..n]).unwrap_or_default()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * MAX_DIGEST];
        f.write_str(lower_hex(&self.bytes, &mut buf))
    }
}

/// A salt (format 1 hashes `salt || block`); empty means no salt (`-` in the table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Salt(Vec<u8>);

impl Salt {
    /// Longest salt dm-verity accepts (bytes).
    pub const MAX_LEN: usize = 256;

    /// No salt.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Parses `-` (no salt) or an even-length hex string of at most 256 bytes.
    pub fn parse(s: &str) -> Result<Self, VerityError> {
        if s == "-" || s.is_empty() {
            return Ok(Self::none());
        }
        match hex::decode(s) {
            Ok(b) if b.len() <= Self::MAX_LEN => Ok(Self(b)),
            _ => Err(VerityError::Salt(s.to_owned())),
        }
    }

    /// The raw bytes (empty for none).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether there is no salt.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Salt {
    /// `-` for none, else lower-case hex: exactly the table's salt field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&hex::encode(&self.0))
        }
    }
}

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

/// Checked dm-verity parameters of an image with no verity superblock (format 1).
///
/// Invariants, established by [`VerityParams::new`]: block sizes are powers of two in
/// 512..=4096; the hash block holds at least two digests; `1 <= data_blocks <= 2^32-1`; the
/// data area's byte size does not overflow; the hash offset is a whole number of hash blocks
/// and lies at or after the end of the data area; the whole hash tree's end does not overflow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerityParams {
    algorithm: HashAlgorithm,
    root_hash: Digest,
    salt: Salt,
    data_block_size: BlockSize,
    hash_block_size: BlockSize,
    data_blocks: u64,
    hash_offset: Bytes,
}

impl VerityParams {
    /// Checks raw numbers against every rule and returns typed parameters (no salt).
    pub fn new(raw: &RawVerity<'_>) -> Result<Self, VerityError> {
        Self::with_salt(raw, Salt::none())
    }

    /// As [`VerityParams::new`], with a salt (the `format`/`verify` tools allow one).
    pub fn with_salt(raw: &RawVerity<'_>, salt: Salt) -> Result<Self, VerityError> {
        let algorithm: HashAlgorithm = raw.hashtype.parse()?;
        let root_hash = Digest::from_hex(algorithm, raw.hash)?;
        let geometry = Geometry::check(
            algorithm,
            raw.blocksize,
            raw.hashsize,
            raw.blocknum,
            Some(raw.offset),
        )?;
        Ok(Self {
            algorithm,
            root_hash,
            salt,
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
        &self.salt
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
    /// Byte offset of the hash tree on the hash device.
    pub fn hash_offset(&self) -> Bytes {
        self.hash_offset
    }
    /// The hash tree's start in hash blocks (the table's `<hash_start_block>`).
    pub fn hash_start_block(&self) -> u64 {
        self.hash_offset.0 / self.hash_block_size.bytes()
    }
    /// Bytes of data covered: `data_blocks * data_block_size` (checked at construction).
    pub fn data_size(&self) -> Bytes {
        Bytes(self.data_blocks * self.data_block_size.bytes())
    }
    /// The tree's shape.
    pub fn tree(&self) -> super::HashTree {
        super::HashTree::new(self.algorithm, self.hash_block_size, self.data_blocks)
    }
    /// Bytes the device must have: the end of the hash tree (checked at construction).
    pub fn required_device_size(&self) -> Bytes {
        Bytes(
            self.hash_offset.0
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
