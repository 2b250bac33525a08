//! The volume manager: what the Kata agent embeds and the daemon serves. Decodes a storage
//! request, dedupes by device identity and verity parameters (the same layer at several
//! mount points shares one dm device, counted per mount point), serializes requests for the
//! same volume while different ones run in parallel, keeps a crash-safe state file, and
//! reconciles it with the kernel at start. Speaks no protocol.

mod error;
mod locks;
mod reconcile;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use error::{ErrorKind, ManagerError};
pub use reconcile::Reconciled;
pub use state::{Entry, FileStore, Phase, STATE_FILE, State, StateStore};

use crate::apply::{self, ApplyOptions};
use crate::plan::{DmName, PlanError};
use crate::policy::Policy;
use crate::system::System;
use crate::volume::{self, Volume};
use locks::KeyedLocks;

/// A storage request, mirroring the Kata agent's `Storage` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storage {
    /// Driver name (informational).
    pub driver: String,
    /// Driver options; may carry the volume option.
    pub driver_options: Vec<String>,
    /// The device; when empty, the volume's own `source`.
    pub source: String,
    /// Filesystem type (informational; the volume's `fs_type` rules).
    pub fstype: String,
    /// Mount options; usually carries `io.katacontainers.volume=…`.
    pub options: Vec<String>,
    /// Where to mount.
    pub mount_point: String,
}

/// A managed, mounted volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Volume type.
    pub volume_type: String,
    /// Source as requested.
    pub source: String,
    /// The verity device.
    pub dm_name: Option<String>,
    /// Root hash.
    pub root_hash: Option<String>,
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

