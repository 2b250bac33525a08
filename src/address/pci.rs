//! `virtio_pci` addresses: Kata's PCI path (`02/00`: the slot of each bridge on the way, then
//! the disk's), its sysfs directory, and the disk's uevent.
//!
//! Each element is `SS[.F]`: a two-hex-digit slot (`00`–`1f`) and an optional function
//! (`0`–`7`). From the root bus each element names `<bus>:<SS>.<F>`; the next bus is the one
//! entry of that bridge's `pci_bus/` directory, so `02/03` is
//! `/devices/pci0000:00/0000:00:02.0/0000:01:03.0`.
//!
//! Kata main's rule for PCI expander roots (pxb-pcie): a path of three or more elements whose
//! first element is `20`–`ff` (never a slot, slots end at `1f`) names the root bus: `20/00/02`
//! is slot `00` then `02` under `/devices/pci0000:20`. Here the devices on that root are named
//! on bus `0000:20` (`0000:20:00.0`), which is how the kernel names a root bus's devices;
//! Kata main's agent starts from bus `0000:00` under every root (by reading), which would
//! not find them.

use std::fmt;
use std::str::FromStr;

use super::sysfs::{Sysfs, components, is_virtio_dir};
use super::{AddressError, Uevent};

/// The most elements a path may have (a root bus and 16 levels of bridges is far more than
/// any VMM builds).
const MAX_ELEMENTS: usize = 17;

/// The first bus number Kata uses for PCI expander roots.
const EXPANDER_ROOT_MIN: u8 = 0x20;

/// One element of a PCI path: a slot and a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciSlot {
    slot: u8,
    function: u8,
}

impl PciSlot {
    /// A slot (`0..=0x1f`) and function (`0..=7`); `None` outside those.
    pub fn new(slot: u8, function: u8) -> Option<Self> {
        (slot <= 0x1f && function <= 7).then_some(Self { slot, function })
    }

    /// The slot.
    pub fn slot(self) -> u8 {
        self.slot
    }

    /// The function.
    pub fn function(self) -> u8 {
        self.function
    }
}

/// `SS`, or `SS.F` when the function is not 0.
impl fmt::Display for PciSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.slot)?;
        if self.function != 0 {
            write!(f, ".{}", self.function)?;
        }
        Ok(())
    }
}

/// A Kata PCI path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PciPath {
    root_bus: u8,
    elements: Vec<PciSlot>,
}

impl PciPath {
    /// The root bus (`00`, or an expander root `20`–`ff`).
    pub fn root_bus(&self) -> u8 {
        self.root_bus
    }

    /// The slots from the root bus to the disk.
    pub fn elements(&self) -> &[PciSlot] {
        &self.elements
    }

    /// The root's device path, `/devices/pci0000:<root>`.
    pub fn root_devpath(&self) -> String {
        format!("/devices/pci0000:{:02x}", self.root_bus)
    }

    /// The device path of the disk's PCI function, walking the bridges in sysfs
    /// (`pcipath_to_sysfs` in the Kata agent). `Err(reason)` when a step is not there (yet).
    pub(super) fn function_devpath(
        &self,
        sys: Sysfs<'_>,
    ) -> Result<Result<String, String>, AddressError> {
        let mut devpath = self.root_devpath();
        if sys.list(&sys.path(&devpath))?.is_none() {
            return Ok(Err(format!("no PCI root {devpath}")));
        }
        let mut bus = format!("0000:{:02x}", self.root_bus);
        let last = self.elements.len().saturating_sub(1);
        for (i, e) in self.elements.iter().enumerate() {
            let function = format!("{bus}:{:02x}.{}", e.slot, e.function);
            devpath = format!("{devpath}/{function}");
            if i == last {
                break;
            }
            let pci_bus = sys.path(&format!("{devpath}/pci_bus"));
            let buses = match sys.list(&pci_bus)? {
                Some(b) => b,
                None if sys.list(&sys.path(&devpath))?.is_none() => {
                    return Ok(Err(format!("no PCI device {function}")));
                }
                None => {
                    return Ok(Err(format!(
                        "PCI device {function} is not a bridge (no pci_bus)"
                    )));
                }
            };
            bus = match buses.as_slice() {
                [] => return Ok(Err(format!("PCI bridge {function} has no bus yet"))),
                [b] if is_bus_name(b) => b.clone(),
                [b] => {
                    return Err(AddressError::layout(
                        pci_bus,
                        format!("{b:?} is not a PCI bus"),
                    ));
                }
                _ => {
                    return Err(AddressError::layout(
                        pci_bus,
                        format!("expected one PCI bus, found {}", buses.join(", ")),
                    ));
                }
            };
        }
        Ok(Ok(devpath))
    }
}

/// Whether a uevent is the `add` of the disk behind the PCI function at `function`:
/// DEVPATH `<function>/virtio<N>/block/<name>`, nothing after.
pub(super) fn event_matches(function: &str, ev: &Uevent) -> bool {
    let Some(rest) = ev.devpath.strip_prefix(function) else {
        return false;
    };
    matches!(components(rest).as_slice(),
        [v, "block", name] if rest.starts_with('/') && is_virtio_dir(v) && *name == ev.devname)
}

/// `DDDD:BB`.
fn is_bus_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7 && b[4] == b':' && [0, 1, 2, 3, 5, 6].iter().all(|&i| b[i].is_ascii_hexdigit())
}

fn two_hex(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u8::from_str_radix(s, 16).ok())
        .flatten()
}

fn parse_element(e: &str) -> Result<PciSlot, String> {
    let (slot, function) = match e.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (e, None),
    };
    let slot =
        two_hex(slot).ok_or_else(|| format!("element {e:?}: the slot must be two hex digits"))?;
    let function = match function {
        None => 0,
        Some(f) if f.len() == 1 && matches!(f.as_bytes()[0], b'0'..=b'7') => f.as_bytes()[0] - b'0',
        Some(_) => return Err(format!("element {e:?}: the function must be one digit 0-7")),
    };
    PciSlot::new(slot, function)
        .ok_or_else(|| format!("element {e:?}: slot {slot:02x} is above 1f"))
}

impl PciPath {
    fn parse_inner(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("is empty".into());
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > MAX_ELEMENTS {
            return Err(format!(
                "has {} elements, more than {MAX_ELEMENTS}",
                parts.len()
            ));
        }
        let (root_bus, slots) = match parts.as_slice() {
            [first, rest @ ..] if rest.len() >= 2 => match two_hex(first) {
                Some(b) if b >= EXPANDER_ROOT_MIN => (b, rest),
                _ => (0, parts.as_slice()),
            },
            _ => (0, parts.as_slice()),
        };
        let elements = slots
            .iter()
            .map(|e| parse_element(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { root_bus, elements })
    }
}

/// `SS[.F]` elements joined by `/`, e.g. `02/00`, `05`, `01/0a/05`, `20/00/02`.
impl FromStr for PciPath {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_inner(s).map_err(|why| AddressError::invalid("virtio_pci", s, why))
    }
}

/// The canonical form: lower-case, `.F` only for functions other than 0.
impl fmt::Display for PciPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.root_bus != 0 {
            write!(f, "{:02x}/", self.root_bus)?;
        }
        for (i, e) in self.elements.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}
