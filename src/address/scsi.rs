//! `scsi` addresses: `<target>:<lun>` on the guest's virtio-scsi controller (the runtime's
//! drive index is `target * 256 + lun`), the host scan that makes the kernel probe it, its
//! sysfs directory and its uevent.
//!
//! The kernel names a SCSI device `<host>:<channel>:<target>:<lun>`; Kata uses channel 0 and
//! one controller. Every SCSI host is asked to scan `0 <target> <lun>` (a host that has no
//! such target answers `EINVAL` and is skipped), and the disk is the one under
//! `/sys/bus/scsi/devices/<h>:0:<target>:<lun>/block/`, on whichever host; two hosts with a
//! disk at that address is an error, not a guess.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::sysfs::{Look, Sysfs, components};
use super::{AddressError, Uevent};

/// A SCSI target and LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScsiAddress {
    target: u32,
    lun: u32,
}

impl ScsiAddress {
    /// A target and LUN.
    pub fn new(target: u32, lun: u32) -> Self {
        Self { target, lun }
    }

    /// The target (SCSI id).
    pub fn target(self) -> u32 {
        self.target
    }

    /// The LUN.
    pub fn lun(self) -> u32 {
        self.lun
    }

    /// Whether `H:C:T:L` is this address on channel 0 of some host; returns the host.
    fn host_of(self, hctl: &str) -> Option<u32> {
        let mut it = hctl.split(':');
        let (h, c, t, l) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || c != "0" {
            return None;
        }
        let n = |s: &str| decimal(s).ok();
        (n(t)? == self.target && n(l)? == self.lun).then_some(n(h)?)
    }

    /// Asks every SCSI host not asked yet to scan this target and LUN (`kicked` remembers
    /// them, so a controller that appears later is asked too).
    pub(super) fn scan_hosts(
        self,
        sys: Sysfs<'_>,
        kicked: &mut BTreeSet<String>,
    ) -> Result<(), AddressError> {
        let class = sys.path("/class/scsi_host");
        for host in sys.list(&class)?.unwrap_or_default() {
            if kicked.contains(&host) {
                continue;
            }
            let scan = class.join(&host).join("scan");
            match sys.trigger(&scan, &format!("0 {} {}", self.target, self.lun)) {
                Ok(_) => {}
                // this host has no such channel or target
                Err(AddressError::Scan { source, .. })
                    if source.raw_os_error() == Some(nix::libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
            kicked.insert(host);
        }
        Ok(())
    }

    /// One look: the disk at this address on any host.
    pub(super) fn look(self, sys: Sysfs<'_>, described: &str) -> Result<Look, AddressError> {
        let devices = sys.path("/bus/scsi/devices");
        let mut disks = Vec::new();
        let mut bare = Vec::new();
        for hctl in sys.list(&devices)?.unwrap_or_default() {
            if self.host_of(&hctl).is_none() {
                continue;
            }
            let Some(devpath) = sys.devpath_of(&devices.join(&hctl))? else {
                continue;
            };
            let block = sys
                .list(&sys.path(&format!("{devpath}/block")))?
                .unwrap_or_default();
            if block.is_empty() {
                bare.push(hctl.clone());
            }
            disks.extend(
                block
                    .into_iter()
                    .map(|name| format!("{devpath}/block/{name}")),
            );
        }
        match disks.len() {
            0 if bare.is_empty() => Ok(Look::Missing(format!(
                "no SCSI device {} on any host",
                self.hctl_pattern()
            ))),
            0 => Ok(Look::Missing(format!(
                "SCSI device {} has no block device yet",
                bare.join(", ")
            ))),
            1 => sys.found_at(disks.remove(0)),
            _ => Err(AddressError::Ambiguous {
                address: described.to_owned(),
                candidates: disks.join(", "),
            }),
        }
    }

    fn hctl_pattern(self) -> String {
        format!("*:0:{}:{}", self.target, self.lun)
    }
}

/// Whether a uevent is the `add` of this address's disk: DEVPATH ends
/// `/<h>:0:<target>:<lun>/block/<name>`.
pub(super) fn event_matches(addr: ScsiAddress, ev: &Uevent) -> bool {
    matches!(components(&ev.devpath).as_slice(),
        [.., hctl, "block", name] if *name == ev.devname && addr.host_of(hctl).is_some())
}

/// A decimal number without sign or leading zeros.
fn decimal(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a decimal number"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!("{s:?} has a leading zero"));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is above {}", u32::MAX))
}

/// `<target>:<lun>`, both decimal, e.g. `2:1`.
impl FromStr for ScsiAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| AddressError::invalid("scsi", s, why);
        let (t, l) = s
            .split_once(':')
            .ok_or_else(|| bad("expected <target>:<lun>".into()))?;
        if l.contains(':') {
            return Err(bad(
                "expected <target>:<lun>, found more than two parts".into()
            ));
        }
        let target = decimal(t).map_err(|w| bad(format!("target {w}")))?;
        let lun = decimal(l).map_err(|w| bad(format!("LUN {w}")))?;
        Ok(Self { target, lun })
    }
}

impl fmt::Display for ScsiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.target, self.lun)
    }
}
