//! Test cases for the engine's cross-checks: an image of some data blocks, laid out in one of
//! the supported ways, with the engine's config and veritysetup's flags for the same tree.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use kata_volume::verity::engine::Config;
use kata_volume::verity::units::BlockSize;
use kata_volume::verity::{HashAlgorithm, HashTree, Salt};
use tempfile::TempDir;

use super::veritysetup::{Flags, pattern};

/// Where the tree goes.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// In the image, at the default offset.
    InImage,
    /// In the image, this many bytes past the default offset.
    InImageGap(u64),
    /// In a separate file, at this offset.
    HashFile(u64),
}

#[derive(Debug, Clone, Copy)]
/// One cell of the matrix.
pub struct Case {
    pub alg: HashAlgorithm,
    pub dbs: u64,
    pub hbs: u64,
    pub blocks: u64,
    pub salt: &'static str,
    pub layout: Layout,
}

/// A salt longer than a SHA-256 input block.
pub const LONG_SALT: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
                         202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041";

/// A case with the tree in the image at the default offset.
pub fn case(alg: HashAlgorithm, dbs: u64, hbs: u64, blocks: u64, salt: &'static str) -> Case {
    Case {
        alg,
        dbs,
        hbs,
        blocks,
        salt,
        layout: Layout::InImage,
    }
}

/// A built case: the files, and how to format them with each tool.
pub struct Built {
    pub _dir: TempDir,
    pub image: PathBuf,
    pub hash: PathBuf,
    pub config: Config,
    pub flags: Flags,
    pub tree_size: u64,
}

impl Case {
    /// An image of `blocks` data blocks, with its config and veritysetup's flags.
    pub fn build(&self, seed: u64, name: &str) -> Built {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join(format!("{name}.img"));
        std::fs::write(
            &image,
            pattern(usize::try_from(self.blocks * self.dbs).unwrap(), seed),
        )
        .unwrap();
        let data_size = self.blocks * self.dbs;
        let default_offset = data_size.next_multiple_of(self.hbs);
        let (hash, offset, hash_file) = match self.layout {
            Layout::InImage => (image.clone(), default_offset, None),
            Layout::InImageGap(gap) => (image.clone(), default_offset + gap, None),
            Layout::HashFile(off) => {
                let h = dir.path().join(format!("{name}.hash"));
                (h.clone(), off, Some(h))
            }
        };
        let config = Config {
            algorithm: self.alg,
            salt: Salt::parse(self.salt).unwrap(),
            data_block_size: self.dbs,
            hash_block_size: self.hbs,
            data_blocks: Some(self.blocks),
            hash_offset: match self.layout {
                Layout::InImage => None,
                Layout::InImageGap(_) | Layout::HashFile(_) => Some(offset),
            },
            hash_file,
        };
        let flags = Flags {
            hash: self.alg.name(),
            data_block_size: self.dbs,
            hash_block_size: self.hbs,
            data_blocks: self.blocks,
            hash_offset: offset,
            salt: self.salt.to_owned(),
        };
        let tree_size = HashTree::new(self.alg, BlockSize::new(self.hbs).unwrap(), self.blocks)
            .size()
            .0;
        Built {
            _dir: dir,
            image,
            hash,
            config,
            flags,
            tree_size,
        }
    }
}
