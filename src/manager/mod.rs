//! The volume manager: what the Kata agent embeds and the daemon serves. One way through for
//! every request — parse (`request`) → authorize (`policy`) → resolve (`resolve`) → plan
//! (`plan`) → lock the plan's key → record it pending → apply (`apply`) → record it active —
//! with refcounts (the same layer at several mount points shares one dm device), per-key
//! locks (requests for the same volume are serialized, different ones run in parallel), a
//! crash-safe state file, and reconciliation with the kernel at start. Speaks no protocol.

mod add;
mod error;
mod locks;
mod memstore;
mod multilayer;
mod overlay;
mod reconcile;
mod remove;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use error::{ErrorKind, ManagerError};
pub use memstore::MemStore;
pub use reconcile::Reconciled;
pub use state::{Entry, FileStore, Phase, STATE_FILE, State, StateStore, StorageKind};

pub use crate::request::Storage;

use crate::apply;
use crate::plan::{self, Plan};
use crate::policy::Policy;
use crate::request::{self, Request, VolumeRequest};
use crate::resolve;
use crate::system::{DmName, System};
use crate::verity::Digest;
use locks::KeyedLocks;

/// A managed, mounted volume (or rootfs overlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// A volume of a type, or an overlay.
    pub kind: StorageKind,
    /// Source as requested.
    pub source: String,
    /// The verity device.
    pub dm_name: Option<DmName>,
    /// Root hash.
    pub root_hash: Option<Digest>,
    /// How many claims the volume's device has: adds not removed yet (at this mount point
    /// and any other sharing the device), and rootfs holding it as a released layer.
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
    match request::parse(storage, &policy.limits())? {
        Request::Volume(req) => plan_volume(sys, policy, &req),
        // An overlay is built from volumes a manager mounted: only a manager can check them.
        Request::Overlay(_) | Request::MultiLayer(_) => Err(ManagerError::NeedsManager),
    }
}

fn plan_volume(
    sys: &dyn System,
    policy: &Policy,
    req: &VolumeRequest,
) -> Result<Plan, ManagerError> {
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

    /// The entry at a mount point.
    fn entry_at(&self, mount_point: &Path) -> Option<Entry> {
        self.state()
            .entries
            .iter()
            .find(|e| e.mount_point == mount_point)
            .cloned()
    }

    fn mounted(&self, state: &State, e: &Entry, already_present: bool) -> MountedVolume {
        MountedVolume {
            mount_point: e.mount_point.clone(),
            kind: e.kind,
            source: e.source.clone(),
            dm_name: e.dm_name.clone(),
            root_hash: e.root_hash.clone(),
            // Every claim on the device: each add not removed yet, at any mount point, and
            // each released layer a rootfs holds.
            refcount: state
                .entries
                .iter()
                .filter(|o| o.key == e.key)
                .map(|o| match o.phase {
                    Phase::Active => usize::try_from(o.holders).unwrap_or(usize::MAX),
                    Phase::Released => 1,
                    Phase::Pending | Phase::Removing => 0,
                })
                .sum(),
            already_present,
        }
    }
}

/// How often a remove starts again when the entry it locked changed meanwhile.
pub(super) const MAX_RETRIES: usize = 8;

/// The lock key of a mount point.
pub(super) fn mount_key(mount_point: &Path) -> String {
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
