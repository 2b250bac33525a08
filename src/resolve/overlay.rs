//! An overlay's directories on this system: the rootfs mount point, the upper and work
//! directories (confined as mount points are: under the root, no symlinks, on the root's
//! mount), and each lower layer an existing directory.

use super::{ResolveError, Target, mount_point};
use crate::policy::AuthorizedOverlay;
use crate::system::kernel::View;
use crate::system::{FileKind, System};

/// What an overlay's paths are here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOverlay {
    /// The rootfs mount point.
    pub target: Target,
    /// The upper and work directories, with what is missing of them.
    pub dirs: Vec<Target>,
}

/// Resolves an authorized overlay.
pub fn overlay(
    sys: &dyn System,
    auth: &AuthorizedOverlay,
) -> Result<ResolvedOverlay, ResolveError> {
    let target = mount_point(sys, &auth.mount_root, &auth.mount_point)?;
    let mut dirs = Vec::new();
    for d in auth.upper.iter().flat_map(|(u, w)| [u, w]) {
        let t = mount_point(sys, &auth.mount_root, d)?;
        if !t.missing_dirs.is_empty() && !auth.create.contains(d) {
            return Err(ResolveError::MountPoint {
                path: d.clone(),
                why: "does not exist, and no create_directory driver option asks for it",
            });
        }
        dirs.push(t);
    }
    let view = View::read(sys).map_err(|source| ResolveError::Sys {
        what: "lower layer",
        source,
    })?;
    for (lower, dev) in auth.lowers.iter().zip(&auth.lower_devices) {
        // A volume of ours: the kernel must show its mount there, nothing over it (what is
        // in the manager's state is not enough: something may have been mounted on top).
        if let Some(dev) = dev
            && view.top_mount(lower).map(|m| m.dev) != Some(*dev)
        {
            return Err(lower_error(
                lower,
                "is not (or no longer) the volume's own mount: something else is mounted there, or nothing",
            ));
        }
        match sys.lstat(lower) {
            Ok(st) if st.kind == FileKind::Directory => {}
            Ok(_) => return Err(lower_error(lower, "is not a directory")),
            Err(e) if e.is_not_found() => return Err(lower_error(lower, "does not exist")),
            Err(source) => {
                return Err(ResolveError::Sys {
                    what: "lower layer",
                    source,
                });
            }
        }
    }
    Ok(ResolvedOverlay { target, dirs })
}

fn lower_error(lower: &std::path::Path, why: &'static str) -> ResolveError {
    ResolveError::MountPoint {
        path: lower.to_owned(),
        why,
    }
}
