//! Why an address was refused or its disk was not found.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::format_duration;

/// Why an address was refused, or its disk not found. Messages name the field and the value;
/// none repeats its source.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// `source_type` is none of the known buses.
    #[error(
        "Unknown source_type {source_type:?} (source {value:?}): expected virtio_pci, scsi, \
         virtio_mmio, pmem or virtio_ccw"
    )]
    UnknownSourceType {
        /// The `source_type` as given (shortened).
        source_type: String,
        /// The `source` as given (shortened).
        value: String,
    },
    /// `source` is not a valid address of its `source_type`.
    #[error("Invalid source {value:?} for source_type {source_type}: {why}")]
    Invalid {
        /// The `source_type`, or `(none)`.
        source_type: String,
        /// The `source` as given (shortened).
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A CCW address on a machine without a channel subsystem.
    #[error("Disk {address} (virtio_ccw) cannot be found: no CCW bus on this machine")]
    NoCcwBus {
        /// The canonical address.
        address: String,
    },
    /// The disk did not show up in time.
    #[error(
        "Disk {address} did not appear within {}{}",
        format_duration(*timeout),
        if last.is_empty() { String::new() } else { format!(" (last seen: {last})") }
    )]
    Timeout {
        /// The address and its bus, e.g. `02/00 (virtio_pci)`.
        address: String,
        /// How long it waited.
        timeout: Duration,
        /// What the last look at sysfs found missing.
        last: String,
    },
    /// The address names something that is not a disk of its bus.
    #[error("Disk {address} is not what its source_type says: {why}")]
    WrongBus {
        /// The address and its bus.
        address: String,
        /// What sysfs shows instead.
        why: String,
    },
    /// Several disks answer to one address.
    #[error("Disk {address} is ambiguous: {candidates}")]
    Ambiguous {
        /// The address and its bus.
        address: String,
        /// What matched.
        candidates: String,
    },
    /// sysfs has a shape the kernel does not produce.
    #[error("Unexpected sysfs layout at {}: {why}", path.display())]
    Layout {
        /// Where.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Reading sysfs failed (other than "not there").
    #[error("Cannot read {}", path.display())]
    Sysfs {
        /// What was read.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a scan trigger (`bus/pci/rescan`, `class/scsi_host/*/scan`) failed.
    #[error("Cannot trigger a bus scan through {}", path.display())]
    Scan {
        /// The trigger file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The uevent subscription could not be made.
    #[error("Cannot subscribe to kernel uevents")]
    Subscribe(#[source] io::Error),
    /// Receiving uevents failed.
    #[error("Cannot receive kernel uevents")]
    Receive(#[source] io::Error),
    /// `/dev/<name>` exists and is something else.
    #[error("Disk {address} is {name}, but {} is not its device node: {why}", node.display())]
    Node {
        /// The address and its bus.
        address: String,
        /// The kernel name.
        name: String,
        /// The node path.
        node: PathBuf,
        /// What is there instead.
        why: String,
    },
}

impl AddressError {
    pub(super) fn invalid(source_type: &str, value: &str, why: String) -> Self {
        AddressError::Invalid {
            source_type: crate::volume::truncate_for_error(source_type),
            value: crate::volume::truncate_for_error(value),
            why,
        }
    }

    pub(super) fn sysfs(path: impl Into<PathBuf>, source: io::Error) -> Self {
        AddressError::Sysfs {
            path: path.into(),
            source,
        }
    }

    pub(super) fn layout(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        AddressError::Layout {
            path: path.into(),
            why: why.into(),
        }
    }

    /// Whether the request itself is at fault (a malformed or unknown address, a bus this
    /// machine lacks, a disk of another bus), as opposed to the disk not appearing or the
    /// system failing.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            AddressError::UnknownSourceType { .. }
                | AddressError::Invalid { .. }
                | AddressError::NoCcwBus { .. }
                | AddressError::WrongBus { .. }
        )
    }
}
