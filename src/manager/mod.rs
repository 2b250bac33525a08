//! The volume manager: what the Kata agent embeds and the daemon serves. One way through for
//! every request — parse (`request`) → authorize (`policy`) → resolve (`resolve`) → plan
//! (`plan`) → lock the plan's key → record it pending → apply (`apply`) → record it active —
//! with refcounts (the same layer at several mount points shares one dm device), per-key
//! locks (requests for the same volume are serialized, different ones run in parallel), a
//! crash-safe state file, and reconciliation with the kernel at start. Speaks no protocol.

mod error;
mod locks;
mod reconcile;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use error::{ErrorKind, ManagerError};
pub use reconcile::Reconciled;
pub use state::{Entry, FileStore, Phase, STATE_FILE, State, StateStore};

pub use crate::request::Storage;

use crate::apply::{self, Applied};
use crate::plan::{self, Plan};
use crate::policy::Policy;
use crate::request::{self, Request};
use crate::resolve;
use crate::system::{DmName, System};
use crate::verity::Digest;
use crate::volume::VolumeType;
use locks::KeyedLocks;

/// A managed, mounted volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Volume type.
    pub volume_type: VolumeType,
    /// Source as requested.
    pub source: String,
    /// The verity device.
    pub dm_name: Option<DmName>,
    /// Root hash.
    pub root_hash: Option<Digest>,
    /// How many mount points share this volume's device.
    pub refcount: usize,
    /// The request changed nothing (already there).
    pub already_present: bool,
}

/// Result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// `V` (verified so far), `C` (corruption seen), or `-` (not a verity volume).
    pub status: String,
    /// Bytes read by a full check.
    pub bytes_read: Option<u64>,
    /// What the full read reported, when it failed.
    pub read_error: Option<String>,
}

/// Manager settings.
#[derive(Debug, Clone, Default)]
pub struct ManagerOptions {
    /// What the host may ask for.
    pub policy: Policy,
}

/// Parses, authorizes, resolves and plans a storage request: every rule applied, nothing
/// changed yet. What [`VolumeManager::add_storage`] does before it locks, and what the CLI's
/// `mount` applies directly.
pub fn prepare(sys: &dyn System, policy: &Policy, storage: &Storage) -> Result<Plan, ManagerError> {
    let request = request::parse(storage, &policy.limits())?;
    plan_request(sys, policy, &request)
}

fn plan_request(
    sys: &dyn System,
    policy: &Policy,
    request: &Request,
) -> Result<Plan, ManagerError> {
    let Request::Volume(req) = request;
    let auth = policy.authorize(req)?;
    let resolved = resolve::resolve(sys, &auth)?;
    Ok(plan::plan(&auth, resolved)?)
}

/// The volume manager.
pub struct VolumeManager {
    sys: Arc<dyn System>,
    store: Arc<dyn StateStore>,
    policy: Policy,
    state: Mutex<State>,
    locks: KeyedLocks,
}

impl VolumeManager {
    /// A manager over `sys` with state in `store`. Refuses a mount root reached through a
    /// symlink ([`ManagerError::MountRoot`]), then reconciles the saved state with the kernel
    /// before returning; the [`Reconciled`] report says what it found.
    pub fn new(
        sys: Arc<dyn System>,
        store: Arc<dyn StateStore>,
        opts: ManagerOptions,
    ) -> Result<(Self, Reconciled), ManagerError> {
        check_mount_root(sys.as_ref(), &opts.policy.mount_root)?;
        let saved = store
            .load()
            .map_err(|source| ManagerError::State { op: "read", source })?;
        let (state, report) = reconcile::reconcile(sys.as_ref(), saved);
        store.save(&state).map_err(|source| ManagerError::State {
            op: "write",
            source,
        })?;
        let m = Self {
            sys,
            store,
            policy: opts.policy,
            state: Mutex::new(state),
            locks: KeyedLocks::default(),
        };
        Ok((m, report))
    }

