//! The hash vocabulary of dm-verity: algorithms, digests (root hashes) and salts, each parsed
//! from and written as the hex the table and the wire carry.
//!
//! Pure values: no parameter rule beyond a value's own shape lives here (those are in
//! `params`).

use std::fmt;
use std::str::FromStr;

use super::VerityError;

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

    /// Parses `-` or `""` (no salt) or an even-length hex string (either case) of at most 256
    /// bytes.
    pub fn parse(s: &str) -> Result<Self, VerityError> {
        if s == "-" || s.is_empty() {
            return Ok(Self::none());
        }
        match hex::decode(s) {
            Ok(b) if b.len() <= Self::MAX_LEN => Ok(Self(b)),
            _ => Err(VerityError::Salt(super::shorten(s))),
        }
    }

    /// A salt of these raw bytes (empty for none); `None` past [`Salt::MAX_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() <= Self::MAX_LEN).then(|| Self(bytes.to_vec()))
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
