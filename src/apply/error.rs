//! Errors of apply and teardown: which step failed, and why.

use crate::volume::shown;
use std::fmt;
use std::path::PathBuf;

use crate::system::{DmName, SysError};
use crate::trust::KernelSignatureError;
use crate::verity::{VerityError, VerityTable};

/// A step of apply or teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Reading the mount table and the dm devices.
    ReadState,
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
            Step::ReadState => "read the mount table and dm devices",
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
    /// Something else is mounted at the mount point.
    #[error("Mount point {} is already in use by another mount", shown(.0))]
    MountPointBusy(PathBuf),
    /// The top mount at the mount point is not ours: it is left alone.
    #[error(
        "Mount point {} holds another mount on top of ours ({device}, {fs_type}): left alone, nothing removed",
        shown(mount_point)
    )]
    ForeignMount {
        /// The mount point.
        mount_point: PathBuf,
        /// The other mount's source.
        device: String,
        /// Its filesystem type.
        fs_type: String,
    },
    /// Our mount is hidden by a mount over a parent directory: it cannot be unmounted.
    #[error(
        "Cannot unmount {}: a mount over one of its parent directories hides it (it is still in the mount table); nothing removed", shown(.0)
    )]
    Hidden(PathBuf),
    /// The loop device attached for a file is not a block device.
    #[error("The loop device {} is not a block device", shown(.0))]
    NotBlock(PathBuf),
    /// The table could not be built for the device.
    #[error(transparent)]
    Table(#[from] VerityError),
    /// A dm device with our name exists with a table other than the planned one.
    #[error("Device-mapper device {name} exists with another table ({active}): refusing to use it")]
    TableMismatch {
        /// The device.
        name: DmName,
        /// Its active table.
        active: Box<VerityTable>,
    },
    /// The kernel refused the table because of its root-hash signature.
    #[error(transparent)]
    KernelSignature(KernelSignatureError),
    /// The kernel refused a table without a signature: it requires them.
    #[error(
        "The kernel refused the unsigned table of {name} (ENOKEY): it requires root-hash signatures (dm_verity.require_signatures=1), and this volume has none or kernel_signatures is off"
    )]
    KernelRequiresSignature {
        /// The device.
        name: DmName,
    },
    /// The kernel's table of our device has another root hash than the authorized one.
    #[error(
        "The kernel's table of {name} has root hash {active}, not the authorized {authorized}: refusing to use it"
    )]
    RootHashChanged {
        /// The device.
        name: DmName,
        /// The root hash the policy authorized.
        authorized: String,
        /// The one in the kernel's table.
        active: String,
    },
    /// The kernel's table of our device cannot be read as a verity table.
    #[error("Cannot read back the table of {name}")]
    UnreadableTable {
        /// The device.
        name: DmName,
        /// Why.
        #[source]
        source: VerityError,
    },
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
    /// The mount's first read failed verification: the data is not what the root hash says.
    #[error(
        "The image on {} does not match root hash {root_hash}: the verity device {name} reported corruption on the first read (a wrong root hash, or a corrupted image)",
        shown(device)
    )]
    Mismatch {
        /// The source.
        device: PathBuf,
        /// The root hash asked for.
        root_hash: String,
        /// The verity device.
        name: DmName,
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
    /// A teardown refused before changing anything: another mount on top of ours, or ours
    /// hidden by a mount over a parent directory. The volume is as it was.
    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            ApplyError::ForeignMount { .. } | ApplyError::Hidden(_)
        )
    }

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
