//! Applying a [`Plan`] to the system as a transaction, and tearing it down again.
//!
//! Apply: attach a read-only autoclear loop device for a file source, create the dm device
//! read-only, load the verity table (with `kernel_signatures`, on this thread with the
//! volume's signature key in its keyring: the kernel's refusal is a permission refusal), resume,
//! make the `/dev/mapper` node, read the kernel's table back (its root hash must be the one
//! authorized, then the whole table the planned one) and check that the status says `V`,
//! create the mount point, mount. Every step records its undo; any failure unwinds all of them and the error names
//! the step. What is already there and identical (compared with the kernel's own table) is
//! success and creates nothing; an existing device with our name and another table is
//! refused. Decides nothing else: every rule was applied before the plan was made.
//!
//! Teardown, in reverse: unmount → remove the dm device (deferred when busy) → detach the
//! loop device → remove the node. Removing what is already gone is success. Holds no state:
//! what exists is read back from the kernel.

mod error;
mod overlay;
mod teardown;
mod txn;

use std::path::{Path, PathBuf};

pub use error::{ApplyError, Step};
pub use overlay::{AppliedOverlay, apply_overlay, teardown_overlay};
pub use teardown::{Known, Teardown, teardown};

use crate::plan::{Plan, VerityPlan};
use crate::resolve::{FileId, Source};
use crate::system::kernel::{self, View};
use crate::system::{DevNum, DmName, FileKind, SysError, System};
use crate::trust::kernel_signature_error;
use crate::verity::VerityTable;
use crate::volume::VolumeType;
use txn::{Txn, Undo};

/// What an apply did (or found already done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The volume's type.
    pub volume_type: VolumeType,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The block device under the mount (the dm node for verity volumes).
    pub mounted_device: PathBuf,
    /// Its device number (what the mount table shows for the mount).
    pub mounted_dev: Option<DevNum>,
    /// The verity device's name.
    pub dm_name: Option<DmName>,
    /// The active table, as the kernel reports it (devices as `major:minor`).
    pub table: Option<VerityTable>,
    /// The verity status (`V`).
    pub status: Option<String>,
    /// The loop device attached for a file source.
    pub loop_device: Option<PathBuf>,
    /// Directories created for the mount point (outermost first).
    pub created_dirs: Vec<PathBuf>,
    /// Nothing was done: the same volume was already mounted there.
    pub already_applied: bool,
    /// An existing verity device (same volume, same device) was shared.
    pub shared_device: bool,
}

impl Applied {
    fn new(plan: &Plan) -> Self {
        Self {
            volume_type: plan.volume_type,
            mount_point: plan.target.path.clone(),
            mounted_device: PathBuf::new(),
            mounted_dev: None,
            dm_name: plan.verity.as_ref().map(|v| v.name.clone()),
            table: None,
            status: None,
            loop_device: None,
            created_dirs: Vec::new(),
            already_applied: false,
            shared_device: false,
        }
    }
}

pub(super) fn step(s: Step) -> impl FnOnce(SysError) -> ApplyError {
    move |source| ApplyError::Step {
        step: s,
        source,
        undo_failures: Vec::new(),
    }
}

/// Applies `plan`; on failure everything done is undone.
pub fn apply(sys: &dyn System, plan: &Plan) -> Result<Applied, ApplyError> {
    let view = View::read(sys).map_err(step(Step::ReadState))?;
    if let Some(found) = already_applied(sys, &view, plan)? {
        return Ok(found);
    }
    let mut txn = Txn::new(sys);
    match build(sys, &mut txn, &view, plan) {
        Ok(applied) => {
            txn.commit();
            Ok(applied)
        }
        Err(e) => {
            let leaked = txn.rollback();
            Err(e.with_undo_failures(leaked))
        }
    }
}

