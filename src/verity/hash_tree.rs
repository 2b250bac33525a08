//! The shape of a dm-verity hash tree, exactly as the kernel computes it in `verity_ctr`: how
//! many levels, how many hash blocks per level, and where each level starts, counted from the
//! tree's first block (after the superblock's block when there is one). Level 0 hashes the
//! data blocks; the highest level is a single block whose hash is the root hash. Levels are
//! stored top level first. The shape is the same for hash types 0 and 1; `digest_slot` is
//! version 1's (version 0 packs digests back to back).

use super::digest::HashAlgorithm;
use super::units::{BlockSize, Bytes};

/// log2 of the digests per hash block: digests sit in power-of-two slots, so the count per
/// block is rounded down to a power of two.
fn digests_per_block_shift(algorithm: HashAlgorithm, hash_block_size: BlockSize) -> u32 {
    let per_block = hash_block_size.bytes() / algorithm.digest_size() as u64;
    if per_block == 0 { 0 } else { per_block.ilog2() }
}

/// Hash blocks per level, level 0 (just above the data) first.
fn level_blocks(shift: u32, data_blocks: u64) -> impl Iterator<Item = u64> {
    let mut levels = 0u32;
    if shift > 0 {
        while shift * levels < 64 && (data_blocks.saturating_sub(1) >> (shift * levels)) != 0 {
            levels += 1;
        }
    }
    (0..levels).map(move |i| {
        let bits = shift * (i + 1);
        if bits >= 64 {
            1
        } else {
            data_blocks.div_ceil(1u64 << bits)
        }
    })
}

/// The shape of a hash tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTree {
    hash_block_size: BlockSize,
    digests_per_block_shift: u32,
    /// Blocks per level, level 0 (just above the data) first.
    level_blocks: Vec<u64>,
}

impl HashTree {
    /// The tree over `data_blocks` blocks (any count; 0 and 1 give an empty tree, where the
    /// root hash is the hash of the single data block).
    pub fn new(algorithm: HashAlgorithm, hash_block_size: BlockSize, data_blocks: u64) -> Self {
        let shift = digests_per_block_shift(algorithm, hash_block_size);
        Self {
            hash_block_size,
            digests_per_block_shift: shift,
            level_blocks: level_blocks(shift, data_blocks).collect(),
        }
    }

    /// The tree's size in bytes, as `HashTree::new(..).size()` without building the tree
    /// (checked on every volume; saturating).
    pub fn size_of(
        algorithm: HashAlgorithm,
        hash_block_size: BlockSize,
        data_blocks: u64,
    ) -> Bytes {
        let shift = digests_per_block_shift(algorithm, hash_block_size);
        let blocks = level_blocks(shift, data_blocks).fold(0u64, u64::saturating_add);
        Bytes(blocks.saturating_mul(hash_block_size.bytes()))
    }

    /// Number of levels (0 for a single data block).
    pub fn levels(&self) -> usize {
        self.level_blocks.len()
    }

    /// Hash blocks in `level` (0 = lowest).
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.level_blocks.get(level).copied().unwrap_or(0)
    }

    /// Start of `level` in hash blocks from the tree's start (the top level comes first).
    pub fn level_start(&self, level: usize) -> u64 {
        self.level_blocks.iter().skip(level + 1).sum()
    }

    /// Digests stored per hash block (a power of two).
    pub fn digests_per_block(&self) -> u64 {
        1u64 << self.digests_per_block_shift
    }

    /// Bytes each digest occupies in a hash block (a power of two, at least the digest size).
    pub fn digest_slot(&self) -> usize {
        self.hash_block_size.as_usize() >> self.digests_per_block_shift
    }

    /// Total hash blocks.
    pub fn total_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }

    /// Total size of the tree in bytes (saturating; callers check against the device).
    pub fn size(&self) -> Bytes {
        Bytes(
            self.total_blocks()
                .saturating_mul(self.hash_block_size.bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_block_has_no_levels() {
        let t = HashTree::new(HashAlgorithm::Sha256, BlockSize::B4096, 1);
        assert_eq!(t.levels(), 0);
        assert_eq!(t.size(), Bytes(0));
    }

    #[test]
    fn sha256_4k_shapes() {
        // 128 digests per 4 KiB block.
        let t = HashTree::new(HashAlgorithm::Sha256, BlockSize::B4096, 128);
        assert_eq!((t.levels(), t.total_blocks()), (1, 1));
        let t = HashTree::new(HashAlgorithm::Sha256, BlockSize::B4096, 129);
        assert_eq!(t.levels(), 2);
        assert_eq!((t.level_blocks(0), t.level_blocks(1)), (2, 1));
        assert_eq!((t.level_start(1), t.level_start(0)), (0, 1));
        assert_eq!(t.digest_slot(), 32);
    }

    #[test]
    fn sha1_slots_are_padded_to_a_power_of_two() {
        let t = HashTree::new(HashAlgorithm::Sha1, BlockSize::B4096, 1000);
        assert_eq!(t.digests_per_block(), 128);
        assert_eq!(t.digest_slot(), 32);
    }

    #[test]
    fn size_of_is_the_built_tree_size() {
        for alg in [
            HashAlgorithm::Sha1,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
        ] {
            for bs in [BlockSize::B512, BlockSize::B4096] {
                for n in [0, 1, 2, 127, 128, 129, 16384, 1 << 32, u64::MAX] {
                    assert_eq!(
                        HashTree::size_of(alg, bs, n),
                        HashTree::new(alg, bs, n).size(),
                        "{alg} {bs} {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn huge_trees_do_not_overflow() {
        let t = HashTree::new(HashAlgorithm::Sha512, BlockSize::B512, u64::MAX);
        assert!(t.levels() > 0);
        let _ = t.size();
    }
}
