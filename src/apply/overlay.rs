//! An overlay (a container's rootfs) applied as a transaction — directories made, the
//! overlay mounted — and taken down again: unmounted (only when the top mount is the
//! overlay), its upper and work directories removed with their contents, then the
//! directories it made.

use std::path::{Path, PathBuf};

use super::error::{ApplyError, Step};
use super::teardown::remove_created_dirs;
use super::txn::{Txn, Undo};
use super::{make_dirs, step};
use crate::plan::OverlayPlan;
use crate::system::kernel::View;
use crate::system::{DevNum, MountEntry, System};

/// What applying an overlay did (or found done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedOverlay {
    /// The rootfs.
    pub mount_point: PathBuf,
    /// The overlay's (anonymous) device number, as the mount table shows it.
    pub mounted_dev: Option<DevNum>,
    /// Directories created, outermost first.
    pub created_dirs: Vec<PathBuf>,
    /// Nothing was done: the same overlay was mounted there already.
    pub already_applied: bool,
}

/// Whether a mount is this plan's overlay (the same lower, upper and work directories).
fn is_overlay_of(m: &MountEntry, plan: &OverlayPlan) -> bool {
    m.fs_type == "overlay"
        && plan
            .mount
            .data
            .split(',')
            .all(|o| m.super_options.split(',').any(|s| s == o))
}

/// Mounts the overlay of `plan`; on failure everything done is undone.
pub fn apply_overlay(sys: &dyn System, plan: &OverlayPlan) -> Result<AppliedOverlay, ApplyError> {
    let view = View::read(sys).map_err(step(Step::ReadState))?;
    if let Some(top) = view.top_mount(&plan.target.path) {
        if !is_overlay_of(top, plan) {
            return Err(ApplyError::MountPointBusy(plan.target.path.clone()));
        }
        return Ok(AppliedOverlay {
            mount_point: plan.target.path.clone(),
            mounted_dev: Some(top.dev),
            created_dirs: Vec::new(),
            already_applied: true,
        });
    }
    let mut txn = Txn::new(sys);
    let result = (|| -> Result<AppliedOverlay, ApplyError> {
        let created_dirs = make_dirs(sys, &mut txn, &plan.missing_dirs())?;
        let m = &plan.mount;
        sys.mount(
            Path::new("overlay"),
            &plan.target.path,
            &m.fs_type,
            m.flags,
            &m.data,
        )
        .map_err(step(Step::Mount))?;
        txn.record(Undo::Unmount(plan.target.path.clone()));
        let view = View::read(sys).map_err(step(Step::ReadState))?;
        Ok(AppliedOverlay {
            mount_point: plan.target.path.clone(),
            mounted_dev: view.top_mount(&plan.target.path).map(|t| t.dev),
            created_dirs,
            already_applied: false,
        })
    })();
    match result {
        Ok(a) => {
            txn.commit();
            Ok(a)
        }
        Err(e) => Err(e.with_undo_failures(txn.rollback())),
    }
}

/// Takes an overlay down: unmounted when the top mount at `mount_point` is the one on
/// `mounted_dev` (another mount on top is left alone: an error), then `trees` removed with
/// their contents, then `created_dirs`.
pub fn teardown_overlay(
    sys: &dyn System,
    mount_point: &Path,
    mounted_dev: Option<DevNum>,
    trees: &[PathBuf],
    created_dirs: &[PathBuf],
) -> Result<bool, ApplyError> {
    let view = View::read(sys).map_err(step(Step::ReadState))?;
    let mut unmounted = false;
    if let Some(top) = view.top_mount(mount_point) {
        if mounted_dev.is_some_and(|d| d != top.dev) || top.fs_type != "overlay" {
            return Err(ApplyError::ForeignMount {
                mount_point: mount_point.to_owned(),
                device: top.source.clone(),
                fs_type: top.fs_type.clone(),
            });
        }
        sys.unmount(mount_point).map_err(step(Step::Unmount))?;
        unmounted = true;
    }
    for tree in trees {
        match sys.remove_tree(tree) {
            Err(e) if !e.is_not_found() => return Err(step(Step::RemoveMountPoint)(e)),
            _ => {}
        }
    }
    remove_created_dirs(sys, created_dirs)?;
    Ok(unmounted)
}