/// The steps of an apply, each recording its undo in `txn`.
fn build(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    view: &View,
    plan: &Plan,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::new(plan);
    match &plan.verity {
        Some(v) => {
            let dev = match view.device(&v.name) {
                // The same volume on the same device is active already (another mount point):
                // share it, as systemd-veritysetup treats "already active" as success — once
                // the kernel's table is checked to be the planned one.
                Some(dev) => {
                    applied.shared_device = true;
                    dev
                }
                None => {
                    let (device, _) = attach(sys, txn, &plan.source, &mut applied)?;
                    create(sys, txn, v, &device)?
                }
            };
            applied.mounted_device = ensure_node(sys, txn, &v.name, dev)?;
            applied.mounted_dev = Some(dev);
            let (table, status) = check_active(sys, v, &plan.source)?;
            applied.table = Some(table);
            applied.status = Some(status);
        }
        None => {
            let (device, dev) = attach(sys, txn, &plan.source, &mut applied)?;
            applied.mounted_device = device;
            applied.mounted_dev = Some(dev);
        }
    }
    applied.created_dirs = make_dirs(sys, txn, &plan.target.missing_dirs)?;
    let mount = &plan.mount;
    sys.mount(
        &applied.mounted_device,
        &plan.target.path,
        &mount.fs_type,
        mount.flags,
        &mount.data,
    )
    .map_err(|e| mount_error(sys, plan, e))?;
    txn.record(Undo::Unmount(plan.target.path.clone()));
    // The dm device (or the mount) holds the loop device now: let go of ours, so that
    // autoclear detaches it when the last user goes, whatever the teardown path.
    if let Some(lo) = &applied.loop_device {
        sys.loop_release(lo).map_err(step(Step::AttachLoop))?;
    }
    Ok(applied)
}

/// A failed mount of a verity device that then reports corruption: the image does not match
/// the root hash (the first read, the filesystem's superblock, failed verification). Said so,
/// instead of the mount's bare `EIO`.
fn mount_error(sys: &dyn System, plan: &Plan, e: SysError) -> ApplyError {
    if let Some(v) = &plan.verity
        && e.errno() == Some(nix::libc::EIO)
        && sys
            .dm_status(&v.name)
            .is_ok_and(|s| s.trim_start().starts_with('C'))
    {
        return ApplyError::Mismatch {
            device: plan.source.path().to_owned(),
            root_hash: v.params.root_hash().to_hex(),
            name: v.name.clone(),
        };
    }
    step(Step::Mount)(e)
}

/// The block device to build on: the source itself, or a loop device for a file.
fn attach(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    source: &Source,
    applied: &mut Applied,
) -> Result<(PathBuf, DevNum), ApplyError> {
    match source {
        Source::Block { path, dev, .. } => Ok((path.clone(), *dev)),
        Source::File { path, .. } => {
            let lo = sys.loop_attach(path).map_err(step(Step::AttachLoop))?;
            txn.record(Undo::DetachLoop(lo.clone()));
            applied.loop_device = Some(lo.clone());
            match sys.stat(&lo).map_err(step(Step::AttachLoop))?.kind {
                FileKind::Block(dev) => Ok((lo, dev)),
                _ => Err(ApplyError::NotBlock(lo)),
            }
        }
    }
}

/// Creates, loads and resumes the verity device on `device`; returns its device number.
fn create(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    v: &VerityPlan,
    device: &Path,
) -> Result<DevNum, ApplyError> {
    let table = v.table(&device.to_string_lossy())?;
    let dev = sys.dm_create(&v.name).map_err(step(Step::CreateDevice))?;
    txn.record(Undo::RemoveDm(v.name.clone()));
    match &v.kernel_signature {
        // Key, load and unlink in one call, on this thread: the key is in its keyring only.
        Some(k) => sys.dm_load_signed(&v.name, &table, &k.description, &k.signature),
        None => sys.dm_load(&v.name, &table),
    }
    .map_err(|e| load_error(v, e))?;
    sys.dm_resume(&v.name).map_err(step(Step::Resume))?;
    Ok(dev)
}

/// A failed table load: the kernel's verdict on a signature (or on a missing one) is a
/// permission refusal; anything else is the step's failure.
fn load_error(v: &VerityPlan, e: SysError) -> ApplyError {
    let errno = e.errno().map(nix::errno::Errno::from_raw);
    match (&v.kernel_signature, errno) {
        (Some(k), Some(errno)) => match kernel_signature_error(errno, &k.description) {
            Some(refused) => ApplyError::KernelSignature(refused),
            None => step(Step::LoadTable)(e),
        },
        (None, Some(nix::errno::Errno::ENOKEY)) => ApplyError::KernelRequiresSignature {
            name: v.name.clone(),
        },
        _ => step(Step::LoadTable)(e),
    }
}

