//! A container rootfs: an overlay over volumes this manager mounted. Built with its layers
//! locked (none can go while it is being built), checked against the manager's own entries
//! and against the kernel (each layer's own mount, nothing over it), never over or into
//! another overlay's writable directories; removed by unmounting it and releasing its
//! layers — each goes when no rootfs uses it any more and its own removal was asked for. A
//! layer whose teardown fails keeps the rootfs entry (removing) so that a retry finishes.

use std::path::{Path, PathBuf};

use super::state::{Entry, Phase, StorageKind, replace};
use super::{ManagerError, MountedVolume, VolumeManager, mount_key};
use crate::apply::{self, AppliedOverlay, ApplyError};
use crate::plan::{self, OverlayPlan};
use crate::policy::Layer;
use crate::request::OverlayRequest;
use crate::resolve;
use crate::volume::shown;

impl VolumeManager {
    /// Adds a rootfs overlay (a claim more when it is there already).
    pub(super) fn add_overlay(&self, req: &OverlayRequest) -> Result<MountedVolume, ManagerError> {
        self.finish_removal(&req.mount_point)?;
        let keys = overlay_keys(req);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let _held = self.locks.lock(&keys);
        self.add_overlay_locked(req, true)
    }

    /// The same, its locks held; `claim`: a re-add counts one more holder.
    pub(super) fn add_overlay_locked(
        &self,
        req: &OverlayRequest,
        claim: bool,
    ) -> Result<MountedVolume, ManagerError> {
        let plan = self.plan_overlay(req)?;
        match self.entry_at(&req.mount_point) {
            Some(e)
                if e.key == plan.key() && e.lowers == plan.lowers && e.phase == Phase::Active =>
            {
                self.reapply_overlay(e, &plan, claim)
            }
            Some(e) => Err(self.conflict(&e)),
            None => {
                let pending = self.record_pending(self.overlay_entry(&plan))?;
                let applied = apply::apply_overlay(self.sys.as_ref(), &plan);
                self.record_overlay(pending, applied)
            }
        }
    }

    /// Authorizes, resolves and plans an overlay against this manager's entries.
    pub(super) fn plan_overlay(&self, req: &OverlayRequest) -> Result<OverlayPlan, ManagerError> {
        let writable = req.upper.iter().flat_map(|(u, w)| [u, w]);
        for p in std::iter::once(&req.mount_point).chain(writable) {
            self.check_not_writable(p, &req.mount_point, true)?;
        }
        let layer_of = |lower: &Path| match self.entry_at(lower) {
            // Released: its removal was asked for, but a rootfs still holds it mounted.
            Some(e)
                if matches!(e.phase, Phase::Active | Phase::Released)
                    && e.kind != StorageKind::Overlay =>
            {
                if e.dm_name.is_some() {
                    Layer::Verified(e.mounted_device)
                } else {
                    Layer::Unverified(e.mounted_device)
                }
            }
            _ => Layer::Unknown,
        };
        let auth = self.policy.authorize_overlay(req, &layer_of)?;
        let resolved = resolve::overlay(self.sys.as_ref(), &auth)?;
        Ok(plan::plan_overlay(&auth, resolved)?)
    }

    /// Refuses `path` when it lies in (or, `overlapping`, contains) another entry's writable
    /// directories: a container writes there, and could turn any directory on the way into a
    /// symlink between the checks and the mount; nor may two rootfs share an upper.
    pub(super) fn check_not_writable(
        &self,
        path: &Path,
        owner: &Path,
        overlapping: bool,
    ) -> Result<(), ManagerError> {
        let state = self.state();
        let taken = state
            .entries
            .iter()
            .filter(|e| e.mount_point != owner)
            .flat_map(|e| e.writable.iter())
            .find(|w| path.starts_with(w) || (overlapping && w.starts_with(path)));
        match taken {
            Some(w) => Err(ManagerError::Writable {
                path: path.to_owned(),
                writable: w.clone(),
            }),
            None => Ok(()),
        }
    }

    fn overlay_entry(&self, plan: &OverlayPlan) -> Entry {
        Entry {
            mount_point: plan.target.path.clone(),
            kind: StorageKind::Overlay,
            source: "overlay".into(),
            key: plan.key(),
            dm_name: None,
            root_hash: None,
            loop_device: None,
            mounted_device: None,
            created_dirs: plan.missing_dirs(),
            phase: Phase::Pending,
            holders: 1,
            lowers: plan.lowers.clone(),
            trees: plan.trees.clone(),
            writable: plan.writable(),
        }
    }

