//! Format-1 block hashing: `H(salt || block)` for each supported algorithm, with the salt
//! absorbed once and the prepared state cloned for every block; SHA-256 on a CPU with the
//! SHA extensions hashes two blocks at a time ([`super::sha256_ni`]).

use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

#[cfg(target_arch = "x86_64")]
use super::sha256_ni::{SaltedSha256, ShaNi};
use crate::verity::{Digest, HashAlgorithm, Salt, VerityError};

/// A hasher with the salt already fed in; cheap to clone, one clone per block.
#[derive(Debug, Clone)]
pub(super) enum BlockHasher {
    /// SHA-256 with the CPU's SHA extensions, two blocks at a time.
    #[cfg(target_arch = "x86_64")]
    Sha256Ni(SaltedSha256),
    /// SHA-256, one block at a time (the `sha2` crate, which uses SHA-NI when it can).
    Sha256(Sha256),
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-512.
    Sha512(Sha512),
}

impl BlockHasher {
    /// The fastest hasher of `algorithm` for `salt` on this CPU (format 1: the salt comes
    /// first).
    pub(super) fn new(algorithm: HashAlgorithm, salt: &Salt) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let (HashAlgorithm::Sha256, Some(ni)) = (algorithm, ShaNi::detect()) {
            return Self::Sha256Ni(SaltedSha256::new(ni, salt.as_bytes()));
        }
        Self::portable(algorithm, salt)
    }

    /// The hasher of `algorithm` for `salt` that hashes one block at a time.
    pub(super) fn portable(algorithm: HashAlgorithm, salt: &Salt) -> Self {
        let salt = salt.as_bytes();
        match algorithm {
            HashAlgorithm::Sha256 => Self::Sha256(Sha256::new_with_prefix(salt)),
            HashAlgorithm::Sha1 => Self::Sha1(Sha1::new_with_prefix(salt)),
            HashAlgorithm::Sha512 => Self::Sha512(Sha512::new_with_prefix(salt)),
        }
    }

    /// The algorithm.
    pub(super) fn algorithm(&self) -> HashAlgorithm {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Sha256Ni(_) => HashAlgorithm::Sha256,
            Self::Sha256(_) => HashAlgorithm::Sha256,
            Self::Sha1(_) => HashAlgorithm::Sha1,
            Self::Sha512(_) => HashAlgorithm::Sha512,
        }
    }

    /// Writes `H(salt || block)` to the start of `out` (which holds at least a digest).
    pub(super) fn hash_into(&self, block: &[u8], out: &mut [u8]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Sha256Ni(h) => h.hash_one(block, out),
            Self::Sha256(h) => put(&h.clone().chain_update(block).finalize(), out),
            Self::Sha1(h) => put(&h.clone().chain_update(block).finalize(), out),
            Self::Sha512(h) => put(&h.clone().chain_update(block).finalize(), out),
        }
    }

    /// Writes the digest of each `block_size` block of `blocks` to the start of the matching
    /// `slot`-byte slot of `out`, as many as both hold.
    pub(super) fn hash_blocks(
        &self,
        blocks: &[u8],
        block_size: usize,
        out: &mut [u8],
        slot: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Self::Sha256Ni(h) = self {
            return h.hash_blocks(blocks, block_size, out, slot);
        }
        for (block, slot) in blocks
            .chunks_exact(block_size.max(1))
            .zip(out.chunks_exact_mut(slot.max(1)))
        {
            self.hash_into(block, slot);
        }
    }

    /// `H(salt || block)` as a [`Digest`].
    pub(super) fn digest(&self, block: &[u8]) -> Result<Digest, VerityError> {
        let algorithm = self.algorithm();
        let mut out = [0u8; 64];
        let size = algorithm.digest_size();
        self.hash_into(block, &mut out);
        let bytes = out.get(..size).unwrap_or_default();
        Digest::from_bytes(algorithm, bytes).ok_or_else(|| VerityError::RootHash {
            algorithm,
            value: hex::encode(bytes),
        })
    }
}