    /// The policy requests are checked against.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves `next` and makes it current, or leaves the current state when the save fails.
    fn commit(&self, state: &mut State, next: State) -> Result<(), ManagerError> {
        self.store
            .save(&next)
            .map_err(|source| ManagerError::State {
                op: "write",
                source,
            })?;
        *state = next;
        Ok(())
    }

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
        let mount_point = request.mount_point();
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
        let plan = plan_request(self.sys.as_ref(), &self.policy, request)?;
        let key = plan.key();
        let _held = self.locks.lock(&[&key, &mount_key(mount_point)]);
        match self.entry_at(mount_point) {
            Some(e) if e.key == key && e.phase == Phase::Active => self.reapply(e, &plan),
            Some(e) => Err(ManagerError::Conflict {
                mount_point: mount_point.to_owned(),
                existing: e
                    .dm_name
                    .as_ref()
                    .map_or(e.source.clone(), ToString::to_string),
            }),
            None => {
                let pending = self.record_pending(&plan)?;
                let applied = apply::apply(self.sys.as_ref(), &plan);
                self.record(pending, applied)
            }
        }
    }

    /// The entry at a mount point.
    fn entry_at(&self, mount_point: &Path) -> Option<Entry> {
        self.state()
            .entries
            .iter()
            .find(|e| e.mount_point == mount_point)
            .cloned()
    }

    /// Writes the pending entry of a plan (before anything is changed).
    fn record_pending(&self, plan: &Plan) -> Result<Entry, ManagerError> {
        let pending = Entry {
            mount_point: plan.target.path.clone(),
            volume_type: plan.volume_type,
            source: plan.source.path().to_string_lossy().into_owned(),
            key: plan.key(),
            dm_name: plan.verity.as_ref().map(|v| v.name.clone()),
            root_hash: plan.verity.as_ref().map(|v| v.params.root_hash().clone()),
            // What a crash mid-setup may leave behind (removed at restart if still empty).
            created_dirs: plan.target.missing_dirs.clone(),
            loop_device: None,
            mounted_device: None,
            phase: Phase::Pending,
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

    /// The same volume is recorded active at the mount point: apply the plan again, which
    /// changes nothing when the kernel shows it mounted, and mounts it again when it is not.
    fn reapply(&self, entry: Entry, plan: &Plan) -> Result<MountedVolume, ManagerError> {
        let applied = apply::apply(self.sys.as_ref(), plan)?;
        let mut state = self.state();
        let mut updated = entry;
        if !applied.already_applied {
            updated.loop_device = applied.loop_device.clone();
            updated.mounted_device = applied.mounted_dev;
            let mut next = state.clone();
            for e in &mut next.entries {
                if e.mount_point == updated.mount_point {
                    *e = updated.clone();
                }
            }
            self.commit(&mut state, next)?;
        }
        Ok(self.mounted(&state, &updated, applied.already_applied))
    }

    /// Records the outcome of an apply: the active entry, or (rolled back) no entry.
    fn record(
        &self,
        pending: Entry,
        applied: Result<Applied, apply::ApplyError>,
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

    /// Unmounts what the manager mounted at `mount_point`, tearing down the dm device when
    /// this was its last user. Removing what is not there is success (`Ok(false)`).
    pub fn remove_storage(&self, mount_point: &str) -> Result<bool, ManagerError> {
        self.remove_path(&request::mount_point(mount_point)?)
    }

    fn remove_path(&self, mount_point: &Path) -> Result<bool, ManagerError> {
        // The key is read without the lock: re-read after locking, and start again if the
        // entry changed meanwhile (a remove and an add of another volume there).
        for _ in 0..MAX_RETRIES {
            let Some(key) = self.entry_at(mount_point).map(|e| e.key) else {
                return Ok(false);
            };
            let _held = self.locks.lock(&[&key, &mount_key(mount_point)]);
            match self.entry_at(mount_point) {
                None => return Ok(false),
                Some(e) if e.key != key => continue,
                Some(e) => return self.remove_locked(e).map(|()| true),
            }
        }
        Err(ManagerError::Busy(mount_point.to_owned()))
    }

    /// Tears down an entry whose key and mount point are locked: marked removing first, so a
    /// teardown that fails is never mistaken for a mounted volume; forgotten once done.
    fn remove_locked(&self, entry: Entry) -> Result<(), ManagerError> {
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
            for e in &mut next.entries {
                if e.mount_point == removing.mount_point {
                    *e = removing.clone();
                }
            }
            self.commit(&mut state, next)?;
            (shared, removing)
        };
        let known = apply::Known {
            shared: Some(shared),
            ..removing.known()
        };
        let mount_point = &removing.mount_point;
        apply::teardown(
            self.sys.as_ref(),
            mount_point,
            &known,
            &removing.created_dirs,
        )?;
        let mut state = self.state();
        let mut next = state.clone();
        next.entries.retain(|e| &e.mount_point != mount_point);
        self.commit(&mut state, next)
    }

    /// Every managed volume.
    pub fn list(&self) -> Vec<MountedVolume> {
        let state = self.state();
        state
            .entries
            .iter()
            .filter(|e| e.phase == Phase::Active)
            .map(|e| self.mounted(&state, e, true))
            .collect()
    }

    /// The verity status of the volume at `mount_point`; with `full_read`, reads the whole
    /// device first so every block is verified. One full read of a device at a time: another
    /// one asked for meanwhile (from any mount point of that device) is refused at once with
    /// [`ManagerError::ReadInProgress`].
    pub fn check(&self, mount_point: &str, full_read: bool) -> Result<CheckResult, ManagerError> {
        let mount_point = request::mount_point(mount_point)?;
        let entry = self
            .state()
            .entries
            .iter()
            .find(|e| e.mount_point == mount_point && e.phase == Phase::Active)
            .cloned()
            .ok_or_else(|| ManagerError::NotFound(mount_point.clone()))?;
        let Some(name) = entry.dm_name else {
            return Ok(CheckResult {
                status: "-".into(),
                bytes_read: None,
                read_error: None,
            });
        };
        let (mut bytes_read, mut read_error) = (None, None);
        if full_read {
            // One full read per device at a time, the others answered at once: reads of a
            // large device take long, and queued ones would hold every worker.
            let _reading = self
                .locks
                .try_lock(&[&format!("read:{name}")])
                .ok_or_else(|| ManagerError::ReadInProgress {
                    dm_name: name.to_string(),
                    mount_point: mount_point.clone(),
                })?;
            match self.sys.read_device(Path::new(&name.node_path())) {
                Ok(n) => bytes_read = Some(n),
                Err(e) => read_error = Some(crate::error_chain(&e)),
            }
        }
        let status = self.sys.dm_status(&name).map_err(|source| {
            ManagerError::Apply(apply::ApplyError::Step {
                step: apply::Step::CheckStatus,
                source,
                undo_failures: Vec::new(),
            })
        })?;
        Ok(CheckResult {
            status: status.trim().to_owned(),
            bytes_read,
            read_error,
        })
    }

    fn mounted(&self, state: &State, e: &Entry, already_present: bool) -> MountedVolume {
        MountedVolume {
            mount_point: e.mount_point.clone(),
            volume_type: e.volume_type,
            source: e.source.clone(),
            dm_name: e.dm_name.clone(),
            root_hash: e.root_hash.clone(),
            refcount: state
                .entries
                .iter()
                .filter(|o| o.key == e.key && o.phase == Phase::Active)
                .count(),
            already_present,
        }
    }
}

/// How often a remove starts again when the entry it locked changed meanwhile.
const MAX_RETRIES: usize = 8;

/// The lock key of a mount point.
fn mount_key(mount_point: &Path) -> String {
    format!("mount:{}", mount_point.display())
}

/// Refuses a mount root with a symlink among its existing components (missing ones are
/// made as directories when a volume is mounted below).
fn check_mount_root(sys: &dyn System, root: &Path) -> Result<(), ManagerError> {
    let mut at = PathBuf::new();
    for component in root.components() {
        at.push(component);
        match sys.lstat(&at) {
            Ok(info) if info.kind == crate::system::FileKind::Symlink => {
                return Err(ManagerError::MountRoot {
                    root: root.to_path_buf(),
                    symlink: at,
                });
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}