/// The volume manager.
pub struct VolumeManager {
    sys: Arc<dyn System>,
    store: Arc<dyn StateStore>,
    policy: Policy,
    apply: ApplyOptions,
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
            apply: ApplyOptions::from_policy(&opts.policy),
            policy: opts.policy,
            state: Mutex::new(state),
            locks: KeyedLocks::default(),
        };
        Ok((m, report))
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

    /// Mounts the volume a storage request describes. Idempotent; a different volume at the
    /// same mount point is a conflict.
    pub fn add_storage(&self, storage: &Storage) -> Result<MountedVolume, ManagerError> {
        let option = volume::find_volume_option(&storage.options)?
            .or(volume::find_volume_option(&storage.driver_options)?)
            .ok_or(ManagerError::NoVolumeOption)?;
        self.policy
            .check_sizes(option.len(), request_size(storage))?;
        let mut vol = Volume::parse(option)?;
        // The request's other mount options meet the same allowlist as the volume's own:
        // a host cannot loosen the mount (rw, exec, dev, suid) through either list.
        let extra = storage
            .options
            .iter()
            .filter(|o| !o.starts_with(volume::VOLUME_OPTION_PREFIX))
            .cloned();
        match &mut vol {
            Volume::RawBlock(r) => r.options.extend(extra),
            Volume::DirectBlock(d) => d.options.extend(extra),
            Volume::Nydus(_) | Volume::GuestPull(_) => {}
        }
        if !matches!(vol, Volume::RawBlock(_) | Volume::DirectBlock(_)) {
            let unsupported = PlanError::Unsupported(vol.volume_type());
            return Err(apply::ApplyError::Plan(unsupported).into());
        }
        self.policy.check_volume(&vol)?;
        let mount_point = check_mount_point(&storage.mount_point)?;
        self.policy.check_mount_point(&mount_point)?;
        let source = if storage.source.is_empty() {
            vol.source().unwrap_or_default().to_owned()
        } else {
            storage.source.clone()
        };
        self.policy.check_source(&source)?;
        let resolved = apply::resolve_source(self.sys.as_ref(), &source, self.apply.allow_files)?;
        let dm_name = vol
            .verity()
            .map(|p| DmName::for_verity(&resolved.identity, p, &self.apply.verity_options));
        let key = dm_name
            .as_ref()
            .map_or(resolved.identity.clone(), ToString::to_string);
        let mp_key = format!("mount:{}", mount_point.display());
        let _held = self.locks.lock(&[&key, &mp_key]);

        let pending = Entry {
            mount_point: mount_point.clone(),
            volume_type: vol.volume_type().as_str().to_owned(),
            source: source.clone(),
            key: key.clone(),
            dm_name: dm_name.as_ref().map(ToString::to_string),
            root_hash: vol.verity().map(|p| p.root_hash().to_hex()),
            // What a crash mid-setup may leave behind (removed at restart if still empty).
            created_dirs: apply::missing_dirs(self.sys.as_ref(), &mount_point),
            loop_device: None,
            phase: Phase::Pending,
        };
        {
            let mut state = self.state();
            if let Some(e) = state.entries.iter().find(|e| e.mount_point == mount_point) {
                if e.key == key && e.phase == Phase::Active {
                    return Ok(self.mounted(&state, e, true));
                }
                return Err(ManagerError::Conflict {
                    mount_point,
                    existing: e.dm_name.clone().unwrap_or_else(|| e.source.clone()),
                });
            }
            if state.entries.len() >= self.policy.max_volumes {
                return Err(ManagerError::TooMany(self.policy.max_volumes));
            }
            let mut next = state.clone();
            next.entries.push(pending.clone());
            self.commit(&mut state, next)?;
        }
        let applied = apply::apply(
            self.sys.as_ref(),
            &vol,
            Some(&source),
            &mount_point,
            &self.apply,
        );
        let mut state = self.state();
        let mut next = state.clone();
        next.entries.retain(|e| e.mount_point != mount_point);
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                // Rolled back: forget the pending entry (if this write fails, the next
                // start's reconcile forgets it). If the rollback itself failed, keep the entry:
                // a remove of this mount point (or the next start) finishes the cleanup.
                let rollback_failed = !e.undo_failures().is_empty();
                if !rollback_failed {
                    let _ = self.commit(&mut state, next);
                }
                return Err(e.into());
            }
        };
        let active = Entry {
            created_dirs: applied.created_dirs.clone(),
            loop_device: applied.loop_device.clone(),
            phase: Phase::Active,
            ..pending
        };
        next.entries.push(active.clone());
        if let Err(e) = self.commit(&mut state, next.clone()) {
            // Could not record it: undo it, so state and system agree.
            let known = apply::Known {
                dm_name: applied.dm_name.clone(),
                loop_device: applied.loop_device.clone(),
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
        let mount_point = check_mount_point(mount_point)?;
        let key = {
            let state = self.state();
            match state.entries.iter().find(|e| e.mount_point == mount_point) {
                Some(e) => e.key.clone(),
                None => return Ok(false),
            }
        };
        let mp_key = format!("mount:{}", mount_point.display());
        let _held = self.locks.lock(&[&key, &mp_key]);
        let Some(entry) = self
            .state()
            .entries
            .iter()
            .find(|e| e.mount_point == mount_point)
            .cloned()
        else {
            return Ok(false);
        };
        let shared = self
            .state()
            .entries
            .iter()
            .any(|e| e.key == entry.key && e.mount_point != mount_point);
        let known = apply::Known {
            shared: Some(shared),
            ..entry.known()
        };
        apply::teardown(self.sys.as_ref(), &mount_point, &known, &entry.created_dirs)?;
        let mut state = self.state();
        let mut next = state.clone();
        next.entries.retain(|e| e.mount_point != mount_point);
        self.commit(&mut state, next)?;
        Ok(true)
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
    /// device first so every block is verified.
    pub fn check(&self, mount_point: &str, full_read: bool) -> Result<CheckResult, ManagerError> {
        let mount_point = check_mount_point(mount_point)?;
        let entry = self
            .state()
            .entries
            .iter()
            .find(|e| e.mount_point == mount_point && e.phase == Phase::Active)
            .cloned()
            .ok_or_else(|| ManagerError::NotFound(mount_point.clone()))?;
        let Some(name) = entry.dm_name.as_deref().and_then(|n| DmName::new(n).ok()) else {
            return Ok(CheckResult {
                status: "-".into(),
                bytes_read: None,
                read_error: None,
            });
        };
        let (mut bytes_read, mut read_error) = (None, None);
        if full_read {
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
            volume_type: e.volume_type.clone(),
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

/// Bytes of every string in a request.
fn request_size(s: &Storage) -> usize {
    let list = |v: &[String]| v.iter().map(String::len).sum::<usize>();
    s.driver.len()
        + s.source.len()
        + s.fstype.len()
        + s.mount_point.len()
        + list(&s.options)
        + list(&s.driver_options)
}

/// A mount point must be an absolute, normal path (no `..`, no `.`, no empty components).
fn check_mount_point(mp: &str) -> Result<PathBuf, ManagerError> {
    let bad = |why| ManagerError::Invalid {
        field: "mount_point",
        value: volume::truncate_for_error(mp),
        why,
    };
    if mp.len() > 4096 {
        return Err(bad("longer than 4096 bytes"));
    }
    let path = PathBuf::from(mp);
    if !crate::policy::is_normal_absolute(&path) {
        return Err(bad(
            "must be an absolute path other than / without '.', '..', empty components or NUL",
        ));
    }
    Ok(path)
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
