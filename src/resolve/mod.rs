//! A read-only look at the system for an authorized request: what the source really is (a
//! block device with its size, or — when allowed — a regular file for a loop device), and
//! whether the mount point can be reached from the mount root without symlinks or
//! host-shared directories, with the directories still to create. Changes nothing.

mod mount_point;
mod overlay;
mod source;

use crate::volume::shown;
use std::path::PathBuf;

pub use mount_point::{Target, mount_point};
pub use overlay::{ResolvedOverlay, overlay};
pub use source::{FileId, Source, source};

use crate::address::{AddressError, GuestAddress};
use crate::policy::{Authorized, Policy, PolicyError};
use crate::system::SysError;
use crate::verity::VerityParams;
use crate::verity::superblock::{self, SUPERBLOCK_SIZE, SuperblockCheckError};

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
    /// What the source holds at the hash offset is not what the request says (a superblock
    /// missing, different, or where none should be).
    #[error(transparent)]
    Superblock(#[from] SuperblockCheckError),
    /// The disk at a guest address was not found (in time).
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The disk found at a guest address is not one the policy allows.
    #[error(transparent)]
    Policy(#[from] PolicyError),
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
    let source = match (&auth.source, auth.partition) {
        (GuestAddress::Path(p), None) => source(sys, &p.to_string_lossy(), auth.allow_file)?,
        (addr, partition) => {
            // A hot-plugged disk: found (and waited for) by its address — or one partition
            // of it; the policy's source patterns apply to the node it turns out to be.
            let mut node = sys.find_disk(addr, auth.device_timeout)?;
            if let Some(n) = partition {
                node = partition_node(sys, &node, n)?;
            }
            let node = node.to_string_lossy();
            Policy::check_resolved_source(&auth.allowed_sources, &node)?;
            source(sys, &node, false)?
        }
    };
    if let Some(params) = &auth.verity {
        check_hash_area(sys, params, &source)?;
    }
    Ok(Resolved { source, target })
}

/// How long a partition's node may take to appear after its disk's (the kernel reads the
/// partition table when the disk arrives).
const PARTITION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The node of partition `n` of `disk`: `<disk><n>`, or `<disk>p<n>` when the disk's name
/// ends in a digit (`nvme0n1p1`), as the kernel names them; waited for briefly.
fn partition_node(
    sys: &dyn crate::system::System,
    disk: &std::path::Path,
    n: u32,
) -> Result<PathBuf, ResolveError> {
    let base = disk.to_string_lossy();
    let sep = if base.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    let node = PathBuf::from(format!("{base}{sep}{n}"));
    let deadline = std::time::Instant::now() + PARTITION_WAIT;
    loop {
        match sys.stat(&node) {
            Ok(_) => return Ok(node),
            Err(e) if e.is_not_found() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(source) => {
                return Err(ResolveError::Sys {
                    what: "source",
                    source,
                });
            }
        }
    }
}

/// Reads what the source holds at the hash offset: the superblock the request describes, or
/// no superblock where it says there is none — a clear refusal now instead of `EIO` later.
fn check_hash_area(
    sys: &dyn crate::system::System,
    params: &VerityParams,
    source: &Source,
) -> Result<(), ResolveError> {
    let bytes = sys
        .read_at(source.path(), params.hash_offset().0, SUPERBLOCK_SIZE)
        .map_err(|source| ResolveError::Sys {
            what: "source",
            source,
        })?;
    superblock::check_hash_area(params, &bytes)?;
    Ok(())
}
