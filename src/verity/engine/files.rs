//! Where the data and the tree are: opens the image and the hash file, sizes them, applies
//! the defaults (data blocks from the image size, tree offset after the data or at the start
//! of a separate hash file) and checks everything with the shared [`Geometry`] rules.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Config, EngineError};
use crate::verity::units::{BlockSize, Bytes};
use crate::verity::{Geometry, HashAlgorithm, HashTree, MAX_DATA_BLOCKS, VerityError};

/// Whether the files are opened to write a tree or to check one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// `format`: the tree's file is opened for writing, created and extended as needed.
    Format,
    /// `verify`: everything read-only; the files must be large enough.
    Verify,
}

/// The opened files and the checked geometry.
#[derive(Debug)]
pub(super) struct Target {
    /// The image (data, and the tree when there is no separate hash file).
    pub data: File,
    /// The image's path.
    pub data_path: PathBuf,
    /// The separate hash file, if any.
    pub hash: Option<(File, PathBuf)>,
    /// Checked geometry; `hash_offset` is in the hash file when there is one.
    pub geometry: Geometry,
    /// The hash algorithm.
    pub algorithm: HashAlgorithm,
    /// The tree's shape.
    pub tree: HashTree,
}

impl Target {
    /// The file holding the tree, and its path.
    pub(super) fn hash_device(&self) -> (&File, &Path) {
        match &self.hash {
            Some((file, path)) => (file, path),
            None => (&self.data, &self.data_path),
        }
    }
}

/// Opens and checks the files for `config`.
pub(super) fn open(image: &Path, config: &Config, access: Access) -> Result<Target, EngineError> {
    let separate = has_separate_hash_file(image, config);
    let data = OpenOptions::new()
        .read(true)
        .write(access == Access::Format && !separate)
        .open(image)
        .map_err(EngineError::io("open", image))?;
    let size = file_size(&data, image)?;

    let block = BlockSize::new(config.data_block_size)
        .ok_or(VerityError::DataBlockSize(config.data_block_size))?;
    let data_blocks = match config.data_blocks {
        Some(n) => n,
        None if access == Access::Verify && !separate => {
            return Err(EngineError::DataBlocksRequired);
        }
        None if size % block.bytes() != 0 => {
            return Err(EngineError::NotWholeBlocks {
                path: image.to_path_buf(),
                size,
                block_size: block.bytes(),
            });
        }
        None => match size / block.bytes() {
            blocks @ 1..=MAX_DATA_BLOCKS => blocks,
            blocks => {
                return Err(EngineError::ImageBlocks {
                    path: image.to_path_buf(),
                    blocks,
                    block_size: block.bytes(),
                });
            }
        },
    };
    let geometry = if separate {
        separate_geometry(config, data_blocks)?
    } else {
        Geometry::check(
            config.algorithm,
            config.data_block_size,
            config.hash_block_size,
            data_blocks,
            config.hash_offset,
        )?
    };
    let tree = HashTree::new(config.algorithm, geometry.hash_block_size, data_blocks);
    // Geometry checked that these do not overflow.
    let data_size = data_blocks * block.bytes();
    // An empty tree (one data block) needs no room at all.
    let tree_end = match tree.size().0 {
        0 => 0,
        size => geometry.hash_offset.0.saturating_add(size),
    };
    if size < data_size {
        return Err(too_small(image, "data area", size, data_size));
    }

    let hash = match (&config.hash_file, separate) {
        (Some(path), true) => {
            let file = open_hash_file(path, access)?;
            ensure_room(&file, path, tree_end, access)?;
            Some((file, path.clone()))
        }
        _ => {
            ensure_room(&data, image, tree_end, access)?;
            None
        }
    };
    Ok(Target {
        data,
        data_path: image.to_path_buf(),
        hash,
        geometry,
        algorithm: config.algorithm,
        tree,
    })
}

/// Whether the tree goes to a file other than the image (a `--hash-file` naming the image
/// itself means "in the image").
fn has_separate_hash_file(image: &Path, config: &Config) -> bool {
    let Some(hash) = &config.hash_file else {
        return false;
    };
    match (std::fs::metadata(image), std::fs::metadata(hash)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
        _ => true,
    }
}

/// Geometry with the tree in its own file: the offset (default 0) is within that file, so
/// only its alignment and the end's overflow are checked, not the overlap with the data.
fn separate_geometry(config: &Config, data_blocks: u64) -> Result<Geometry, EngineError> {
    let mut geometry = Geometry::check(
        config.algorithm,
        config.data_block_size,
        config.hash_block_size,
        data_blocks,
        None,
    )?;
    let offset = config.hash_offset.unwrap_or(0);
    let hashsize = geometry.hash_block_size.bytes();
    if !offset.is_multiple_of(hashsize) {
        return Err(VerityError::OffsetAlignment { offset, hashsize }.into());
    }
    let tree = HashTree::new(config.algorithm, geometry.hash_block_size, data_blocks);
    if offset.checked_add(tree.size().0).is_none() {
        return Err(VerityError::Overflow { offset }.into());
    }
    geometry.hash_offset = Bytes(offset);
    Ok(geometry)
}

fn open_hash_file(path: &Path, access: Access) -> Result<File, EngineError> {
    let format = access == Access::Format;
    OpenOptions::new()
        .read(true)
        .write(format)
        .create(format)
        .truncate(false)
        .open(path)
        .map_err(EngineError::io("open", path))
}

/// Makes sure `file` reaches `end`: a regular file being formatted is extended, anything else
/// must already be large enough.
fn ensure_room(file: &File, path: &Path, end: u64, access: Access) -> Result<(), EngineError> {
    let size = file_size(file, path)?;
    if size >= end {
        return Ok(());
    }
    let regular = file
        .metadata()
        .map_err(EngineError::io("stat", path))?
        .is_file();
    if access == Access::Format && regular {
        file.set_len(end).map_err(EngineError::io("extend", path))
    } else {
        Err(too_small(path, "hash tree", size, end))
    }
}

/// The size of a regular file or a block device.
fn file_size(file: &File, path: &Path) -> Result<u64, EngineError> {
    let mut f = file;
    f.seek(SeekFrom::End(0))
        .map_err(EngineError::io("size", path))
}

fn too_small(path: &Path, what: &'static str, size: u64, needed: u64) -> EngineError {
    EngineError::TooSmall {
        path: path.to_path_buf(),
        what,
        size,
        needed,
    }
}
