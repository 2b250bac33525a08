//! `virtio_ccw` addresses: the CCW bus id `0.<ssid>.<devno>` of a virtio-blk device on s390x's
//! channel subsystem. Parsed everywhere; looked up only where there is a channel subsystem
//! (the finder refuses it elsewhere): `/sys/bus/ccw/devices/<id>` is the device, its disk is
//! `…/virtio<N>/block/<name>`, and its uevent's DEVPATH is
//! `/devices/css0/<subchannel>/<id>/virtio<N>/block/<name>`.

use std::fmt;
use std::str::FromStr;

use super::sysfs::{Look, Sysfs, components, is_virtio_dir};
use super::{AddressError, Uevent};

/// A CCW bus id (channel subsystem 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CcwAddress {
    ssid: u8,
    devno: u16,
}

impl CcwAddress {
    /// The subchannel set id (0–3).
    pub fn ssid(self) -> u8 {
        self.ssid
    }

    /// The device number.
    pub fn devno(self) -> u16 {
        self.devno
    }

    pub(super) fn look(self, sys: Sysfs<'_>) -> Result<Look, AddressError> {
        match sys.devpath_of(&sys.path(&format!("/bus/ccw/devices/{self}")))? {
            Some(device) => sys.virtio_disk(&device),
            None => Ok(Look::Missing(format!("no CCW device {self}"))),
        }
    }

    pub(super) fn event_matches(self, ev: &Uevent) -> bool {
        let id = self.to_string();
        matches!(components(&ev.devpath).as_slice(),
            ["devices", "css0", sch, dev, v, "block", name]
                if is_bus_id(sch) && *dev == id && is_virtio_dir(v) && *name == ev.devname)
    }
}

/// `0.<ssid>.<4 hex digits>`, as the kernel names subchannels and devices.
fn is_bus_id(s: &str) -> bool {
    s.parse::<CcwAddress>().is_ok_and(|a| a.to_string() == s)
}

/// `0.<ssid>.<devno>`: ssid 0–3, devno one to four hex digits.
impl FromStr for CcwAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| AddressError::invalid("virtio_ccw", s, why.to_owned());
        let mut it = s.split('.');
        let (Some(cssid), Some(ssid), Some(devno), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(bad("expected 0.<ssid>.<devno>"));
        };
        if cssid != "0" {
            return Err(bad("the channel subsystem id must be 0"));
        }
        let ssid = match ssid.as_bytes() {
            [d @ b'0'..=b'3'] => d - b'0',
            _ => return Err(bad("the subchannel set id must be one digit 0-3")),
        };
        if devno.is_empty() || devno.len() > 4 || !devno.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the device number must be 1 to 4 hex digits"));
        }
        let devno = u16::from_str_radix(devno, 16)
            .map_err(|_| bad("the device number must be 1 to 4 hex digits"))?;
        Ok(Self { ssid, devno })
    }
}

/// `0.<ssid>.<devno as 4 lower-case hex digits>`, the kernel's bus id.
impl fmt::Display for CcwAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0.{}.{:04x}", self.ssid, self.devno)
    }
}
