//! Applying a plan to the system as a transaction, and tearing it down again.
//!
//! Apply: resolve the source (block device as is; regular file → read-only autoclear loop
//! device), create the dm device read-only, load the verity table, resume, make the
//! `/dev/mapper` node, check the status says `V`, create the mount point, mount
//! `ro,nodev,nosuid`. Every step records its undo; any failure unwinds all of them and the
//! error names the step. Applying what is already there is success and creates nothing.
//!
//! Teardown, in reverse: unmount → remove the dm device (deferred when busy) → detach the
//! loop device → remove the node. Removing what is already gone is success. Holds no state:
//! what exists is read back from the kernel.

mod error;
mod resolve;
mod teardown;
mod txn;

use std::path::{Path, PathBuf};

pub use error::{ApplyError, Step};
pub use resolve::{Resolved, SourceKind, confine_mount_point, resolve_source};
pub use teardown::{Known, Teardown, teardown};

use crate::plan::{self, BlockDevice, DmName, MountFlags, PlanError};
use crate::system::{DevNum, FileKind, SysError, System};
use crate::verity::VerityOption;
use crate::volume::{Volume, VolumeType};
use txn::{Txn, Undo};

/// Choices the caller (its policy) makes for an apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Optional dm-verity arguments for every verity device.
    pub verity_options: Vec<VerityOption>,
    /// Filesystem options the host may pass.
    pub allowed_fs_options: Vec<String>,
    /// Whether a regular file may be a source (through a loop device).
    pub allow_files: bool,
    /// Whether raw-block volumes without `dm_verity` may be mounted.
    pub allow_unverified: bool,
    /// When set, the mount point must lie inside this directory, reached without symlinks.
    pub mount_root: Option<PathBuf>,
}

impl ApplyOptions {
    /// The options a policy asks for.
    pub fn from_policy(p: &crate::policy::Policy) -> Self {
        Self {
            verity_options: p.verity_options(),
            allowed_fs_options: p.allowed_fs_options.clone(),
            allow_files: p.allow_files,
            allow_unverified: p.allow_unverified,
            mount_root: Some(p.mount_root.clone()),
        }
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            verity_options: Vec::new(),
            allowed_fs_options: plan::DEFAULT_FS_OPTIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            allow_files: true,
            allow_unverified: false,
            mount_root: None,
        }
    }
}

/// What an apply did (or found already done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The volume's type.
    pub volume_type: VolumeType,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The block device under the mount (the dm node for verity volumes).
    pub mounted_device: PathBuf,
    /// The verity device's name.
    pub dm_name: Option<DmName>,
    /// The table as the kernel reports it.
    pub table: Option<String>,
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

