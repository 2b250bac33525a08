//! The manager's persistent state: one JSON file, written atomically (temp file, fsync,
//! rename, fsync of the folder), behind [`StateStore`] so tests can fail any write.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::system::{DevNum, DmName};
use crate::verity::Digest;
use crate::volume::VolumeType;

/// Format version of the state file.
pub const STATE_VERSION: u32 = 1;
/// File name inside the state folder.
pub const STATE_FILE: &str = "volumes.json";

/// Where a volume is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Being set up (written before the first system change: a crash leaves this behind).
    Pending,
    /// Set up and mounted.
    Active,
    /// Being torn down (written before the first system change; a teardown that failed
    /// leaves this behind, and the next add or start finishes it).
    Removing,
    /// A volume whose removal was asked for while a rootfs (an overlay) still uses it as a
    /// layer: still mounted, torn down when the last overlay using it goes.
    Released,
}

/// One mount point the manager owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The mount point.
    pub mount_point: PathBuf,
    /// What is mounted: a volume of a type, or an overlay (`volume_type` in the file: the
    /// volume type's wire name, or `overlay`).
    #[serde(rename = "volume_type")]
    pub kind: StorageKind,
    /// The source as requested.
    pub source: String,
    /// What identifies the same volume on the same device (dm name, or the source identity).
    pub key: String,
    /// The verity device, for verified volumes.
    pub dm_name: Option<DmName>,
    /// The root hash, for verified volumes (hex in the file).
    pub root_hash: Option<Digest>,
    /// The loop device attached for a file source.
    #[serde(default)]
    pub loop_device: Option<PathBuf>,
    /// The device the mount is on (`major:minor`), once mounted: a mount there on any other
    /// device is not ours.
    #[serde(default)]
    pub mounted_device: Option<DevNum>,
    /// Directories created for the mount point.
    pub created_dirs: Vec<PathBuf>,
    /// Phase.
    pub phase: Phase,
    /// How many adds of this volume at this mount point are not removed yet (as the Kata
    /// agent counts storages): the last remove tears it down.
    #[serde(default = "one")]
    pub holders: u32,
    /// For an overlay: the mount points of its lower layers, top first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lowers: Vec<PathBuf>,
    /// For an overlay: the directories holding its writes (upper, work) that it created,
    /// removed with their contents when it goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trees: Vec<PathBuf>,
    /// For an overlay: its upper and work directories (created or not): nothing else may be
    /// mounted or written there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable: Vec<PathBuf>,
}

fn one() -> u32 {
    1
}

/// What a mount point holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// A volume of this type.
    Volume(VolumeType),
    /// An overlay over volumes: a container's rootfs.
    Overlay,
}

impl std::fmt::Display for StorageKind {
    /// The volume type's wire name, or `overlay`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageKind::Volume(t) => t.fmt(f),
            StorageKind::Overlay => f.write_str("overlay"),
        }
    }
}

impl Serialize for StorageKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StorageKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "overlay" {
            return Ok(StorageKind::Overlay);
        }
        s.parse()
            .map(StorageKind::Volume)
            .map_err(serde::de::Error::custom)
    }
}

/// The whole state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Entries by mount point order.
    pub entries: Vec<Entry>,
    /// Directories entries created that were still in use when those entries went (a
    /// parent another entry's directory was in): removed once nothing needs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftover_dirs: Vec<PathBuf>,
}

impl State {
    /// No entries, in the current format.
    pub fn empty() -> Self {
        Self {
            version: STATE_VERSION,
            entries: Vec::new(),
            leftover_dirs: Vec::new(),
        }
    }

    /// Directories to remove when `entry` goes: those it created, and earlier leftovers,
    /// except any another entry still lies in; outermost first.
    pub(super) fn dirs_to_remove(&self, entry: &Entry) -> Vec<PathBuf> {
        let needed = |d: &PathBuf| {
            self.entries
                .iter()
                .filter(|e| e.mount_point != entry.mount_point)
                .flat_map(|e| {
                    std::iter::once(&e.mount_point)
                        .chain(&e.created_dirs)
                        .chain(&e.trees)
                })
                .any(|p| p.starts_with(d))
        };
        let mut dirs: Vec<PathBuf> = entry
            .created_dirs
            .iter()
            .chain(&self.leftover_dirs)
            .filter(|d| !needed(d))
            .cloned()
            .collect();
        dirs.sort_by_key(|d| d.components().count());
        dirs.dedup();
        dirs
    }
}

/// Loads and saves the state.
pub trait StateStore: Send + Sync {
    /// The saved state (empty when none was ever saved).
    fn load(&self) -> io::Result<State>;
    /// Saves the state atomically.
    fn save(&self, state: &State) -> io::Result<()>;
}

/// The state in `<dir>/volumes.json`.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }
}

impl Entry {
    /// What is known to belong to this entry, for a teardown.
    pub fn known(&self) -> crate::apply::Known {
        crate::apply::Known {
            dm_name: self.dm_name.clone(),
            loop_device: self.loop_device.clone(),
            mounted_device: self.mounted_device,
            only_ours: true,
            shared: None,
        }
    }
}

impl StateStore for FileStore {
    fn load(&self) -> io::Result<State> {
        match fs::read(self.path()) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", self.path().display()),
                    )
                })?;
                if state.version != STATE_VERSION {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: unsupported state version {}",
                            self.path().display(),
                            state.version
                        ),
                    ));
                }
                Ok(state)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::empty()),
            Err(e) => Err(e),
        }
    }

    fn save(&self, state: &State) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path())?;
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Replaces the entry at `entry`'s mount point in `state`.
pub(super) fn replace(state: &mut State, entry: Entry) {
    for e in &mut state.entries {
        if e.mount_point == entry.mount_point {
            *e = entry;
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An entry of each kind, as a file written by an older version (no `holders`).
    const OLD_FILE: &str = r#"{"version":1,"entries":[
        {"mount_point":"/run/a","volume_type":"layer_raw_block","source":"/dev/vdb",
         "key":"kata-volume-x","dm_name":null,"root_hash":null,"mounted_device":null,
         "created_dirs":[],"phase":"active"},
        {"mount_point":"/run/c/rootfs","volume_type":"overlay","source":"overlay",
         "key":"overlay:/run/c/rootfs","dm_name":null,"root_hash":null,"mounted_device":null,
         "created_dirs":[],"phase":"active","lowers":["/run/a"]}]}"#;

    #[test]
    fn a_file_without_holders_reads_as_one_claim_each_and_kinds_round_trip() {
        let state: State = serde_json::from_str(OLD_FILE).unwrap();
        let kinds: Vec<_> = state.entries.iter().map(|e| (e.kind, e.holders)).collect();
        assert_eq!(
            kinds,
            [
                (StorageKind::Volume(VolumeType::LayerRawBlock), 1),
                (StorageKind::Overlay, 1)
            ]
        );
        let again: State = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(again, state);
        assert!(serde_json::from_str::<StorageKind>(r#""overlays""#).is_err());
    }

    #[test]
    fn a_missing_file_is_an_empty_state_and_an_unreadable_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("state"));
        assert_eq!(store.load().unwrap(), State::empty());
        // The state file's path is a directory: not "no state", an error.
        fs::create_dir_all(dir.path().join("state").join(STATE_FILE)).unwrap();
        assert!(store.load().is_err());
    }
}
