//! Kernel uevents: the message, its parsing, and the two small traits the finder waits
//! through ([`Uevents`] subscribes, [`UeventSource`] receives), so tests inject events.

use std::io;
use std::time::Duration;

use super::is_block_name;
use super::sysfs::components;
use crate::system::DevNum;

/// One kernel uevent (the fields the finder reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uevent {
    /// `ACTION`: `add`, `remove`, `change`, `bind`, …
    pub action: String,
    /// `DEVPATH`, relative to the sysfs root: `/devices/…`.
    pub devpath: String,
    /// `SUBSYSTEM`, e.g. `block`.
    pub subsystem: String,
    /// `DEVTYPE`, e.g. `disk` or `partition` (empty when absent).
    pub devtype: String,
    /// `DEVNAME`, the node's name under `/dev` (empty when absent).
    pub devname: String,
    /// `MAJOR`.
    pub major: Option<u32>,
    /// `MINOR`.
    pub minor: Option<u32>,
    /// `SEQNUM`.
    pub seqnum: Option<u64>,
}

impl Uevent {
    /// Parses one kernel uevent message: `ACTION@DEVPATH`, then `KEY=VALUE` fields, each
    /// NUL-terminated. `None` for anything else (udev's `libudev` messages, garbage).
    pub fn parse(msg: &[u8]) -> Option<Uevent> {
        let mut fields = msg.split(|&b| b == 0).filter(|f| !f.is_empty());
        let header = std::str::from_utf8(fields.next()?).ok()?;
        let (action, path) = header.split_once('@')?;
        let mut ev = Uevent::default();
        for field in fields {
            let Ok(field) = std::str::from_utf8(field) else {
                continue;
            };
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k {
                "ACTION" => ev.action = v.to_owned(),
                "DEVPATH" => ev.devpath = v.to_owned(),
                "SUBSYSTEM" => ev.subsystem = v.to_owned(),
                "DEVTYPE" => ev.devtype = v.to_owned(),
                "DEVNAME" => ev.devname = v.to_owned(),
                "MAJOR" => ev.major = v.parse().ok(),
                "MINOR" => ev.minor = v.parse().ok(),
                "SEQNUM" => ev.seqnum = v.parse().ok(),
                _ => {}
            }
        }
        // the header and the fields must agree: a message is the kernel's whole or nothing
        if ev.action != action || ev.devpath != path || !path.starts_with('/') {
            return None;
        }
        Some(ev)
    }

    /// A block disk's `add`, as the kernel sends it (for tests and tools).
    pub fn disk_added(devpath: &str, devname: &str, dev: DevNum) -> Uevent {
        Uevent {
            action: "add".into(),
            devpath: devpath.into(),
            subsystem: "block".into(),
            devtype: "disk".into(),
            devname: devname.into(),
            major: Some(dev.major),
            minor: Some(dev.minor),
            seqnum: None,
        }
    }

    /// The device number, when this is the `add` of a whole block disk (not a partition)
    /// whose DEVPATH ends in its DEVNAME.
    pub(super) fn added_disk(&self) -> Option<DevNum> {
        if self.action != "add"
            || self.subsystem != "block"
            || !(self.devtype.is_empty() || self.devtype == "disk")
            || !is_block_name(&self.devname)
            || components(&self.devpath).last() != Some(&self.devname.as_str())
        {
            return None;
        }
        Some(DevNum {
            major: self.major?,
            minor: self.minor?,
        })
    }
}

/// What one wait for a uevent gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An event.
    Event(Uevent),
    /// Events were lost (the socket's buffer overflowed, or a message was cut): whatever
    /// waits must look at sysfs again.
    Lost,
    /// Nothing arrived within the time given.
    Idle,
}

/// A live subscription to kernel uevents. Dropping it ends the subscription (closes the
/// socket).
pub trait UeventSource {
    /// Waits up to `timeout` for the next event.
    fn recv(&mut self, timeout: Duration) -> io::Result<Received>;
}

/// Where subscriptions come from: the kernel ([`super::NetlinkUevents`]) or a test.
pub trait Uevents {
    /// Subscribes: every event the kernel sends after this returns is delivered.
    fn subscribe(&self) -> io::Result<Box<dyn UeventSource>>;
}
