//! A container rootfs: an overlay over volumes this manager mounted. Added with its layers
//! locked (none can go while it is being built) and checked against the manager's own
//! entries; removed by unmounting it and releasing its layers — each goes when no rootfs
//! uses it any more and its own removal was asked for.

use std::path::{Path, PathBuf};

use super::state::{Entry, Phase, StorageKind};
use super::{ManagerError, MountedVolume, VolumeManager, mount_key};
use crate::apply::{self, AppliedOverlay, ApplyError};
use crate::plan::{self, OverlayPlan};
use crate::policy::Layer;
use crate::request::OverlayRequest;
use crate::resolve;

impl VolumeManager {
    pub(super) fn add_overlay(&self, req: &OverlayRequest) -> Result<MountedVolume, ManagerError> {
        let mut keys = vec![
            format!("overlay:{}", req.mount_point.display()),
            mount_key(&req.mount_point),
        ];
        keys.extend(req.lowers.iter().map(|l| mount_key(l)));
        keys.sort();
        keys.dedup();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let _held = self.locks.lock(&keys);
        let layer_of = |lower: &Path| match self.entry_at(lower) {
            Some(e) if e.phase == Phase::Active && e.kind != StorageKind::Overlay => {
                if e.dm_name.is_some() {
                    Layer::Verified
                } else {
                    Layer::Unverified
                }
            }
            _ => Layer::Unknown,
        };
        let auth = self.policy.authorize_overlay(req, &layer_of)?;
        let resolved = resolve::overlay(self.sys.as_ref(), &auth)?;
        let plan = plan::plan_overlay(&auth, resolved)?;
        match self.entry_at(&req.mount_point) {
            Some(e)
                if e.key == plan.key() && e.lowers == plan.lowers && e.phase == Phase::Active =>
            {
                let applied = apply::apply_overlay(self.sys.as_ref(), &plan)?;
                let state = self.state();
                Ok(self.mounted(&state, &e, applied.already_applied))
            }
            Some(e) => Err(ManagerError::Conflict {
                mount_point: req.mount_point.clone(),
                existing: e
                    .dm_name
                    .as_ref()
                    .map_or(e.source.clone(), ToString::to_string),
            }),
            None => {
                let pending = self.record_pending_overlay(&plan)?;
                let applied = apply::apply_overlay(self.sys.as_ref(), &plan);
                self.record_overlay(pending, applied)
            }
        }
    }

    fn record_pending_overlay(&self, plan: &OverlayPlan) -> Result<Entry, ManagerError> {
        let pending = Entry {
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
            lowers: plan.lowers.clone(),
            trees: plan.trees.clone(),
        };
        let mut state = self.state();
        if state.entries.len() >= self.policy.max_volumes {
            return Err(ManagerError::TooMany(self.policy.max_volumes));
        }
        let mut next = state.clone();
        next.entries.push(pending.clone());
        self.commit(&mut state, next)?;
        Ok(pending)
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
        self.forget(
            &removing.mount_point,
            &[dirs, removing.created_dirs.clone()].concat(),
        )?;
        self.release_layers(&removing.lowers, &removing.mount_point)
    }

    /// Tears down the layers whose removal was asked for while this rootfs used them, and
    /// that no other rootfs uses.
    fn release_layers(&self, lowers: &[PathBuf], overlay: &Path) -> Result<(), ManagerError> {
        for lower in lowers {
            let Some(layer) = self.entry_at(lower) else {
                continue;
            };
            if layer.phase == Phase::Released && !self.used_by_overlay(lower, Some(overlay)) {
                self.remove_locked(Entry {
                    phase: Phase::Removing,
                    ..layer
                })?;
            }
        }
        Ok(())
    }
}
