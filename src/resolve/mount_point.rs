//! The mount point: strictly inside the mount root, every existing component from the root
//! down a real directory (no symlink that could redirect the mount, nothing on a filesystem
//! the host can change under us), on the mount root's own mount (never inside another mount,
//! e.g. a container's rootfs), with nothing mounted below it (a mount there would hide it),
//! and the missing components to be created as directories.

use std::path::{Path, PathBuf};

use super::ResolveError;
use crate::system::kernel::View;
use crate::system::{FileKind, System};

/// `statfs` magic numbers of filesystems the host can write to (FUSE carries virtio-fs).
const HOST_SHARED_FS_MAGICS: &[u64] = &[
    0x6573_5546, // fuse (virtio-fs)
    0x0102_1997, // 9p
    0x6969,      // nfs
    0xff53_4d42, // cifs
];

/// A mount point that may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The mount point.
    pub path: PathBuf,
    /// Directories that do not exist yet, outermost first (the last is the mount point).
    pub missing_dirs: Vec<PathBuf>,
}

/// Checks `mount_point` below `root` (see the module docs).
pub fn mount_point(
    sys: &dyn System,
    root: &Path,
    mount_point: &Path,
) -> Result<Target, ResolveError> {
    let bad = |why| ResolveError::MountPoint {
        path: mount_point.to_owned(),
        why,
    };
    if !crate::request::is_normal_absolute(mount_point) {
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
    let sys_err = |source| ResolveError::Sys {
        what: "mount point",
        source,
    };
    let mut cur = root.to_path_buf();
    let mut missing = Vec::new();
    // The deepest existing directory on the way (the mount point itself when it exists).
    let mut deepest = None;
    let mut components = vec![None];
    components.extend(below.components().map(Some));
    for c in components {
        if let Some(c) = c {
            cur.push(c);
        }
        if !missing.is_empty() {
            missing.push(cur.clone());
            continue;
        }
        match sys.lstat(&cur) {
            Ok(st) => match st.kind {
                // A directory the host can change (virtio-fs, 9p, FUSE) could be swapped for
                // a symlink between this check and the mount: never mount through one.
                FileKind::Directory
                    if HOST_SHARED_FS_MAGICS.contains(&sys.fs_magic(&cur).map_err(sys_err)?) =>
                {
                    return Err(bad(
                        "passes through a host-shared filesystem (virtio-fs, 9p, FUSE)",
                    ));
                }
                FileKind::Directory => deepest = Some(cur.clone()),
                FileKind::Symlink => {
                    return Err(bad("has a symlink on its way from the mount root"));
                }
                _ => return Err(bad("has a component that is not a directory")),
            },
            Err(e) if e.is_not_found() => {
                if cur == root {
                    // The mount root itself is made on first use, with any missing parents.
                    missing = missing_ancestors(sys, root);
                }
                missing.push(cur.clone());
            }
            Err(e) => return Err(sys_err(e)),
        }
    }
    on_the_roots_mount(sys, root, mount_point, deepest.as_deref())?;
    Ok(Target {
        path: mount_point.to_owned(),
        missing_dirs: missing,
    })
}

/// Checks that the mount point lies on the mount root's own mount and covers no mount.
///
/// The anchor is the mount point's parent when the mount point exists (a mount of ours may
/// sit on it: `apply` tells ours from another), else its deepest existing ancestor; it must
/// be on the same mount as the mount root. So a mount point inside another mount — a container's rootfs
/// the agent made, say — is refused, as is one with any mount below it.
fn on_the_roots_mount(
    sys: &dyn System,
    root: &Path,
    mount_point: &Path,
    deepest: Option<&Path>,
) -> Result<(), ResolveError> {
    let bad = |why| ResolveError::MountPoint {
        path: mount_point.to_owned(),
        why,
    };
    let sys_err = |source| ResolveError::Sys {
        what: "mount point",
        source,
    };
    let Some(deepest) = deepest else {
        // Nothing of it exists below the root's missing parent: nothing can be mounted there.
        return Ok(());
    };
    let anchor = if deepest == mount_point {
        mount_point.parent().unwrap_or(root)
    } else {
        deepest
    };
    // The walk started at the root: it exists, since something below it does.
    let root_mount = sys.mount_id(root).map_err(sys_err)?;
    if sys.mount_id(anchor).map_err(sys_err)? != root_mount {
        return Err(bad(
            "lies inside another mount than the mount root's (something is mounted above it inside the mount root)",
        ));
    }
    let view = View::read(sys).map_err(sys_err)?;
    if view.mounts_below(mount_point).next().is_some() {
        return Err(bad(
            "has something mounted below it, which a mount there would hide",
        ));
    }
    Ok(())
}

/// The missing ancestors of `path`, outermost first.
fn missing_ancestors(sys: &dyn System, path: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .skip(1)
        .take_while(|d| sys.lstat(d).is_err_and(|e| e.is_not_found()))
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}