/// Reads back the active device: its root hash must be the authorized one (checked first,
/// on its own: the allowlist and the signature vouched for that hash), its table the
/// planned one on the source, and its status `V`.
fn check_active(
    sys: &dyn System,
    v: &VerityPlan,
    source: &Source,
) -> Result<(VerityTable, String), ApplyError> {
    let table = kernel::active_table(sys, &v.name).map_err(|e| match e {
        kernel::TableReadError::Sys(e) => step(Step::CheckStatus)(e),
        kernel::TableReadError::Parse { name, source } => {
            ApplyError::UnreadableTable { name, source }
        }
    })?;
    if table.target.root_hash != *v.params.root_hash() {
        return Err(ApplyError::RootHashChanged {
            name: v.name.clone(),
            authorized: v.params.root_hash().to_hex(),
            active: table.target.root_hash.to_hex(),
        });
    }
    let on_source = table
        .target
        .data_device
        .parse::<DevNum>()
        .ok()
        .filter(|dev| presents(sys, source, *dev));
    if !on_source.is_some_and(|dev| v.matches(&table, dev)) {
        return Err(ApplyError::TableMismatch {
            name: v.name.clone(),
            active: Box::new(table),
        });
    }
    let status = sys.dm_status(&v.name).map_err(step(Step::CheckStatus))?;
    if !status.trim_start().starts_with('V') {
        return Err(ApplyError::NotVerified {
            name: v.name.clone(),
            status,
        });
    }
    Ok((table, status))
}

/// Whether the block device `dev` presents `source`: the device itself, or a loop device
/// backed by that very file (same device and inode, whatever path named it).
fn presents(sys: &dyn System, source: &Source, dev: DevNum) -> bool {
    match source {
        Source::Block { dev: d, .. } => *d == dev,
        Source::File { id, .. } => sys.loop_backing_file(dev).is_ok_and(|backing| {
            backing.is_some_and(|b| {
                sys.stat(&b).is_ok_and(|st| {
                    FileId {
                        dev: st.dev,
                        ino: st.ino,
                    } == *id
                })
            })
        }),
    }
}

/// Makes `/dev/mapper/<name>` for `dev` (replacing a stale node), recording its removal.
fn ensure_node(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    name: &DmName,
    dev: DevNum,
) -> Result<PathBuf, ApplyError> {
    let node = PathBuf::from(name.node_path());
    match sys.stat(&node) {
        Ok(st) if st.kind == FileKind::Block(dev) => return Ok(node),
        Ok(_) => sys.remove_file(&node).map_err(step(Step::MakeNode))?,
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(step(Step::MakeNode)(e)),
    }
    sys.make_node(&node, dev).map_err(step(Step::MakeNode))?;
    txn.record(Undo::RemoveNode(node.clone()));
    Ok(node)
}

/// Creates the missing directories (outermost first), recording their removal; one that
/// appeared since the plan was made is left alone.
pub(super) fn make_dirs(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    missing: &[PathBuf],
) -> Result<Vec<PathBuf>, ApplyError> {
    let mut created = Vec::new();
    for dir in missing {
        if sys.make_dir(dir).map_err(step(Step::MakeMountPoint))? {
            txn.record(Undo::RemoveDir(dir.clone()));
            created.push(dir.clone());
        }
    }
    Ok(created)
}

/// If the mount point already carries this plan's volume, what is there; an error if it
/// carries something else.
fn already_applied(
    sys: &dyn System,
    view: &View,
    plan: &Plan,
) -> Result<Option<Applied>, ApplyError> {
    let Some(top) = view.top_mount(&plan.target.path) else {
        return Ok(None);
    };
    let busy = || ApplyError::MountPointBusy(plan.target.path.clone());
    let mut found = Applied {
        already_applied: true,
        ..Applied::new(plan)
    };
    match &plan.verity {
        Some(v) => {
            if view.device(&v.name) != Some(top.dev) {
                return Err(busy());
            }
            let (table, status) = check_active(sys, v, &plan.source).map_err(|e| match e {
                ApplyError::TableMismatch { .. } => busy(),
                other => other,
            })?;
            found.mounted_device = PathBuf::from(v.name.node_path());
            found.mounted_dev = Some(top.dev);
            found.table = Some(table);
            found.status = Some(status);
        }
        None if presents(sys, &plan.source, top.dev) => {
            found.mounted_device = PathBuf::from(&top.source);
            found.mounted_dev = Some(top.dev);
        }
        None => return Err(busy()),
    }
    Ok(Some(found))
}
