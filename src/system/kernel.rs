//! What the kernel has now, read in one place: the mount table and the device-mapper devices
//! as one [`View`], and the active table of a verity device parsed back into a
//! [`VerityTable`]. Every "what is mounted here", "which dm device is this", "is it ours"
//! question of apply, teardown, reconcile and the CLI is answered here. Reads only.

use std::path::Path;

use super::{DevNum, DmDevice, DmName, MountEntry, SysError, SysResult, System};
use crate::verity::{VerityError, VerityTable};

/// The mount table and the dm devices, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Mounts, in the kernel's order (later ones on top).
    pub mounts: Vec<MountEntry>,
    /// Device-mapper devices.
    pub devices: Vec<DmDevice>,
}

impl View {
    /// Reads the mount table and the dm devices.
    pub fn read(sys: &dyn System) -> SysResult<Self> {
        Ok(Self {
            mounts: sys.mounts()?,
            devices: sys.dm_list()?,
        })
    }

    /// The mount on top at `path` (the last one mounted there), if any.
    pub fn top_mount(&self, path: &Path) -> Option<&MountEntry> {
        self.mounts.iter().rev().find(|m| m.target == path)
    }

    /// Mounts strictly below `path` (inside the tree a mount at `path` would cover).
    pub fn mounts_below<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a MountEntry> {
        self.mounts
            .iter()
            .filter(move |m| m.target != path && m.target.starts_with(path))
    }

    /// The device number of the dm device called `name`.
    pub fn device(&self, name: &DmName) -> Option<DevNum> {
        self.devices
            .iter()
            .find(|d| d.name == name.as_str())
            .map(|d| d.dev)
    }

    /// Our dm device (one this crate named) with device number `dev`.
    pub fn our_device(&self, dev: DevNum) -> Option<DmName> {
        self.devices
            .iter()
            .filter(|d| d.dev == dev)
            .find_map(DmDevice::ours)
    }

    /// Whether any mount uses the device `dev`.
    pub fn is_mounted(&self, dev: DevNum) -> bool {
        self.mounts.iter().any(|m| m.dev == dev)
    }

    /// The first mount of the device `dev`.
    pub fn mount_of(&self, dev: DevNum) -> Option<&MountEntry> {
        self.mounts.iter().find(|m| m.dev == dev)
    }
}

/// Why the active table of a device could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum TableReadError {
    /// The kernel did not answer.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// The kernel's table is not a verity table this crate understands.
    #[error("The active table of {name} is not a verity table this crate reads")]
    Parse {
        /// The device.
        name: DmName,
        /// Why.
        #[source]
        source: VerityError,
    },
}

/// The active table of the verity device `name`, parsed (devices as the kernel names them:
/// `major:minor`).
pub fn active_table(sys: &dyn System, name: &DmName) -> Result<VerityTable, TableReadError> {
    let line = sys.dm_table(name)?;
    line.parse().map_err(|source| TableReadError::Parse {
        name: name.clone(),
        source,
    })
}
