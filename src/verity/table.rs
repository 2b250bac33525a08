//! The dm-verity table, as a type: [`VerityTarget`]'s `Display` is exactly the parameter
//! string the kernel parses, and `FromStr` parses it back (round-trip tested).
//!
//! `<version> <dev> <hash_dev> <data_bs> <hash_bs> <num_data_blocks> <hash_start_block>
//! <alg> <digest> <salt|-> [<#opt_params> <opt_params…>]`

use std::fmt;
use std::str::FromStr;

use super::VerityError;
use super::digest::{Digest, HashAlgorithm, Salt};
use super::params::{VerityParams, VerityVersion};
use super::units::{BlockSize, Sectors};

/// The target type name.
pub const TARGET_TYPE: &str = "verity";

/// An optional dm-verity argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VerityOption {
    /// Log corruption, return the data anyway (never use in production).
    IgnoreCorruption,
    /// Restart the machine on corruption.
    RestartOnCorruption,
    /// Panic on corruption.
    PanicOnCorruption,
    /// Restart on an I/O error.
    RestartOnError,
    /// Panic on an I/O error.
    PanicOnError,
    /// Do not verify blocks expected to be zero; return zeros.
    IgnoreZeroBlocks,
    /// Verify each data block only once.
    CheckAtMostOnce,
    /// Verify the root hash's signature with the keyring key of this description.
    RootHashSigKeyDesc(String),
}

impl VerityOption {
    /// Number of table words this option takes.
    fn words(&self) -> usize {
        match self {
            Self::RootHashSigKeyDesc(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for VerityOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IgnoreCorruption => f.write_str("ignore_corruption"),
            Self::RestartOnCorruption => f.write_str("restart_on_corruption"),
            Self::PanicOnCorruption => f.write_str("panic_on_corruption"),
            Self::RestartOnError => f.write_str("restart_on_error"),
            Self::PanicOnError => f.write_str("panic_on_error"),
            Self::IgnoreZeroBlocks => f.write_str("ignore_zero_blocks"),
            Self::CheckAtMostOnce => f.write_str("check_at_most_once"),
            Self::RootHashSigKeyDesc(k) => write!(f, "root_hash_sig_key_desc {k}"),
        }
    }
}

/// Checks that a table word (device path, key description) is one non-empty word.
fn check_word(what: &'static str, value: &str) -> Result<(), VerityError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(VerityError::TableWord {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The parameters of one dm-verity target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerityTarget {
    /// Hash format version.
    pub version: VerityVersion,
    /// Data device (path or `major:minor`).
    pub data_device: String,
    /// Hash device (path or `major:minor`); the same as the data device for these images.
    pub hash_device: String,
    /// Data block size.
    pub data_block_size: BlockSize,
    /// Hash block size.
    pub hash_block_size: BlockSize,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Start of the hash tree, in hash blocks.
    pub hash_start_block: u64,
    /// Root digest (carries its algorithm).
    pub root_hash: Digest,
    /// Salt, `-` when empty.
    pub salt: Salt,
    /// Optional arguments.
    pub options: Vec<VerityOption>,
}

impl VerityTarget {
    /// The target for `params` with data and hash on the same `device`.
    pub fn new(
        params: &VerityParams,
        device: &str,
        options: Vec<VerityOption>,
    ) -> Result<Self, VerityError> {
        check_word("device", device)?;
        for o in &options {
            if let VerityOption::RootHashSigKeyDesc(k) = o {
                check_word("root_hash_sig_key_desc", k)?;
            }
        }
        Ok(Self {
            version: params.version(),
            data_device: device.to_owned(),
            hash_device: device.to_owned(),
            data_block_size: params.data_block_size(),
            hash_block_size: params.hash_block_size(),
            data_blocks: params.data_blocks(),
            hash_start_block: params.hash_start_block(),
            root_hash: params.root_hash().clone(),
            salt: params.salt().clone(),
            options,
        })
    }