    /// The overlay recorded active: mounted again when the kernel does not show it (and the
    /// device it is on recorded), one claim more when asked.
    fn reapply_overlay(
        &self,
        entry: Entry,
        plan: &OverlayPlan,
        claim: bool,
    ) -> Result<MountedVolume, ManagerError> {
        let applied = apply::apply_overlay(self.sys.as_ref(), plan)?;
        let mut updated = entry;
        if !applied.already_applied {
            updated.mounted_device = applied.mounted_dev;
        }
        if claim {
            updated.holders = updated.holders.saturating_add(1);
        }
        let mut state = self.state();
        let mut next = state.clone();
        replace(&mut next, updated.clone());
        self.commit(&mut state, next)?;
        Ok(self.mounted(&state, &updated, applied.already_applied))
    }

    fn record_overlay(
        &self,
        pending: Entry,
        applied: Result<AppliedOverlay, ApplyError>,
    ) -> Result<MountedVolume, ManagerError> {
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                if e.undo_failures().is_empty() {
                    self.forget(&pending.mount_point, &[])?;
                }
                return Err(e.into());
            }
        };
        let active = Entry {
            created_dirs: applied.created_dirs.clone(),
            mounted_device: applied.mounted_dev,
            phase: Phase::Active,
            ..pending
        };
        if let Err(e) = self.replace_entry(active.clone()) {
            let _ = apply::teardown_overlay(
                self.sys.as_ref(),
                &active.mount_point,
                active.mounted_device,
                &active.trees,
                &active.created_dirs,
            );
            return Err(e);
        }
        let state = self.state();
        Ok(self.mounted(&state, &active, applied.already_applied))
    }

    /// Takes an overlay down (its locks held, with its layers'), then releases its layers.
    /// The entry goes once every layer it released is torn down; a layer that fails keeps it
    /// (removing, with the layers still to release), so a retry finishes the job.
    pub(super) fn remove_overlay(&self, entry: Entry) -> Result<(), ManagerError> {
        let before = entry.clone();
        let removing = Entry {
            phase: Phase::Removing,
            ..entry
        };
        self.replace_entry(removing.clone())?;
        let dirs = self.state().dirs_to_remove(&removing);
        if let Err(e) = apply::teardown_overlay(
            self.sys.as_ref(),
            &removing.mount_point,
            removing.mounted_device,
            &removing.trees,
            &dirs,
        ) {
            return Err(self.unless_untouched(before, e));
        }
        // Its directories are gone, or leftovers now: they must not keep its layers' own
        // directories (a parent they share) from going with them.
        let removing = self.hand_over_dirs(removing, &dirs)?;
        let (left, first_error) = self.release_layers(&removing.lowers, &removing.mount_point);
        match first_error {
            None => self.forget(&removing.mount_point, &[]),
            Some(e) => {
                self.replace_entry(Entry {
                    lowers: left,
                    ..removing
                })?;
                Err(e)
            }
        }
    }

    /// Tears down the layers whose removal was asked for while this rootfs used them, and
    /// that no other rootfs uses — all of them, past failures; returns those that failed and
    /// the first error.
    fn release_layers(
        &self,
        lowers: &[PathBuf],
        overlay: &Path,
    ) -> (Vec<PathBuf>, Option<ManagerError>) {
        let (mut left, mut first) = (Vec::new(), None);
        for lower in lowers {
            let Some(layer) = self.entry_at(lower) else {
                continue;
            };
            let release = matches!(layer.phase, Phase::Released | Phase::Removing)
                && !self.used_by_overlay(lower, Some(overlay));
            if !release {
                continue;
            }
            let removing = Entry {
                phase: Phase::Removing,
                ..layer
            };
            if let Err(e) = self.remove_locked(removing) {
                left.push(lower.clone());
                first.get_or_insert(e);
            }
        }
        (left, first)
    }

    /// The "already holds a different volume" refusal for the entry at a mount point.
    pub(super) fn conflict(&self, e: &Entry) -> ManagerError {
        ManagerError::Conflict {
            mount_point: e.mount_point.clone(),
            existing: e
                .dm_name
                .as_ref()
                .map_or_else(|| shown(Path::new(&e.source)), ToString::to_string),
        }
    }
}

/// The locks an overlay's add takes: its own, and its layers' mount points (none of them can
/// be removed meanwhile).
pub(super) fn overlay_keys(req: &OverlayRequest) -> Vec<String> {
    let mut keys = vec![
        format!("overlay:{}", req.mount_point.display()),
        mount_key(&req.mount_point),
    ];
    keys.extend(req.lowers.iter().map(|l| mount_key(l)));
    keys.sort();
    keys.dedup();
    keys
}
