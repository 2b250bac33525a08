//! The source: a block device (with its size and logical block size), or a regular file
//! that a loop device will present; never a character device, directory or kernel interface.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ResolveError;
use crate::system::{DevNum, FileKind, System};
use crate::verity::units::{Bytes, SECTOR_SIZE};

/// A regular file's identity: the device holding it and its inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device of the filesystem holding the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// A usable source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A block device.
    Block {
        /// Its node.
        path: PathBuf,
        /// Its device number.
        dev: DevNum,
        /// Size in bytes.
        size: Bytes,
        /// Logical block size.
        logical_block_size: Bytes,
    },
    /// A regular file, to be attached to a read-only loop device.
    File {
        /// The file.
        path: PathBuf,
        /// Its identity.
        id: FileId,
        /// Its size in bytes.
        size: Bytes,
    },
}

impl Source {
    /// The path as given.
    pub fn path(&self) -> &Path {
        match self {
            Source::Block { path, .. } | Source::File { path, .. } => path,
        }
    }

    /// A stable identity, whatever path names it: `block:<major>:<minor>` or
    /// `file:<dev>:<inode>`.
    pub fn identity(&self) -> String {
        self.to_string()
    }

    /// The size of the block device the dm table will sit on (a loop device shows whole
    /// sectors of its file).
    pub fn device_size(&self) -> Bytes {
        match self {
            Source::Block { size, .. } => *size,
            Source::File { size, .. } => Bytes(size.0 - size.0 % SECTOR_SIZE),
        }
    }

    /// The logical block size of that block device (512 for loop devices).
    pub fn logical_block_size(&self) -> Bytes {
        match self {
            Source::Block {
                logical_block_size, ..
            } => *logical_block_size,
            Source::File { .. } => Bytes(SECTOR_SIZE),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Block { dev, .. } => write!(f, "block:{dev}"),
            Source::File { id, .. } => write!(f, "file:{}:{}", id.dev, id.ino),
        }
    }
}

/// `statfs` magic numbers of kernel pseudo filesystems: files there are kernel interfaces
/// (`/proc/kcore`, `/sys/…/mem`), never images.
const PSEUDO_FS_MAGICS: &[u64] = &[
    0x9fa0,      // proc
    0x9fa1,      // openpromfs
    0x6265_6572, // sysfs
    0x6265_6570, // configfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x7363_6673, // securityfs
    0xf97c_ff8c, // selinuxfs
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0xcafe_4a11, // bpf
    0x6e73_6673, // nsfs
    0x4249_4e4d, // binfmt_misc
    0x1cd1,      // devpts
    0xde5e_81e4, // efivarfs
    0x6165_676c, // pstore
    0x1980_0202, // mqueue
];

fn sys_err(source: crate::system::SysError) -> ResolveError {
    ResolveError::Sys {
        what: "source",
        source,
    }
}

/// Looks at `path`: a block device, or (when `allow_file`) a regular file outside kernel
/// pseudo filesystems.
pub fn source(sys: &dyn System, path: &str, allow_file: bool) -> Result<Source, ResolveError> {
    let bad = |why| ResolveError::Source {
        path: crate::volume::truncate_for_error(path),
        why,
    };
    if path.is_empty() {
        return Err(bad("empty"));
    }
    if !path.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    let p = PathBuf::from(path);
    let st = sys.stat(&p).map_err(sys_err)?;
    match st.kind {
        FileKind::Block(dev) => {
            let info = sys.block_info(dev).map_err(sys_err)?;
            Ok(Source::Block {
                path: p,
                dev,
                size: info.size,
                logical_block_size: info.logical_block_size,
            })
        }
        FileKind::Regular if !allow_file => Err(bad(
            "is a regular file, and file-backed volumes are not allowed",
        )),
        FileKind::Regular => {
            if PSEUDO_FS_MAGICS.contains(&sys.fs_magic(&p).map_err(sys_err)?) {
                return Err(bad(
                    "is on a kernel pseudo filesystem (proc, sysfs, …), not an image",
                ));
            }
            Ok(Source::File {
                path: p,
                id: FileId {
                    dev: st.dev,
                    ino: st.ino,
                },
                size: Bytes(st.size),
            })
        }
        FileKind::Char => Err(bad("is a character device, not a block device")),
        FileKind::Directory => Err(bad("is a directory, not a block device")),
        FileKind::Symlink | FileKind::Other => Err(bad("is not a block device")),
    }
}
