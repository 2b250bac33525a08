//! Units of the dm-verity vocabulary, one type each, so bytes, 512-byte sectors and blocks
//! are never mixed up (the classic bug of this field: one earlier implementation used the
//! block count as the sector count).
//!
//! Conversions are explicit and checked: every one that can overflow returns `None`.

use std::fmt;

/// Size of a device-mapper sector in bytes: table lengths are always in these units.
pub const SECTOR_SIZE: u64 = 512;

/// A count of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

/// A count of 512-byte sectors (the unit of a device-mapper table's start and length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sectors(pub u64);

impl Bytes {
    /// The number of whole sectors in these bytes, or `None` if not a whole number.
    pub fn to_sectors(self) -> Option<Sectors> {
        self.0
            .is_multiple_of(SECTOR_SIZE)
            .then_some(Sectors(self.0 / SECTOR_SIZE))
    }
}

impl Sectors {
    /// These sectors in bytes, or `None` on overflow.
    pub fn to_bytes(self) -> Option<Bytes> {
        self.0.checked_mul(SECTOR_SIZE).map(Bytes)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A dm-verity block size: a power of two between [`BlockSize::MIN`] and [`BlockSize::MAX`].
///
/// The kernel refuses data and hash block sizes that are not powers of two, smaller than the
/// device's logical block size or larger than the page size; [`BlockSize::MAX`] is the
/// smallest page size of the architectures Kata guests run on (4 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockSize(u32);

impl BlockSize {
    /// Smallest block size dm-verity accepts (one sector).
    pub const MIN: u32 = 512;
    /// Largest block size accepted (the page size).
    pub const MAX: u32 = 4096;
    /// 512 bytes.
    pub const B512: BlockSize = BlockSize(512);
    /// 4 KiB.
    pub const B4096: BlockSize = BlockSize(4096);

    /// A block size, if `bytes` is a power of two in `MIN..=MAX`.
    pub fn new(bytes: u64) -> Option<Self> {
        let v = u32::try_from(bytes).ok()?;
        (v.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&v)).then_some(Self(v))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.0)
    }

    /// The size in bytes, as a `usize` (buffers).
    pub fn as_usize(self) -> usize {
        // A u32 always fits in usize on the 32- and 64-bit targets we build for.
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// log2 of the size.
    pub fn shift(self) -> u32 {
        self.0.trailing_zeros()
    }
}

impl fmt::Display for BlockSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_rules() {
        for ok in [512u64, 1024, 2048, 4096] {
            assert_eq!(BlockSize::new(ok).map(BlockSize::bytes), Some(ok));
        }
        for bad in [
            0u64,
            1,
            256,
            511,
            513,
            3000,
            8192,
            524_288,
            524_800,
            u64::MAX,
        ] {
            assert_eq!(BlockSize::new(bad), None, "{bad}");
        }
        assert_eq!(BlockSize::B4096.shift(), 12);
    }

    #[test]
    fn sector_conversions() {
        assert_eq!(Bytes(4096).to_sectors(), Some(Sectors(8)));
        assert_eq!(Bytes(4095).to_sectors(), None);
        assert_eq!(Sectors(u64::MAX).to_bytes(), None);
        assert_eq!(Sectors(3).to_bytes(), Some(Bytes(1536)));
    }
}