/// Applies `volume` from `source` (default: the volume's own) at `mount_point`.
pub fn apply(
    sys: &dyn System,
    volume: &Volume,
    source: Option<&str>,
    mount_point: &Path,
    opts: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let volume_type = volume.volume_type();
    let (fs_type, options) = match volume {
        Volume::RawBlock(r) => {
            if r.verity.is_none() && !opts.allow_unverified {
                return Err(ApplyError::Unverified(volume_type));
            }
            (r.fs_type.as_str(), &r.options)
        }
        Volume::DirectBlock(d) => (d.fs_type.as_str(), &d.options),
        Volume::Nydus(_) | Volume::GuestPull(_) => {
            return Err(ApplyError::Plan(PlanError::Unsupported(volume_type)));
        }
    };
    if fs_type.is_empty() {
        return Err(ApplyError::NoFsType(volume_type));
    }
    let allowed: Vec<&str> = opts.allowed_fs_options.iter().map(String::as_str).collect();
    let (flags, data) = plan::mount_options(options, MountFlags::VERITY, &allowed)?;
    if let Some(root) = &opts.mount_root {
        confine_mount_point(sys, root, mount_point)?;
    }
    let source = source.or(volume.source()).unwrap_or_default();
    let resolved = resolve_source(sys, source, opts.allow_files)?;
    let verity = volume.verity();
    let dm_name = verity.map(|p| DmName::for_verity(&resolved.identity, p, &opts.verity_options));

    // Already applied? Then do nothing at all.
    if let Some(found) = already_applied(sys, mount_point, &resolved, dm_name.as_ref())? {
        return Ok(Applied {
            volume_type,
            already_applied: true,
            ..found
        });
    }

    let mut txn = Txn::new(sys);
    let result = (|| {
        let mut applied = Applied {
            volume_type,
            mount_point: mount_point.to_owned(),
            mounted_device: PathBuf::new(),
            dm_name: dm_name.clone(),
            table: None,
            status: None,
            loop_device: None,
            created_dirs: Vec::new(),
            already_applied: false,
            shared_device: false,
        };
        let existing = match &dm_name {
            Some(name) => find_dm(sys, name)?,
            None => None,
        };
        if let (Some(name), Some(dev)) = (&dm_name, existing) {
            // The same volume on the same device is active already (another mount point):
            // share it, as systemd-veritysetup treats "already active" as success.
            applied.shared_device = true;
            applied.mounted_device = ensure_node(sys, &mut txn, name, dev)?;
        } else {
            let device = attach(sys, &mut txn, &resolved, &mut applied)?;
            match (verity, &dm_name) {
                (Some(params), Some(name)) => {
                    plan::check_device(params, &device)?;
                    let vp = plan::verity_plan(
                        params,
                        &device.path,
                        &device.identity,
                        opts.verity_options.clone(),
                    )?;
                    debug_assert_eq!(&vp.name, name);
                    let dev = sys.dm_create(name).map_err(step(Step::CreateDevice))?;
                    txn.record(Undo::RemoveDm(name.clone()));
                    sys.dm_load(name, &vp.table)
                        .map_err(step(Step::LoadTable))?;
                    sys.dm_resume(name).map_err(step(Step::Resume))?;
                    applied.mounted_device = ensure_node(sys, &mut txn, name, dev)?;
                }
                _ => applied.mounted_device = PathBuf::from(&device.path),
            }
        }
        if let Some(name) = &dm_name {
            let status = sys.dm_status(name).map_err(step(Step::CheckStatus))?;
            if !status.trim_start().starts_with('V') {
                return Err(ApplyError::NotVerified {
                    name: name.clone(),
                    status,
                });
            }
            applied.table = Some(sys.dm_table(name).map_err(step(Step::CheckStatus))?);
            applied.status = Some(status);
        }
        applied.created_dirs = make_dirs(sys, &mut txn, mount_point)?;
        sys.mount(&applied.mounted_device, mount_point, fs_type, flags, &data)
            .map_err(step(Step::Mount))?;
        txn.record(Undo::Unmount(mount_point.to_owned()));
        // The dm device (or the mount) holds the loop device now: let go of ours, so that
        // autoclear detaches it when the last user goes, whatever the teardown path.
        if let Some(lo) = &applied.loop_device {
            sys.loop_release(lo).map_err(step(Step::AttachLoop))?;
        }
        Ok(applied)
    })();
    match result {
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

fn step(s: Step) -> impl FnOnce(SysError) -> ApplyError {
    move |source| ApplyError::Step {
        step: s,
        source,
        undo_failures: Vec::new(),
    }
}

/// Attaches a loop device for a file source; returns the block device to build on.
fn attach(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    resolved: &Resolved,
    applied: &mut Applied,
) -> Result<BlockDevice, ApplyError> {
    let (path, dev) = match resolved.kind {
        SourceKind::Block(dev) => (resolved.path.clone(), dev),
        SourceKind::File => {
            let lo = sys
                .loop_attach(&resolved.path)
                .map_err(step(Step::AttachLoop))?;
            txn.record(Undo::DetachLoop(lo.clone()));
            applied.loop_device = Some(lo.clone());
            let st = sys.stat(&lo).map_err(step(Step::AttachLoop))?;
            let FileKind::Block(dev) = st.kind else {
                return Err(ApplyError::Source {
                    path: lo.display().to_string(),
                    why: "the loop device is not a block device",
                });
            };
            (lo, dev)
        }
    };
    let info = sys.block_info(dev).map_err(step(Step::ResolveSource))?;
    Ok(BlockDevice {
        path: path.display().to_string(),
        identity: resolved.identity.clone(),
        size: info.size,
        logical_block_size: info.logical_block_size,
    })
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

/// The directories `mount_point` needs created, outermost first (nothing is created).
pub fn missing_dirs(sys: &dyn System, mount_point: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = mount_point
        .ancestors()
        .take_while(|d| sys.stat(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Creates the mount point and any missing parents, recording their removal.
fn make_dirs(
    sys: &dyn System,
    txn: &mut Txn<'_>,
    mount_point: &Path,
) -> Result<Vec<PathBuf>, ApplyError> {
    let mut missing = Vec::new();
    for dir in mount_point.ancestors() {
        match sys.stat(dir) {
            Ok(st) if st.kind == FileKind::Directory => break,
            Ok(_) => {
                return Err(ApplyError::MountPoint {
                    path: dir.to_owned(),
                    why: "exists and is not a directory",
                });
            }
            Err(e) if e.is_not_found() => missing.push(dir.to_owned()),
            Err(e) => return Err(step(Step::MakeMountPoint)(e)),
        }
    }
    let mut created = Vec::new();
    for dir in missing.into_iter().rev() {
        if sys.make_dir(&dir).map_err(step(Step::MakeMountPoint))? {
            txn.record(Undo::RemoveDir(dir.clone()));
            created.push(dir);
        }
    }
    Ok(created)
}

fn find_dm(sys: &dyn System, name: &DmName) -> Result<Option<DevNum>, ApplyError> {
    let list = sys.dm_list().map_err(step(Step::CreateDevice))?;
    Ok(list
        .into_iter()
        .find(|d| d.name == name.as_str())
        .map(|d| d.dev))
}

/// If `mount_point` already carries this volume, what is there; an error if it carries
/// something else.
fn already_applied(
    sys: &dyn System,
    mount_point: &Path,
    resolved: &Resolved,
    dm_name: Option<&DmName>,
) -> Result<Option<Applied>, ApplyError> {
    let mounts = sys.mounts().map_err(step(Step::Mount))?;
    let Some(top) = mounts.iter().rev().find(|m| m.target == mount_point) else {
        return Ok(None);
    };
    let ours = match dm_name {
        Some(name) => find_dm(sys, name)?.filter(|dev| *dev == top.dev).is_some(),
        None => match resolved.kind {
            SourceKind::Block(dev) => dev == top.dev,
            // An unverified file volume is mounted on a loop device backed by that very file
            // (same device and inode, whatever path named it).
            SourceKind::File => {
                let same = |p: &Path| {
                    sys.stat(p)
                        .is_ok_and(|st| resolved.identity == resolve::file_identity(&st))
                };
                sys.loop_backing_file(top.dev)
                    .is_ok_and(|backing| backing.is_some_and(|b| same(&b)))
            }
        },
    };
    if !ours {
        return Err(ApplyError::MountPointBusy(mount_point.to_owned()));
    }
    let (table, status) = match dm_name {
        Some(n) => (sys.dm_table(n).ok(), sys.dm_status(n).ok()),
        None => (None, None),
    };
    Ok(Some(Applied {
        volume_type: VolumeType::DirectBlock,
        mount_point: mount_point.to_owned(),
        mounted_device: dm_name
            .map(|n| PathBuf::from(n.node_path()))
            .unwrap_or_else(|| resolved.path.clone()),
        dm_name: dm_name.cloned(),
        table,
        status,
        loop_device: None,
        created_dirs: Vec::new(),
        already_applied: true,
        shared_device: false,
    }))
}
