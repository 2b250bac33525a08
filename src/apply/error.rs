//! Errors of apply and teardown: which step failed, and why.

use std::fmt;
use std::path::PathBuf;

use crate::plan::{DmName, PlanError};
use crate::system::SysError;
use crate::volume::VolumeType;

/// A step of apply or teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Inspecting the source.
    ResolveSource,
    /// Attaching a loop device.
    AttachLoop,
    /// Creating the dm device.
    CreateDevice,
    /// Loading the verity table.
    LoadTable,
    /// Resuming the device.
    Resume,
    /// Making the `/dev/mapper` node.
    MakeNode,
    /// Reading the verity status.
    CheckStatus,
    /// Creating the mount point.
    MakeMountPoint,
    /// Mounting.
    Mount,
    /// Removing the mount point.
    RemoveMountPoint,
    /// Unmounting.
    Unmount,
    /// Removing the dm device.
    RemoveDevice,
    /// Detaching the loop device.
    DetachLoop,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::ResolveSource => "resolve the source",
            Step::AttachLoop => "attach a loop device",
            Step::CreateDevice => "create the dm device",
            Step::LoadTable => "load the verity table",
            Step::Resume => "resume the dm device",
            Step::MakeNode => "make the device node",
            Step::CheckStatus => "check the verity status",
            Step::MakeMountPoint => "create the mount point",
            Step::Mount => "mount",
            Step::RemoveMountPoint => "remove the mount point",
            Step::Unmount => "unmount",
            Step::RemoveDevice => "remove the dm device",
            Step::DetachLoop => "detach the loop device",
        })
    }
}

/// Why an apply or teardown failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A raw-block volume without `dm_verity`, and unverified volumes are not allowed.
    #[error("Refused {0} volume without dm_verity: unverified volumes are not allowed")]
    Unverified(VolumeType),
    /// The volume names no filesystem type and none can be assumed.
    #[error("Missing fs_type for volume_type {0}")]
    NoFsType(VolumeType),
    /// The source is not something we mount.
    #[error("Invalid source {path:?}: {why}")]
    Source {
        /// The path.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// The mount point cannot be used.
    #[error("Invalid mount point {path:?}: {why}")]
    MountPoint {
        /// The path.
        path: PathBuf,
        /// Why.
        why: &'static str,
    },
    /// Something else is mounted at the mount point.
    #[error("Mount point {0:?} is already in use by another mount")]
    MountPointBusy(PathBuf),
    /// The planner refused.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The verity device does not report `V` right after activation.
    #[error(
        "Verity device {name} reports {status:?} instead of V: the image is corrupted or the root hash is wrong"
    )]
    NotVerified {
        /// The device.
        name: DmName,
        /// Its status line.
        status: String,
    },
    /// A check failed after system changes, and undoing them failed too.
    #[error("{error} (and rolling back failed: {})", undo_failures.join("; "))]
    RollbackFailed {
        /// The error that started the rollback.
        error: Box<ApplyError>,
        /// Undo steps that failed (what may have been left behind).
        undo_failures: Vec<String>,
    },
    /// A system step failed (everything done before it was undone).
    #[error("Failed to {step}{}", undo_note(undo_failures))]
    Step {
        /// The step.
        step: Step,
        /// The system error.
        #[source]
        source: SysError,
        /// Undo steps that failed in turn (what may have been left behind).
        undo_failures: Vec<String>,
    },
}

fn undo_note(failures: &[String]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(" (and rolling back failed: {})", failures.join("; "))
    }
}

impl ApplyError {
    /// Undo steps that failed after this error (what may have been left behind).
    pub fn undo_failures(&self) -> &[String] {
        match self {
            ApplyError::Step { undo_failures, .. }
            | ApplyError::RollbackFailed { undo_failures, .. } => undo_failures,
            _ => &[],
        }
    }

    /// Attaches failed undo steps to the error.
    pub(crate) fn with_undo_failures(self, failures: Vec<String>) -> Self {
        if failures.is_empty() {
            return self;
        }
        match self {
            ApplyError::Step { step, source, .. } => ApplyError::Step {
                step,
                source,
                undo_failures: failures,
            },
            other => ApplyError::RollbackFailed {
                error: Box::new(other),
                undo_failures: failures,
            },
        }
    }
}
