//! Guest disk addresses: which block device in this guest a Kata `Storage` means, and waiting
//! for it when the host hot-plugs it.
//!
//! A Kata runtime does not name a disk by `/dev/vdX` (the guest picks those names) but by its
//! **guest address**, with a `source_type` saying which bus: a PCI path (`02/00`), a SCSI
//! `target:lun`, a virtio-mmio or pmem node name, a CCW bus id. This module owns
//! - [`GuestAddress`]: `(source_type, source)` parsed strictly once, with a canonical
//!   `Display`;
//! - [`DiskFinder`]: the address resolved through sysfs (its root is configurable so tests use
//!   a fake tree) to the disk's `/dev` node, kernel name, device number and sysfs path;
//! - waiting for a hot-plugged disk: subscribe to kernel uevents *first*, then scan sysfs,
//!   then wait for the disk's `add` uevent (or any event, after which sysfs is scanned again)
//!   until a deadline. Uevents come through the small [`Uevents`] trait: [`NetlinkUevents`]
//!   is the kernel's `NETLINK_KOBJECT_UEVENT` socket, tests inject their own.
//!
//! It must not decide policy (whether a device may be used is the caller's, on the resolved
//! node), create device nodes (it reports whether `/dev/<name>` exists and the device number
//! to make it with), or mount anything. The only writes it makes are the kernel's own scan
//! triggers under sysfs (`bus/pci/rescan`, `class/scsi_host/*/scan`), as the Kata agent does.

mod ccw;
mod error;
mod named;
mod netlink;
mod pci;
mod scsi;
mod sysfs;
mod timeout;
mod uevent;
#[cfg(test)]
mod unit_tests;
mod wait;

use std::fmt;
use std::path::PathBuf;

pub use ccw::CcwAddress;
pub use error::AddressError;
pub use named::{MmioName, PmemName};
pub use netlink::{NetlinkSubscription, NetlinkUevents};
pub use pci::{PciPath, PciSlot};
pub use scsi::ScsiAddress;
pub use sysfs::{Disk, FoundBy};
pub use timeout::{DEFAULT_TIMEOUT, MAX_TIMEOUT, format_duration, parse_timeout};
pub use uevent::{Received, Uevent, UeventSource, Uevents};
pub use wait::{DiskFinder, Resolved};

/// Longest `source` accepted (a path; addresses are far shorter).
const MAX_SOURCE: usize = 4096;

/// The bus a `source` is an address on: the Storage's `source_type` (kata-types
/// `KATA_VOLUME_DMVERITY_SOURCE_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// `virtio_pci`: a PCI path such as `02/00` (driver `blk`).
    VirtioPci,
    /// `scsi`: `<target>:<lun>` on the virtio-scsi controller (driver `scsi`).
    Scsi,
    /// `virtio_mmio`: the node the runtime predicted, `/dev/vd<x>` (driver `mmioblk`).
    VirtioMmio,
    /// `pmem`: `/dev/pmem<N>` (driver `nvdimm`).
    Pmem,
    /// `virtio_ccw` (also written `ccw`): a CCW bus id `0.<ssid>.<devno>` (driver `blk-ccw`).
    VirtioCcw,
}

impl SourceType {
    /// Every source type, in the order error messages list them.
    pub const ALL: [SourceType; 5] = [
        SourceType::VirtioPci,
        SourceType::Scsi,
        SourceType::VirtioMmio,
        SourceType::Pmem,
        SourceType::VirtioCcw,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::VirtioPci => "virtio_pci",
            SourceType::Scsi => "scsi",
            SourceType::VirtioMmio => "virtio_mmio",
            SourceType::Pmem => "pmem",
            SourceType::VirtioCcw => "virtio_ccw",
        }
    }

    /// The source type a Kata block driver implies (`blk`, `scsi`, `mmioblk`, `nvdimm`,
    /// `blk-ccw`), for Storages that carry a driver and no `source_type`.
    pub fn from_driver(driver: &str) -> Option<SourceType> {
        Some(match driver {
            "blk" => SourceType::VirtioPci,
            "scsi" => SourceType::Scsi,
            "mmioblk" => SourceType::VirtioMmio,
            "nvdimm" => SourceType::Pmem,
            "blk-ccw" => SourceType::VirtioCcw,
            _ => return None,
        })
    }

    fn from_wire(s: &str) -> Option<SourceType> {
        Some(match s {
            "virtio_pci" => SourceType::VirtioPci,
            "scsi" => SourceType::Scsi,
            "virtio_mmio" => SourceType::VirtioMmio,
            "pmem" => SourceType::Pmem,
            "virtio_ccw" | "ccw" => SourceType::VirtioCcw,
            _ => return None,
        })
    }
}

