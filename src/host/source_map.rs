//! Where the runtime hot-plugged each image: host image path → guest address, parsed from
//! `HOST_PATH=ADDRESS` entries. The grammar of `ADDRESS`:
//!
//! | written | means |
//! |---|---|
//! | `TYPE:ADDR` (`virtio_pci:02/01`, `scsi:2:1`, `virtio_mmio:/dev/vdc`, `pmem:/dev/pmem0`, `virtio_ccw:0.0.0005`) | `ADDR` on the bus `TYPE` (a Storage `source_type`) |
//! | `/PATH` (`/dev/vdb`) | a path in the guest, used as is (no `source_type`) |
//! | anything else (`02/01`) | a PCI path (`virtio_pci`), the bus a Kata runtime uses by default |
//!
//! `TYPE:` is recognised when the text before the first `:` starts with a letter (no address
//! does). The entry is split at its **last** `=` (a guest address has none, a host path may).
//! Addresses are checked by [`GuestAddress::parse`] and kept in its canonical form. Host
//! paths match a volume's `source` byte for byte. Pure: nothing here looks at the system.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use super::HostError;
use crate::address::GuestAddress;
use crate::volume::truncate_for_error;

/// Longest host path accepted (Linux `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// One `HOST_PATH=ADDRESS` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMapEntry {
    /// The image on the host, as the volume's `source` names it.
    pub host_path: String,
    /// Where the runtime hot-plugged it in the guest.
    pub address: GuestAddress,
}

impl FromStr for SourceMapEntry {
    type Err = HostError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let bad = |why| HostError::MapEntry {
            entry: truncate_for_error(entry),
            why,
        };
        if entry.len() > 2 * MAX_PATH {
            return Err(bad("longer than 8192 bytes"));
        }
        if entry.chars().any(char::is_control) {
            return Err(bad("contains a control character"));
        }
        let (host, guest) = entry
            .rsplit_once('=')
            .ok_or_else(|| bad("expected HOST_PATH=ADDRESS"))?;
        if !host.starts_with('/') {
            return Err(bad("the host path must be absolute"));
        }
        if host.len() > MAX_PATH {
            return Err(bad("the host path is longer than 4096 bytes"));
        }
        if guest.is_empty() {
            return Err(bad("the guest address is empty"));
        }
        let (source_type, source) = split_type(guest);
        let address =
            GuestAddress::parse(source_type, source).map_err(|source| HostError::MapAddress {
                entry: truncate_for_error(entry),
                source,
            })?;
        Ok(Self {
            host_path: host.to_owned(),
            address,
        })
    }
}

/// `TYPE:ADDR` → (`TYPE`, `ADDR`); `/PATH` → (none, `/PATH`); else a PCI path.
fn split_type(guest: &str) -> (Option<&str>, &str) {
    if guest.starts_with('/') {
        return (None, guest);
    }
    match guest.split_once(':') {
        Some((ty, addr)) if ty.starts_with(|c: char| c.is_ascii_alphabetic()) => (Some(ty), addr),
        _ => (Some("virtio_pci"), guest),
    }
}

/// Host image paths and their guest addresses: each path once, each address once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    entries: Vec<SourceMapEntry>,
}

impl SourceMap {
    /// A map of these entries; a host path or a guest address given twice is refused.
    pub fn new(entries: Vec<SourceMapEntry>) -> Result<Self, HostError> {
        let mut by_path: HashSet<&str> = HashSet::new();
        let mut by_address: HashMap<&GuestAddress, &str> = HashMap::new();
        for e in &entries {
            if !by_path.insert(&e.host_path) {
                return Err(HostError::MapDuplicatePath {
                    path: truncate_for_error(&e.host_path),
                });
            }
            if let Some(first) = by_address.insert(&e.address, &e.host_path) {
                return Err(HostError::MapDuplicateAddress {
                    first: truncate_for_error(first),
                    second: truncate_for_error(&e.host_path),
                    address: e.address.describe(),
                });
            }
        }
        Ok(Self { entries })
    }

    /// Parses `HOST_PATH=ADDRESS` entries into a map.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, HostError> {
        let parsed = entries
            .iter()
            .map(|e| e.as_ref().parse())
            .collect::<Result<Vec<SourceMapEntry>, _>>()?;
        Self::new(parsed)
    }

    /// The guest address of the image at `host_path` (compared byte for byte).
    pub fn get(&self, host_path: &str) -> Option<&GuestAddress> {
        self.entries
            .iter()
            .find(|e| e.host_path == host_path)
            .map(|e| &e.address)
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[SourceMapEntry] {
        &self.entries
    }
}
