//! Removing a storage: lock what it touches (re-checked after locking), mark it removing,
//! tear it down, forget it. A teardown that refused before changing anything (another mount
//! on top, ours hidden) puts the entry back as it was. A volume a rootfs still uses is
//! released instead: it goes with the last rootfs that uses it.

use std::path::{Path, PathBuf};

use super::state::{Entry, Phase, StorageKind, replace};
use super::{MAX_RETRIES, ManagerError, VolumeManager, mount_key};
use crate::apply::{self, ApplyError};
use crate::request;

impl VolumeManager {
    /// Unmounts what the manager mounted at `mount_point`, tearing down the dm device when
    /// this was its last user. Removing what is not there is success (`Ok(false)`).
    pub fn remove_storage(&self, mount_point: &str) -> Result<bool, ManagerError> {
        self.remove_path(&request::mount_point(mount_point)?)
    }

    pub(super) fn remove_path(&self, mount_point: &Path) -> Result<bool, ManagerError> {
        // The entry is read without the lock: re-read after locking, and start again if it
        // changed meanwhile (a remove and an add of another volume there).
        for _ in 0..MAX_RETRIES {
            let Some(seen) = self.entry_at(mount_point) else {
                return Ok(false);
            };
            let keys = self.lock_keys(&seen);
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let _held = self.locks.lock(&keys);
            match self.entry_at(mount_point) {
                None => return Ok(false),
                Some(e) if e.key != seen.key || e.lowers != seen.lowers => continue,
                Some(e) => return self.remove_locked(e).map(|()| true),
            }
        }
        Err(ManagerError::Busy(mount_point.to_owned()))
    }

    /// The locks a removal of `entry` takes: its own key and mount point; for an overlay,
    /// also its layers' (it may tear down those it releases).
    fn lock_keys(&self, entry: &Entry) -> Vec<String> {
        let mut keys = vec![entry.key.clone(), mount_key(&entry.mount_point)];
        for lower in &entry.lowers {
            keys.push(mount_key(lower));
            if let Some(l) = self.entry_at(lower) {
                keys.push(l.key);
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Tears down an entry whose key and mount point are locked: marked removing first, so a
    /// teardown that fails is never mistaken for a mounted volume; forgotten once done.
    pub(super) fn remove_locked(&self, entry: Entry) -> Result<(), ManagerError> {
        if entry.kind == StorageKind::Overlay {
            return self.remove_overlay(entry);
        }
        // Another add of it is not removed yet: one claim fewer, still mounted.
        if entry.phase == Phase::Active && entry.holders > 1 {
            return self.replace_entry(Entry {
                holders: entry.holders - 1,
                ..entry
            });
        }
        // A layer a rootfs still uses stays mounted, released: it goes with the last rootfs.
        if entry.phase != Phase::Removing && self.used_by_overlay(&entry.mount_point, None) {
            return self.replace_entry(Entry {
                phase: Phase::Released,
                holders: 0,
                ..entry
            });
        }
        let before = entry.clone();
        let (shared, removing) = {
            let mut state = self.state();
            let shared = state
                .entries
                .iter()
                .any(|e| e.key == entry.key && e.mount_point != entry.mount_point);
            let removing = Entry {
                phase: Phase::Removing,
                ..entry
            };
            let mut next = state.clone();
            replace(&mut next, removing.clone());
            self.commit(&mut state, next)?;
            (shared, removing)
        };
        let known = apply::Known {
            shared: Some(shared),
            ..removing.known()
        };
        let dirs = self.state().dirs_to_remove(&removing);
        if let Err(e) = apply::teardown(self.sys.as_ref(), &removing.mount_point, &known, &dirs) {
            return Err(self.unless_untouched(before, e));
        }
        self.forget(
            &removing.mount_point,
            &[dirs, removing.created_dirs].concat(),
        )
    }

    /// The error of a failed teardown. One that refused before changing anything (another
    /// mount on top, ours hidden) puts the entry back as it was: the volume is still there,
    /// listed and checkable, not half torn down. (If that cannot be saved, the entry stays
    /// "removing": a later remove or add of the mount point finishes it.)
    pub(super) fn unless_untouched(&self, before: Entry, e: ApplyError) -> ManagerError {
        if e.changed_nothing() {
            let _ = self.replace_entry(before);
        }
        e.into()
    }

    /// Drops the entry at a mount point, and saves; of the directories it created (or its
    /// removal tried to remove), those still there — in use by another entry — stay
    /// leftovers, removed by a later removal once nothing needs them.
    pub(super) fn forget(&self, mount_point: &Path, tried: &[PathBuf]) -> Result<(), ManagerError> {
        let mut state = self.state();
        let mut next = state.clone();
        next.entries.retain(|e| e.mount_point != mount_point);
        let mut left: Vec<PathBuf> = next.leftover_dirs.clone();
        left.extend(tried.iter().cloned());
        left.sort();
        left.dedup();
        left.retain(|d| self.sys.lstat(d).is_ok());
        next.leftover_dirs = left;
        self.commit(&mut state, next)
    }

    /// An entry torn down but not forgotten yet: the directories it made (and those its
    /// teardown tried) that are still there become leftovers, and it holds none any more.
    pub(super) fn hand_over_dirs(
        &self,
        entry: Entry,
        tried: &[PathBuf],
    ) -> Result<Entry, ManagerError> {
        let mut state = self.state();
        let mut next = state.clone();
        let mut left = next.leftover_dirs.clone();
        left.extend(entry.created_dirs.iter().chain(tried).cloned());
        left.sort();
        left.dedup();
        left.retain(|d| self.sys.lstat(d).is_ok());
        next.leftover_dirs = left;
        let emptied = Entry {
            created_dirs: Vec::new(),
            trees: Vec::new(),
            writable: Vec::new(),
            ..entry
        };
        replace(&mut next, emptied.clone());
        self.commit(&mut state, next)?;
        Ok(emptied)
    }

    /// Whether an active overlay (other than `except`) uses the volume at `mount_point`.
    pub(super) fn used_by_overlay(&self, mount_point: &Path, except: Option<&Path>) -> bool {
        self.state().entries.iter().any(|o| {
            o.kind == StorageKind::Overlay
                && o.phase != Phase::Removing
                && Some(o.mount_point.as_path()) != except
                && o.lowers.iter().any(|l| l == mount_point)
        })
    }

    /// Replaces the entry at its mount point, and saves.
    pub(super) fn replace_entry(&self, entry: Entry) -> Result<(), ManagerError> {
        let mut state = self.state();
        let mut next = state.clone();
        replace(&mut next, entry);
        self.commit(&mut state, next)
    }
}
