//! Manager errors, each with the [`ErrorKind`] a protocol maps to its status code.

use crate::volume::shown;
use std::path::PathBuf;

use crate::apply::ApplyError;
use crate::plan::PlanError;
use crate::policy::PolicyError;
use crate::request::RequestError;
use crate::resolve::ResolveError;

/// The class of an error, for protocol status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request.
    InvalidArgument,
    /// Refused by policy.
    PermissionDenied,
    /// Nothing there.
    NotFound,
    /// Something different is already there.
    AlreadyExists,
    /// A limit was reached.
    ResourceExhausted,
    /// The system failed.
    Internal,
    /// Not this component's business: handled elsewhere (an image the agent pulls).
    NotHandledHere,
}

/// Why a manager operation failed: the pipeline step that refused, or the manager's own
/// bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The request is malformed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Policy refused the request.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The source or the mount point cannot be used.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The volume does not fit its device.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Setting up or tearing down failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Another volume is already mounted there.
    #[error(
        "Mount point {} already holds a different volume ({existing})",
        shown(mount_point)
    )]
    Conflict {
        /// The mount point.
        mount_point: PathBuf,
        /// What is there.
        existing: String,
    },
    /// A removal of the mount point did not finish, and finishing it now failed.
    #[error(
        "A removal of {} did not finish, and finishing it failed",
        shown(mount_point)
    )]
    UnfinishedRemoval {
        /// The mount point.
        mount_point: PathBuf,
        /// Why finishing it failed.
        #[source]
        source: Box<ManagerError>,
    },
    /// The entry at the mount point kept changing while a remove waited for it.
    #[error("Mount point {} is busy: its volume kept changing during the removal; try again", shown(.0))]
    Busy(PathBuf),
    /// An overlay asked of something that is not a manager (the CLI's `mount`): only a
    /// manager knows which volumes it mounted.
    #[error(
        "A rootfs overlay is built by the daemon (or a VolumeManager), which knows the volumes it mounted"
    )]
    NeedsManager,
    /// A path inside (or containing) a rootfs's upper or work directory.
    #[error(
        "{} lies in the writable directory {} of a container rootfs (or contains it): a container writes there",
        shown(path),
        shown(writable)
    )]
    Writable {
        /// The path asked for.
        path: PathBuf,
        /// The rootfs's upper or work directory.
        writable: PathBuf,
    },
    /// The mount point is not managed here.
    #[error("No volume is mounted at {}", shown(.0))]
    NotFound(PathBuf),
    /// Too many volumes.
    #[error("Too many volumes: the limit is {0}")]
    TooMany(usize),
    /// A full read of the volume's device is already running: one at a time per device.
    #[error(
        "A full read of {dm_name} (the device of {}) is already running; try again when it has finished",
        shown(mount_point)
    )]
    ReadInProgress {
        /// The dm device.
        dm_name: String,
        /// The mount point asked about.
        mount_point: PathBuf,
    },
    /// The policy's mount root is reached through a symlink: no mount could land there,
    /// since a mount point's real path must be the one asked for.
    #[error(
        "Mount root {} passes through the symlink {}: give its real path, without symlinks",
        shown(root),
        shown(symlink)
    )]
    MountRoot {
        /// The mount root.
        root: PathBuf,
        /// Its first component that is a symlink.
        symlink: PathBuf,
    },
    /// The state file could not be read or written.
    #[error("Cannot {op} the state file")]
    State {
        /// "read" or "write".
        op: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ManagerError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            // A size over the policy's limits is the policy's refusal; a signature that does
            // not decode is a trust failure, as one that does not verify.
            Self::Request(
                RequestError::TooLarge { .. }
                | RequestError::TooManyOptions { .. }
                | RequestError::Signature { .. },
            )
            | Self::Policy(_) => ErrorKind::PermissionDenied,
            Self::Request(RequestError::GuestPull) => ErrorKind::NotHandledHere,
            Self::Request(_) | Self::Plan(_) | Self::NeedsManager => ErrorKind::InvalidArgument,
            Self::Resolve(e) => match e {
                ResolveError::Sys { source, .. } if !source.is_not_found() => ErrorKind::Internal,
                ResolveError::Policy(_) => ErrorKind::PermissionDenied,
                ResolveError::Address(a) if !a.is_invalid_request() => ErrorKind::Internal,
                _ => ErrorKind::InvalidArgument,
            },
            Self::Conflict { .. } => ErrorKind::AlreadyExists,
            Self::Writable { .. } => ErrorKind::PermissionDenied,
            Self::UnfinishedRemoval { source, .. } => source.kind(),
            Self::Busy(_) => ErrorKind::ResourceExhausted,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::TooMany(_) | Self::ReadInProgress { .. } => ErrorKind::ResourceExhausted,
            Self::State { .. } | Self::MountRoot { .. } => ErrorKind::Internal,
            Self::Apply(a) => match a {
                ApplyError::MountPointBusy(_)
                | ApplyError::TableMismatch { .. }
                | ApplyError::ForeignMount { .. } => ErrorKind::AlreadyExists,
                ApplyError::NotVerified { .. }
                | ApplyError::Mismatch { .. }
                | ApplyError::KernelSignature(_)
                | ApplyError::KernelRequiresSignature { .. }
                | ApplyError::RootHashChanged { .. } => ErrorKind::PermissionDenied,
                ApplyError::Table(_) => ErrorKind::InvalidArgument,
                ApplyError::Step { source, .. } if source.is_not_found() => {
                    ErrorKind::InvalidArgument
                }
                ApplyError::Step { .. }
                | ApplyError::RollbackFailed { .. }
                | ApplyError::NotBlock(_)
                | ApplyError::Hidden(_)
                | ApplyError::UnreadableTable { .. } => ErrorKind::Internal,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::address::AddressError;

    /// A disk that is not where the request says is the request's fault; one that does not
    /// come, the guest's. (The fake system only ever times out, so the resolver's other
    /// answers are classed here.)
    #[test]
    fn address_errors_are_classed_by_whose_fault_they_are() {
        let wrong_bus = AddressError::WrongBus {
            address: "mmio 0x1000".into(),
            why: "vdb is on PCI".into(),
        };
        let no_ccw = AddressError::NoCcwBus {
            address: "0.0.0005".into(),
        };
        let timeout = AddressError::Timeout {
            address: "pci 02/05".into(),
            timeout: Duration::from_secs(1),
            last: "nothing".into(),
        };
        for (e, kind) in [
            (wrong_bus, ErrorKind::InvalidArgument),
            (no_ccw, ErrorKind::InvalidArgument),
            (timeout, ErrorKind::Internal),
        ] {
            let e = ManagerError::Resolve(ResolveError::Address(e));
            assert_eq!(e.kind(), kind, "{e}");
        }
    }
}
