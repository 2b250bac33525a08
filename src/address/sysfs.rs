//! Reading sysfs under a configurable root: directory listings, device numbers, device paths
//! (`/devices/…`, as uevents spell them), and the disk a look found. Reads only, except the
//! two scan triggers the kernel offers ([`Sysfs::trigger`]).

use std::io;
use std::path::{Path, PathBuf};

use super::{AddressError, is_block_name};
use crate::system::DevNum;

/// A disk found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The device node: `/dev/<name>` (under the finder's device directory).
    pub node: PathBuf,
    /// The kernel's name for it, e.g. `vdb`.
    pub name: String,
    /// Its device number (to make the node where `/dev` is not devtmpfs).
    pub devnum: DevNum,
    /// Its sysfs directory, e.g.
    /// `/sys/devices/pci0000:00/0000:00:05.0/virtio2/block/vdb`.
    pub sysfs_path: PathBuf,
    /// Whether `node` existed when the disk was found. The kernel's devtmpfs makes it before
    /// it announces the disk; without devtmpfs the caller makes it from `devnum`.
    pub node_present: bool,
    /// How it was found.
    pub found_by: FoundBy,
}

/// How a disk was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// A look at sysfs (it was there, or came between two looks).
    Sysfs,
    /// Its own `add` uevent.
    Uevent,
}

impl FoundBy {
    /// `sysfs` or `uevent`.
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Sysfs => "sysfs",
            FoundBy::Uevent => "uevent",
        }
    }
}

/// What one look at sysfs (or one uevent) found: the disk's kernel name, its device path
/// relative to the sysfs root (`/devices/…`) and its device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub name: String,
    pub devpath: String,
    pub devnum: DevNum,
}

/// The outcome of one look: found, or what is missing so far (kept for the timeout message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Look {
    Found(Found),
    Missing(String),
}

/// sysfs below a root (`/sys`, or a fake tree in tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Sysfs<'a> {
    root: &'a Path,
}

/// Whether an error means "not there (yet)": the device is still coming or already gone.
fn absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

impl<'a> Sysfs<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self { root }
    }

    /// The directory of a device path (`/devices/…`) or any sysfs path (`/bus/…`).
    pub fn path(&self, devpath: &str) -> PathBuf {
        self.root.join(devpath.trim_start_matches('/'))
    }

    /// The names in a directory, sorted; `None` when it does not exist. Names that are not
    /// UTF-8 are skipped (the kernel makes none under the directories read here).
    pub fn list(&self, dir: &Path) -> Result<Option<Vec<String>>, AddressError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(AddressError::sysfs(dir, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            match entry {
                Ok(entry) => {
                    if let Ok(name) = entry.file_name().into_string() {
                        names.push(name);
                    }
                }
                // the directory went away while being read: a device being removed
                Err(e) if absent(&e) => return Ok(None),
                Err(e) => return Err(AddressError::sysfs(dir, e)),
            }
        }
        names.sort();
        Ok(Some(names))
    }

    /// A block device's number from its `dev` attribute (`MAJOR:MINOR`); `None` when the
    /// attribute is not there (yet).
    pub fn devnum(&self, block_dir: &Path) -> Result<Option<DevNum>, AddressError> {
        let file = block_dir.join("dev");
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(AddressError::sysfs(&file, e)),
        };
        parse_devnum(text.trim()).map(Some).ok_or_else(|| {
            AddressError::layout(&file, format!("{:?} is not MAJOR:MINOR", text.trim()))
        })
    }

    /// The device path (`/devices/…`) a sysfs symlink such as `/sys/block/vdb` points at;
    /// `None` when the link is not there.
    pub fn devpath_of(&self, link: &Path) -> Result<Option<String>, AddressError> {
        let real = match std::fs::canonicalize(link) {
            Ok(p) => p,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(AddressError::sysfs(link, e)),
        };
        let root =
            std::fs::canonicalize(self.root).map_err(|e| AddressError::sysfs(self.root, e))?;
        let rel = real
            .strip_prefix(&root)
            .ok()
            .and_then(|r| r.to_str())
            .filter(|r| r.starts_with("devices/"))
            .ok_or_else(|| {
                AddressError::layout(link, format!("points outside {}/devices", root.display()))
            })?;
        Ok(Some(format!("/{rel}")))
    }

    /// Writes a scan trigger; `false` when the file does not exist (no such bus here).
    pub fn trigger(&self, file: &Path, data: &str) -> Result<bool, AddressError> {
        match std::fs::OpenOptions::new().write(true).open(file) {
            Ok(mut f) => {
                use std::io::Write as _;
                f.write_all(data.as_bytes())
                    .map_err(|source| AddressError::Scan {
                        path: file.to_owned(),
                        source,
                    })?;
                Ok(true)
            }
            Err(e) if absent(&e) => Ok(false),
            Err(source) => Err(AddressError::Scan {
                path: file.to_owned(),
                source,
            }),
        }
    }

    /// The one disk under `<device>/virtio<N>/block/` (virtio-blk over PCI or CCW).
    pub fn virtio_disk(&self, device: &str) -> Result<Look, AddressError> {
        let dir = self.path(device);
        let Some(entries) = self.list(&dir)? else {
            return Ok(Look::Missing(format!("no device {device}")));
        };
        let mut disks = Vec::new();
        for v in entries.iter().filter(|n| is_virtio_dir(n)) {
            let block = dir.join(v).join("block");
            for name in self.list(&block)?.unwrap_or_default() {
                if !is_block_name(&name) {
                    return Err(AddressError::layout(&block, format!("odd name {name:?}")));
                }
                disks.push(format!("{device}/{v}/block/{name}"));
            }
        }
        match disks.len() {
            0 => Ok(Look::Missing(format!(
                "no virtio block device under {device}"
            ))),
            1 => self.found_at(disks.remove(0)),
            _ => Err(AddressError::layout(
                dir,
                format!("several block devices: {}", disks.join(", ")),
            )),
        }
    }

    /// The disk whose directory is at `devpath` (`…/block/<name>`), once its `dev` is there.
    pub fn found_at(&self, devpath: String) -> Result<Look, AddressError> {
        let name = devpath.rsplit('/').next().unwrap_or_default().to_owned();
        if !is_block_name(&name) {
            return Err(AddressError::layout(
                self.path(&devpath),
                "not a block device name",
            ));
        }
        Ok(match self.devnum(&self.path(&devpath))? {
            Some(devnum) => Look::Found(Found {
                name,
                devpath,
                devnum,
            }),
            None => Look::Missing(format!("{devpath} has no device number yet")),
        })
    }
}

/// `virtio<N>`: the virtio device under a transport (PCI function, CCW device, MMIO device).
pub(super) fn is_virtio_dir(name: &str) -> bool {
    name.strip_prefix("virtio")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `MAJOR:MINOR` in decimal.
pub(super) fn parse_devnum(s: &str) -> Option<DevNum> {
    let (ma, mi) = s.split_once(':')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(ma) || !digits(mi) {
        return None;
    }
    Some(DevNum {
        major: ma.parse().ok()?,
        minor: mi.parse().ok()?,
    })
}

/// Splits a device path into its components, without empty ones.
pub(super) fn components(devpath: &str) -> Vec<&str> {
    devpath.split('/').filter(|c| !c.is_empty()).collect()
}

/// Whether a path component is a PCI function address `DDDD:BB:SS.F`.
pub(super) fn is_pci_function(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11]
            .iter()
            .all(|&i| b[i].is_ascii_hexdigit())
}
