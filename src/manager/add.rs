//! Adding a storage: parse, then one way through per shape — a volume (authorize, resolve,
//! plan, lock, pending, apply, active) or a rootfs overlay (`overlay.rs`).

use std::path::Path;

use super::state::{Entry, Phase, StorageKind, replace};
use super::{ManagerError, MountedVolume, VolumeManager, mount_key, plan_volume};
use crate::apply::{self, Applied, ApplyError};
use crate::plan::Plan;
use crate::request::{self, Request, Storage, VolumeRequest};

impl VolumeManager {
    /// Mounts the volume a storage request describes: [`VolumeManager::parse`], then
    /// [`VolumeManager::add`].
    pub fn add_storage(&self, storage: &Storage) -> Result<MountedVolume, ManagerError> {
        self.add(&self.parse(storage)?)
    }

    /// Parses a storage request with this manager's limits (for a caller that wants to know
    /// what was asked for, e.g. to log it, before adding it).
    pub fn parse(&self, storage: &Storage) -> Result<Request, ManagerError> {
        Ok(request::parse(storage, &self.policy.limits())?)
    }

    /// Mounts what a parsed request asks for. Idempotent — and honest about it: the same
    /// volume at the same mount point is checked against the kernel (and mounted again if it
    /// went away); a removal of that mount point that did not finish is finished first; a
    /// different volume there is a conflict.
    pub fn add(&self, request: &Request) -> Result<MountedVolume, ManagerError> {
        match request {
            Request::Volume(req) => self.add_volume(req),
            Request::Overlay(req) => self.add_overlay(req),
            Request::MultiLayer(req) => self.add_multilayer(req),
        }
    }

    /// A removal of `mount_point` that did not finish is finished first.
    pub(super) fn finish_removal(&self, mount_point: &Path) -> Result<(), ManagerError> {
        if self
            .entry_at(mount_point)
            .is_some_and(|e| e.phase == Phase::Removing)
        {
            self.remove_path(mount_point)
                .map_err(|e| ManagerError::UnfinishedRemoval {
                    mount_point: mount_point.to_owned(),
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    pub(super) fn add_volume(&self, req: &VolumeRequest) -> Result<MountedVolume, ManagerError> {
        let mount_point = &req.mount_point;
        self.finish_removal(mount_point)?;
        self.check_not_writable(mount_point, mount_point, false)?;
        let plan = plan_volume(self.sys.as_ref(), &self.policy, req)?;
        let key = plan.key();
        let _held = self.locks.lock(&[&key, &mount_key(mount_point)]);
        match self.entry_at(mount_point) {
            // One more claim on it (as the agent counts storages), once checked against the
            // kernel.
            Some(e) if e.key == key && e.phase == Phase::Active => self.reapply(e, &plan, true),
            // Released (a rootfs still uses it) and asked for again: wanted once more.
            Some(e) if e.key == key && e.phase == Phase::Released => self.reactivate(e, &plan),
            Some(e) => Err(self.conflict(&e)),
            None => {
                let pending = self.record_pending(volume_entry(&plan))?;
                let applied = apply::apply(self.sys.as_ref(), &plan);
                self.record(pending, applied)
            }
        }
    }

    /// Writes a pending entry (before anything is changed), within the volume limit.
    pub(super) fn record_pending(&self, pending: Entry) -> Result<Entry, ManagerError> {
        let mut state = self.state();
        if state.entries.len() >= self.policy.max_volumes {
            return Err(ManagerError::TooMany(self.policy.max_volumes));
        }
        let mut next = state.clone();
        next.entries.push(pending.clone());
        self.commit(&mut state, next)?;
        Ok(pending)
    }

    /// The same volume is recorded active at the mount point: apply the plan again, which
    /// changes nothing when the kernel shows it mounted, and mounts it again when it is not.
    /// `claim`: one more holder (a re-add); not for a reactivation, which starts at one.
    fn reapply(
        &self,
        entry: Entry,
        plan: &Plan,
        claim: bool,
    ) -> Result<MountedVolume, ManagerError> {
        let applied = apply::apply(self.sys.as_ref(), plan)?;
        let mut state = self.state();
        let mut updated = entry;
        if !applied.already_applied {
            updated.loop_device = applied.loop_device.clone();
            updated.mounted_device = applied.mounted_dev;
        }
        if claim {
            updated.holders = updated.holders.saturating_add(1);
        }
        let mut next = state.clone();
        replace(&mut next, updated.clone());
        self.commit(&mut state, next)?;
        Ok(self.mounted(&state, &updated, applied.already_applied))
    }

    /// A released volume asked for again: active once more (after the same check against
    /// the kernel as any re-add).
    fn reactivate(&self, entry: Entry, plan: &Plan) -> Result<MountedVolume, ManagerError> {
        let active = Entry {
            phase: Phase::Active,
            holders: 1,
            ..entry
        };
        self.replace_entry(active.clone())?;
        self.reapply(active, plan, false)
    }

    /// Records the outcome of an apply: the active entry, or (rolled back) no entry.
    fn record(
        &self,
        pending: Entry,
        applied: Result<Applied, ApplyError>,
    ) -> Result<MountedVolume, ManagerError> {
        let mount_point = pending.mount_point.clone();
        let mut state = self.state();
        let mut next = state.clone();
        next.entries.retain(|e| e.mount_point != mount_point);
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                // Rolled back: forget the pending entry (if this write fails, the next
                // start's reconcile forgets it). If the rollback itself failed, keep the entry:
                // a remove of this mount point (or the next start) finishes the cleanup.
                if e.undo_failures().is_empty() {
                    let _ = self.commit(&mut state, next);
                }
                return Err(e.into());
            }
        };
        let active = Entry {
            created_dirs: applied.created_dirs.clone(),
            loop_device: applied.loop_device.clone(),
            mounted_device: applied.mounted_dev,
            phase: Phase::Active,
            ..pending
        };
        next.entries.push(active.clone());
        if let Err(e) = self.commit(&mut state, next) {
            // Could not record it: undo it, so state and system agree.
            let known = apply::Known {
                dm_name: applied.dm_name.clone(),
                loop_device: applied.loop_device.clone(),
                mounted_device: applied.mounted_dev,
                only_ours: true,
                shared: None,
            };
            let _ = apply::teardown(
                self.sys.as_ref(),
                &mount_point,
                &known,
                &applied.created_dirs,
            );
            return Err(e);
        }
        Ok(self.mounted(&state, &active, applied.already_applied))
    }
}

/// The pending entry of a volume plan.
fn volume_entry(plan: &Plan) -> Entry {
    Entry {
        mount_point: plan.target.path.clone(),
        kind: StorageKind::Volume(plan.volume_type),
        source: plan.source.path().to_string_lossy().into_owned(),
        key: plan.key(),
        dm_name: plan.verity.as_ref().map(|v| v.name.clone()),
        root_hash: plan.verity.as_ref().map(|v| v.params.root_hash().clone()),
        // What a crash mid-setup may leave behind (removed at restart if still empty).
        created_dirs: plan.target.missing_dirs.clone(),
        loop_device: None,
        mounted_device: None,
        phase: Phase::Pending,
        holders: 1,
        lowers: Vec::new(),
        trees: Vec::new(),
        writable: Vec::new(),
    }
}