impl fmt::Display for SourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the disk of a Storage is, as the host said it: a path in the guest, or an address
/// on one of the guest's buses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuestAddress {
    /// An absolute path, used as it is (no `source_type`): `/dev/vdb`, or an image file when
    /// the caller's policy allows files.
    Path(PathBuf),
    /// `virtio_pci`.
    Pci(PciPath),
    /// `scsi`.
    Scsi(ScsiAddress),
    /// `virtio_mmio`.
    Mmio(MmioName),
    /// `pmem`.
    Pmem(PmemName),
    /// `virtio_ccw`.
    Ccw(CcwAddress),
}

impl GuestAddress {
    /// Parses a Storage's `source` under its `source_type` (absent or empty: a path).
    pub fn parse(source_type: Option<&str>, source: &str) -> Result<Self, AddressError> {
        let source_type = source_type.filter(|t| !t.is_empty());
        if source.len() > MAX_SOURCE {
            return Err(AddressError::invalid(
                source_type.unwrap_or("(none)"),
                source,
                format!("longer than {MAX_SOURCE} bytes"),
            ));
        }
        let Some(st) = source_type else {
            return parse_path(source);
        };
        let ty = SourceType::from_wire(st).ok_or_else(|| AddressError::UnknownSourceType {
            source_type: crate::volume::truncate_for_error(st),
            value: crate::volume::truncate_for_error(source),
        })?;
        Ok(match ty {
            SourceType::VirtioPci => GuestAddress::Pci(source.parse()?),
            SourceType::Scsi => GuestAddress::Scsi(source.parse()?),
            SourceType::VirtioMmio => GuestAddress::Mmio(source.parse()?),
            SourceType::Pmem => GuestAddress::Pmem(source.parse()?),
            SourceType::VirtioCcw => GuestAddress::Ccw(source.parse()?),
        })
    }

    /// The bus, or `None` for a plain path.
    pub fn source_type(&self) -> Option<SourceType> {
        match self {
            GuestAddress::Path(_) => None,
            GuestAddress::Pci(_) => Some(SourceType::VirtioPci),
            GuestAddress::Scsi(_) => Some(SourceType::Scsi),
            GuestAddress::Mmio(_) => Some(SourceType::VirtioMmio),
            GuestAddress::Pmem(_) => Some(SourceType::Pmem),
            GuestAddress::Ccw(_) => Some(SourceType::VirtioCcw),
        }
    }

    /// `02/00 (virtio_pci)`, or the path alone: how messages name it.
    pub fn describe(&self) -> String {
        match self.source_type() {
            Some(t) => format!("{self} ({t})"),
            None => self.to_string(),
        }
    }
}

/// The canonical form of the `source`: lower-case hex, no `.0` function, no leading zeros.
impl fmt::Display for GuestAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestAddress::Path(p) => write!(f, "{}", p.display()),
            GuestAddress::Pci(p) => p.fmt(f),
            GuestAddress::Scsi(a) => a.fmt(f),
            GuestAddress::Mmio(n) => n.fmt(f),
            GuestAddress::Pmem(n) => n.fmt(f),
            GuestAddress::Ccw(a) => a.fmt(f),
        }
    }
}

fn parse_path(source: &str) -> Result<GuestAddress, AddressError> {
    let why = if source.is_empty() {
        "is empty"
    } else if !source.starts_with('/') {
        "is neither an absolute path nor, without a source_type, any address"
    } else if source.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(GuestAddress::Path(PathBuf::from(source)));
    };
    Err(AddressError::invalid("(none)", source, why.to_owned()))
}

/// The kernel's `DISK_NAME_LEN` less its NUL: no block device name is longer.
const MAX_KERNEL_NAME: usize = 31;

/// A name the kernel could have given a block device and that is safe in a path: ASCII
/// letters, digits, `_`, `-`, `.`, `:`, at most 31 bytes, not `.` or `..`.
pub(crate) fn is_block_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KERNEL_NAME
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}
