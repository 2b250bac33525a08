//! `virtio_mmio` and `pmem` addresses: the runtime names the node itself (`/dev/vdb`,
//! `/dev/pmem0`; virtio-mmio disks are numbered in the order the VMM adds them), so the
//! address is checked against sysfs rather than looked up: `/sys/block/<name>` must exist and
//! sit where a disk of that bus sits.
//!
//! - virtio-mmio: `…/virtio<N>/block/vd<x>`, with no PCI function on the way (a `vd<x>` on
//!   PCI is another disk than the one meant);
//! - pmem: `…/ndbus<N>/…/block/pmem<N>`, a libnvdimm namespace (ACPI NFIT, which is what
//!   Kata's nvdimm gives, or e820/device-tree pmem). Kata's agent asks for the ACPI root
//!   `/devices/LNXSYSTM…`; the libnvdimm bus is the property that makes it pmem.

use std::fmt;
use std::str::FromStr;

use super::sysfs::{Look, Sysfs, components, is_pci_function, is_virtio_dir};
use super::{AddressError, Uevent};

/// Longest suffix after `vd` (`vdzzzz` is past 475,000 disks).
const MAX_VD_LETTERS: usize = 4;

/// A virtio-mmio disk's node, `/dev/vd<x>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MmioName(String);

/// A pmem disk's node, `/dev/pmem<N>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PmemName(u32);

impl MmioName {
    /// The kernel name, e.g. `vdb`.
    pub fn name(&self) -> &str {
        &self.0
    }

    pub(super) fn look(&self, sys: Sysfs<'_>, described: &str) -> Result<Look, AddressError> {
        look_named(sys, &self.0, described, fits_mmio, "a virtio-mmio disk")
    }

    pub(super) fn event_matches(&self, ev: &Uevent) -> bool {
        ev.devname == self.0 && fits_mmio(&ev.devpath, &self.0)
    }
}

impl PmemName {
    /// The kernel name, e.g. `pmem0`.
    pub fn name(self) -> String {
        format!("pmem{}", self.0)
    }

    pub(super) fn look(self, sys: Sysfs<'_>, described: &str) -> Result<Look, AddressError> {
        look_named(
            sys,
            &self.name(),
            described,
            fits_pmem,
            "a pmem (libnvdimm) disk",
        )
    }

    pub(super) fn event_matches(self, ev: &Uevent) -> bool {
        ev.devname == self.name() && fits_pmem(&ev.devpath, &self.name())
    }
}

fn look_named(
    sys: Sysfs<'_>,
    name: &str,
    described: &str,
    fits: fn(&str, &str) -> bool,
    what: &str,
) -> Result<Look, AddressError> {
    let Some(devpath) = sys.devpath_of(&sys.path(&format!("/block/{name}")))? else {
        return Ok(Look::Missing(format!("no block device {name}")));
    };
    if !fits(&devpath, name) {
        return Err(AddressError::WrongBus {
            address: described.to_owned(),
            why: format!("{name} is at {devpath}, not {what}"),
        });
    }
    sys.found_at(devpath)
}

fn fits_mmio(devpath: &str, name: &str) -> bool {
    let c = components(devpath);
    matches!(c.as_slice(), [.., v, "block", n] if is_virtio_dir(v) && *n == name)
        && !c.iter().any(|x| is_pci_function(x))
}

fn fits_pmem(devpath: &str, name: &str) -> bool {
    let c = components(devpath);
    matches!(c.as_slice(), [.., "block", n] if *n == name)
        && c.iter().any(|x| {
            x.strip_prefix("ndbus")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// `/dev/vd<x>`: one to four lower-case letters.
impl FromStr for MmioName {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let letters = s.strip_prefix("/dev/vd").ok_or_else(|| {
            AddressError::invalid("virtio_mmio", s, "expected /dev/vd<letters>".into())
        })?;
        if letters.is_empty()
            || letters.len() > MAX_VD_LETTERS
            || !letters.bytes().all(|b| b.is_ascii_lowercase())
        {
            return Err(AddressError::invalid(
                "virtio_mmio",
                s,
                format!("expected /dev/vd and 1 to {MAX_VD_LETTERS} lower-case letters"),
            ));
        }
        Ok(Self(format!("vd{letters}")))
    }
}

impl fmt::Display for MmioName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/dev/{}", self.0)
    }
}

/// `/dev/pmem<N>`, `N` decimal without leading zeros.
impl FromStr for PmemName {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| AddressError::invalid("pmem", s, why.to_owned());
        let n = s
            .strip_prefix("/dev/pmem")
            .ok_or_else(|| bad("expected /dev/pmem<N>"))?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected /dev/pmem and a decimal number"));
        }
        if n.len() > 1 && n.starts_with('0') {
            return Err(bad("the number has a leading zero"));
        }
        n.parse()
            .map(Self)
            .map_err(|_| bad("the number is too large"))
    }
}

impl fmt::Display for PmemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/dev/pmem{}", self.0)
    }
}