    /// The target's length in sectors: the data area. `None` on overflow.
    pub fn length(&self) -> Option<Sectors> {
        self.data_blocks
            .checked_mul(self.data_block_size.bytes() / super::units::SECTOR_SIZE)
            .map(Sectors)
    }
}

impl fmt::Display for VerityTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {} {} {} {}",
            self.version,
            self.data_device,
            self.hash_device,
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block,
            self.root_hash.algorithm(),
            self.root_hash,
            self.salt
        )?;
        if !self.options.is_empty() {
            let words: usize = self.options.iter().map(VerityOption::words).sum();
            write!(f, " {words}")?;
            for o in &self.options {
                write!(f, " {o}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for VerityTarget {
    type Err = VerityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &'static str| VerityError::Table {
            why,
            table: s.to_owned(),
        };
        let words: Vec<&str> = s.split_ascii_whitespace().collect();
        let mut w = words.into_iter();
        let mut next = |why| w.next().ok_or_else(|| bad(why));
        // Plain decimal, as the kernel's `sscanf("%u")` reads it: no sign.
        let num = |v: &str, why| {
            if !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(why));
            }
            v.parse::<u64>().map_err(|_| bad(why))
        };
        // A word the kernel splits on (`isspace`) or that `VerityTarget::new` would refuse.
        let word = |what, v: &str| check_word(what, v).map(|()| v.to_owned());
        let version = match num(next("missing version")?, "bad version")? {
            0 => VerityVersion::V0,
            1 => VerityVersion::V1,
            n if u32::try_from(n).is_ok() => return Err(bad("unsupported version")),
            _ => return Err(bad("bad version")),
        };
        let data_device = word("device", next("missing data device")?)?;
        let hash_device = word("device", next("missing hash device")?)?;
        let data_block_size = BlockSize::new(num(
            next("missing data block size")?,
            "bad data block size",
        )?)
        .ok_or_else(|| bad("bad data block size"))?;
        let hash_block_size = BlockSize::new(num(
            next("missing hash block size")?,
            "bad hash block size",
        )?)
        .ok_or_else(|| bad("bad hash block size"))?;
        let data_blocks = num(next("missing data block count")?, "bad data block count")?;
        let hash_start_block = num(next("missing hash start")?, "bad hash start")?;
        let algorithm: HashAlgorithm = next("missing algorithm")?.parse()?;
        let root_hash = Digest::from_hex(algorithm, next("missing digest")?)?;
        let salt = Salt::parse(next("missing salt")?)?;
        let mut options = Vec::new();
        if let Ok(count) = next("") {
            let mut left = usize::try_from(num(count, "bad option count")?)
                .map_err(|_| bad("bad option count"))?;
            while left > 0 {
                let o = match next("missing option")? {
                    "ignore_corruption" => VerityOption::IgnoreCorruption,
                    "restart_on_corruption" => VerityOption::RestartOnCorruption,
                    "panic_on_corruption" => VerityOption::PanicOnCorruption,
                    "restart_on_error" => VerityOption::RestartOnError,
                    "panic_on_error" => VerityOption::PanicOnError,
                    "ignore_zero_blocks" => VerityOption::IgnoreZeroBlocks,
                    "check_at_most_once" => VerityOption::CheckAtMostOnce,
                    "root_hash_sig_key_desc" => VerityOption::RootHashSigKeyDesc(word(
                        "root_hash_sig_key_desc",
                        next("missing key description")?,
                    )?),
                    _ => return Err(bad("unsupported optional argument")),
                };
                left = left
                    .checked_sub(o.words())
                    .ok_or_else(|| bad("bad option count"))?;
                options.push(o);
            }
        }
        if next("").is_ok() {
            return Err(bad("trailing words"));
        }
        Ok(Self {
            version,
            data_device,
            hash_device,
            data_block_size,
            hash_block_size,
            data_blocks,
            hash_start_block,
            root_hash,
            salt,
            options,
        })
    }
}

/// A whole one-target table line: `<start> <length> verity <params>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerityTable {
    /// Length of the target in sectors (= the data area).
    pub length: Sectors,
    /// The target's parameters.
    pub target: VerityTarget,
}

impl VerityTable {
    /// The table for `target`, whose length covers its data area.
    pub fn new(target: VerityTarget) -> Result<Self, VerityError> {
        // Only a data block count past the contract's 2^32-1 can overflow the length.
        let length = target
            .length()
            .ok_or(VerityError::DataBlocks(target.data_blocks))?;
        Ok(Self { length, target })
    }
}

impl fmt::Display for VerityTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0 {} {TARGET_TYPE} {}", self.length, self.target)
    }
}

impl FromStr for VerityTable {
    type Err = VerityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &'static str| VerityError::Table {
            why,
            table: s.to_owned(),
        };
        let s = s.trim();
        let mut parts = s.splitn(4, ' ');
        if parts.next() != Some("0") {
            return Err(bad("start must be 0"));
        }
        let length = parts
            .next()
            .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u64>().ok())
            .map(Sectors)
            .ok_or_else(|| bad("bad length"))?;
        if parts.next() != Some(TARGET_TYPE) {
            return Err(bad("not a verity target"));
        }
        let target: VerityTarget = parts
            .next()
            .ok_or_else(|| bad("missing parameters"))?
            .parse()
            .map_err(|e| match e {
                // Name the whole line, not just its parameters.
                VerityError::Table { why, .. } => bad(why),
                other => other,
            })?;
        // The kernel refuses an empty target and one longer than its data blocks.
        if length.0 == 0 || target.length().is_none_or(|data| length > data) {
            return Err(bad("length must be from 1 to the data blocks' sectors"));
        }
        Ok(Self { length, target })
    }
}
