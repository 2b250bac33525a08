//! A read-only look at the system for an authorized request: what the source really is (a
//! block device with its size, or — when allowed — a regular file for a loop device), and
//! whether the mount point can be reached from the mount root without symlinks or
//! host-shared directories, with the directories still to create. Changes nothing.

mod mount_point;
mod source;

use crate::volume::shown;
use std::path::PathBuf;

pub use mount_point::{Target, mount_point};
pub use source::{FileId, Source, source};

use crate::policy::Authorized;
use crate::system::SysError;

/// What the request's names stand for on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The source device or file.
    pub source: Source,
    /// The mount point.
    pub target: Target,
}

/// Why a source or mount point cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The source is not something we mount.
    #[error("Invalid source {path:?}: {why}")]
    Source {
        /// The path.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// The mount point cannot be used.
    #[error("Invalid mount point {}: {why}", shown(path))]
    MountPoint {
        /// The path.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
    /// Looking at the system failed.
    #[error("Cannot inspect the {what}")]
    Sys {
        /// "source" or "mount point".
        what: &'static str,
        /// The system error.
        #[source]
        source: SysError,
    },
}

impl ResolveError {
    /// Whether the thing looked at does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ResolveError::Sys { source, .. } if source.is_not_found())
    }
}

/// Resolves the source and the mount point of an authorized request.
pub fn resolve(
    sys: &dyn crate::system::System,
    auth: &Authorized,
) -> Result<Resolved, ResolveError> {
    let target = mount_point(sys, &auth.mount_root, &auth.mount_point)?;
    let source = source(sys, &auth.source, auth.allow_file)?;
    Ok(Resolved { source, target })
}