/// The engine's block hashing, `H(salt || block)` over runs of blocks of one size: public so
/// that `benches/sha-ceiling` measures the very code `format` and `verify` run.
#[derive(Debug, Clone)]
pub struct Hasher(BlockHasher);

impl Hasher {
    /// The hasher `format` and `verify` use on this CPU.
    pub fn new(algorithm: HashAlgorithm, salt: &Salt) -> Self {
        Self(BlockHasher::new(algorithm, salt))
    }

    /// One block at a time with the `sha2` and `sha1` crates: what the engine runs on a CPU
    /// without the SHA extensions.
    pub fn portable(algorithm: HashAlgorithm, salt: &Salt) -> Self {
        Self(BlockHasher::portable(algorithm, salt))
    }

    /// How many blocks go through the compression together: 2 for SHA-256 on the CPU's SHA
    /// extensions, else 1.
    pub fn lanes(&self) -> usize {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            BlockHasher::Sha256Ni(_) => 2,
            _ => 1,
        }
    }

    /// Writes the digest of each `block_size`-byte block of `blocks` to the start of the
    /// matching `slot`-byte slot of `out`, as many as both hold.
    pub fn hash_blocks(&self, blocks: &[u8], block_size: usize, out: &mut [u8], slot: usize) {
        self.0.hash_blocks(blocks, block_size, out, slot);
    }
}

/// Copies a digest into the start of `out`.
fn put(digest: &[u8], out: &mut [u8]) {
    let n = digest.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), digest.get(..n)) {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsalted_sha256_is_the_plain_hash() {
        let h = BlockHasher::new(HashAlgorithm::Sha256, &Salt::none());
        let d = h.digest(b"abc").map(|d| d.to_hex());
        assert_eq!(
            d.as_deref(),
            Ok("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn salt_is_prepended() {
        let salt = Salt::parse("6162").unwrap_or_default(); // "ab"
        for alg in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha1,
            HashAlgorithm::Sha512,
        ] {
            let salted = BlockHasher::new(alg, &salt).digest(b"c");
            let plain = BlockHasher::new(alg, &Salt::none()).digest(b"abc");
            assert_eq!(salted, plain, "{alg}");
            assert_eq!(salted.map(|d| d.as_bytes().len()), Ok(alg.digest_size()));
        }
    }

    #[test]
    fn the_fast_hasher_agrees_with_the_portable_one() {
        let data: Vec<u8> = (0..9u32 * 1024).map(|i| (i * 7 % 253) as u8).collect();
        for salt in [
            "",
            "61",
            &"5a".repeat(32),
            &"c3".repeat(64),
            &"01".repeat(100),
        ] {
            let salt = Salt::parse(salt).unwrap_or_default();
            for alg in [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha1,
                HashAlgorithm::Sha512,
            ] {
                for block_size in [512, 1024, 4096] {
                    let slot = alg.digest_size().next_power_of_two();
                    let count = data.len() / block_size;
                    let (mut fast, mut portable) = (vec![0; slot * count], vec![0; slot * count]);
                    BlockHasher::new(alg, &salt).hash_blocks(&data, block_size, &mut fast, slot);
                    BlockHasher::portable(alg, &salt).hash_blocks(
                        &data,
                        block_size,
                        &mut portable,
                        slot,
                    );
                    assert_eq!(
                        fast, portable,
                        "{alg}, salt {salt:?}, blocks of {block_size}"
                    );
                    assert!(fast.iter().any(|&b| b != 0));
                }
            }
        }
    }

    #[test]
    fn hash_into_leaves_the_slot_padding_alone() {
        let h = BlockHasher::new(HashAlgorithm::Sha1, &Salt::none());
        let mut slot = [0u8; 32];
        h.hash_into(&[0u8; 512], &mut slot);
        assert!(slot[..20].iter().any(|&b| b != 0));
        assert_eq!(slot[20..], [0u8; 12]);
    }
}
