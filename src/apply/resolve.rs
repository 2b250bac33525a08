//! Resolving a volume's source to something a dm table can sit on.

use std::path::{Path, PathBuf};

use super::error::{ApplyError, Step};
use crate::system::{DevNum, FileInfo, FileKind, System};

/// What the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A block device.
    Block(DevNum),
    /// A regular file (to be attached to a loop device).
    File,
}

/// A source that exists and is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The path as given.
    pub path: PathBuf,
    /// What it is.
    pub kind: SourceKind,
    /// A stable identity: `block:<major>:<minor>` or `file:<dev>:<inode>`.
    pub identity: String,
}

/// Checks the source: a block device, or (when allowed) a regular file; never a character
/// device, directory or anything else.
pub fn resolve_source(
    sys: &dyn System,
    source: &str,
    allow_files: bool,
) -> Result<Resolved, ApplyError> {
    let bad = |why| ApplyError::Source {
        path: crate::volume::truncate_for_error(source),
        why,
    };
    if source.is_empty() {
        return Err(bad("empty"));
    }
    if !source.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    let path = PathBuf::from(source);
    let st = sys.stat(&path).map_err(|source| ApplyError::Step {
        step: Step::ResolveSource,
        source,
        undo_failures: Vec::new(),
    })?;
    let (kind, identity) = match st.kind {
        FileKind::Block(dev) => (SourceKind::Block(dev), format!("block:{dev}")),
        FileKind::Regular if allow_files && on_pseudo_fs(sys, &path)? => {
            return Err(bad(
                "is on a kernel pseudo filesystem (proc, sysfs, …), not an image",
            ));
        }
        FileKind::Regular if allow_files => (SourceKind::File, file_identity(&st)),
        FileKind::Regular => {
            return Err(bad(
                "is a regular file, and file-backed volumes are not allowed",
            ));
        }
        FileKind::Char => return Err(bad("is a character device, not a block device")),
        FileKind::Directory => return Err(bad("is a directory, not a block device")),
        FileKind::Symlink | FileKind::Other => return Err(bad("is not a block device")),
    };
    Ok(Resolved {
        path,
        kind,
        identity,
    })
}

/// The identity of a regular file: its device and inode.
pub(super) fn file_identity(st: &FileInfo) -> String {
    format!("file:{}:{}", st.dev, st.ino)
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

/// `statfs` magic numbers of filesystems the host can write to (FUSE carries virtio-fs).
const HOST_SHARED_FS_MAGICS: &[u64] = &[
    0x6573_5546, // fuse (virtio-fs)
    0x0102_1997, // 9p
    0x6969,      // nfs
    0xff53_4d42, // cifs
];

fn fs_magic(sys: &dyn System, path: &Path) -> Result<u64, ApplyError> {
    sys.fs_magic(path).map_err(|source| ApplyError::Step {
        step: Step::ResolveSource,
        source,
        undo_failures: Vec::new(),
    })
}

fn on_pseudo_fs(sys: &dyn System, path: &Path) -> Result<bool, ApplyError> {
    Ok(PSEUDO_FS_MAGICS.contains(&fs_magic(sys, path)?))
}

/// Checks that `mount_point` lies strictly inside `root` and that no existing component from
/// `root` down is a symlink (so nothing can redirect the mount outside the root) or anything
/// but a directory. Missing components are fine: they will be created as directories.
pub fn confine_mount_point(
    sys: &dyn System,
    root: &Path,
    mount_point: &Path,
) -> Result<(), ApplyError> {
    let bad = |why| ApplyError::MountPoint {
        path: mount_point.to_owned(),
        why,
    };
    if !crate::policy::is_normal_absolute(mount_point) {
        return Err(bad(
            "must be an absolute path without '.', '..' or repeated '/'",
        ));
    }
    let Ok(below) = mount_point.strip_prefix(root) else {
        return Err(bad("is outside the mount root"));
    };
    if below.as_os_str().is_empty() {
        return Err(bad("is the mount root itself"));
    }
    let mut cur = root.to_path_buf();
    let mut components = vec![None];
    components.extend(below.components().map(Some));
    for c in components {
        if let Some(c) = c {
            cur.push(c);
        }
        match sys.lstat(&cur) {
            Ok(st) => match st.kind {
                // A directory the host can change (virtio-fs, 9p, FUSE) could be swapped for
                // a symlink between this check and the mount: never mount through one.
                FileKind::Directory if HOST_SHARED_FS_MAGICS.contains(&fs_magic(sys, &cur)?) => {
                    return Err(bad(
                        "passes through a host-shared filesystem (virtio-fs, 9p, FUSE)",
                    ));
                }
                FileKind::Directory => {}
                FileKind::Symlink => {
                    return Err(bad("has a symlink on its way from the mount root"));
                }
                _ => return Err(bad("has a component that is not a directory")),
            },
            Err(e) if e.is_not_found() => return Ok(()),
            Err(source) => {
                return Err(ApplyError::Step {
                    step: Step::MakeMountPoint,
                    source,
                    undo_failures: Vec::new(),
                });
            }
        }
    }
    Ok(())
}
