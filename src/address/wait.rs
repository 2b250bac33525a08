//! Finding an address's disk, waiting for it when it is being hot-plugged.
//!
//! The order is what makes it race-free: subscribe to uevents, *then* look at sysfs. A disk
//! that appears after the subscription is either in sysfs when we look or announced on the
//! subscription; one that appeared before is in sysfs. After a look that misses, the bus is
//! asked to scan (PCI rescan, SCSI host scan), then every uevent is either the disk's own
//! `add` (its DEVPATH matched as the Kata agent does) or a reason to look again (a bridge or
//! a SCSI host that came, events lost to an overflow). At the deadline: a typed error that
//! names the address, the time and what was still missing. The subscription is dropped (its
//! socket closed) on every way out.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sysfs::{Found, FoundBy, Look, Sysfs};
use super::{AddressError, Disk, GuestAddress, Received, Uevent, Uevents, pci, scsi};
use crate::system::DevNum;

/// How long a found disk's `/dev` node is waited for (devtmpfs makes it while the kernel
/// adds the disk, so only a look in the middle of that can miss it).
const NODE_GRACE: Duration = Duration::from_millis(250);
const NODE_POLL: Duration = Duration::from_millis(5);

/// The longest wait `find` honours (a year): longer timeouts are this.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// What an address resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A plain path, as given (nothing to look up).
    Path(PathBuf),
    /// A disk found through sysfs or its uevent.
    Disk(Disk),
}

impl Resolved {
    /// The path to use: the path as given, or the disk's `/dev` node.
    pub fn node(&self) -> &Path {
        match self {
            Resolved::Path(p) => p,
            Resolved::Disk(d) => &d.node,
        }
    }
}

/// Finds disks by guest address: where sysfs and `/dev` are, and whether this machine has a
/// CCW bus.
#[derive(Debug, Clone)]
pub struct DiskFinder {
    sysfs_root: PathBuf,
    dev_dir: PathBuf,
    ccw_bus: bool,
}

impl Default for DiskFinder {
    fn default() -> Self {
        Self {
            sysfs_root: PathBuf::from("/sys"),
            dev_dir: PathBuf::from("/dev"),
            ccw_bus: cfg!(target_arch = "s390x"),
        }
    }
}

impl DiskFinder {
    /// `/sys`, `/dev`, and a CCW bus only on s390x.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads sysfs below `root` instead of `/sys` (a fake tree in tests, or a chroot's).
    pub fn with_sysfs_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.sysfs_root = root.into();
        self
    }

    /// Expects device nodes in `dir` instead of `/dev`.
    pub fn with_dev_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dev_dir = dir.into();
        self
    }

    /// Says whether there is a CCW bus (without one, CCW addresses are refused).
    pub fn with_ccw_bus(mut self, present: bool) -> Self {
        self.ccw_bus = present;
        self
    }

    /// One look at sysfs: the disk if it is there now. No scan triggers, no waiting.
    pub fn look(&self, addr: &GuestAddress) -> Result<Option<Disk>, AddressError> {
        if let GuestAddress::Path(_) = addr {
            return Ok(None);
        }
        match self.search(addr)?.look()? {
            Look::Found(f) => Ok(Some(self.disk(addr, f, FoundBy::Sysfs, Instant::now())?)),
            Look::Missing(_) => Ok(None),
        }
    }

    /// Finds the disk at `addr`, waiting up to `timeout` for it to be hot-plugged (`0`: look,
    /// ask the bus to scan, look again). A plain path is returned as it is.
    pub fn find(
        &self,
        addr: &GuestAddress,
        timeout: Duration,
        uevents: &dyn Uevents,
    ) -> Result<Resolved, AddressError> {
        if let GuestAddress::Path(p) = addr {
            return Ok(Resolved::Path(p.clone()));
        }
        // a deadline past any wait that matters, rather than an overflow
        let deadline = Instant::now() + timeout.min(FOREVER);
        let mut search = self.search(addr)?;
        // before anything is looked at: what appears from here on is announced to us
        let mut events = uevents.subscribe().map_err(AddressError::Subscribe)?;
        let mut last;
        loop {
            match search.look()? {
                Look::Found(f) => {
                    return self
                        .disk(addr, f, FoundBy::Sysfs, deadline)
                        .map(Resolved::Disk);
                }
                Look::Missing(why) => last = why,
            }
            if search.kick()? {
                continue; // the scan may have added it synchronously
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AddressError::Timeout {
                    address: addr.describe(),
                    timeout,
                    last,
                });
            }
            match events.recv(deadline - now).map_err(AddressError::Receive)? {
                Received::Event(ev) => {
                    if let Some(found) = search.event_disk(&ev) {
                        return self
                            .disk(addr, found, FoundBy::Uevent, deadline)
                            .map(Resolved::Disk);
                    }
                }
                Received::Lost | Received::Idle => {}
            }
        }
    }

    fn search(&self, addr: &GuestAddress) -> Result<Search<'_>, AddressError> {
        if let GuestAddress::Ccw(c) = addr
            && !self.ccw_bus
        {
            return Err(AddressError::NoCcwBus {
                address: c.to_string(),
            });
        }
        Ok(Search {
            addr: addr.clone(),
            described: addr.describe(),
            sys: Sysfs::new(&self.sysfs_root),
            pci_function: None,
            pci_rescanned: false,
            scsi_hosts: BTreeSet::new(),
        })
    }

    /// The disk for what was found, with its node checked (waiting briefly for devtmpfs).
    fn disk(
        &self,
        addr: &GuestAddress,
        f: Found,
        found_by: FoundBy,
        deadline: Instant,
    ) -> Result<Disk, AddressError> {
        let node = self.dev_dir.join(&f.name);
        let grace_end = (Instant::now() + NODE_GRACE).min(deadline.max(Instant::now()));
        let node_present = loop {
            match node_kind(&node, f.devnum) {
                Ok(present) if present || Instant::now() >= grace_end => break present,
                Ok(_) => std::thread::sleep(NODE_POLL),
                Err(why) => {
                    return Err(AddressError::Node {
                        address: addr.describe(),
                        name: f.name,
                        node,
                        why,
                    });
                }
            }
        };
        Ok(Disk {
            sysfs_path: Sysfs::new(&self.sysfs_root).path(&f.devpath),
            node,
            name: f.name,
            devnum: f.devnum,
            node_present,
            found_by,
        })
    }
}

/// `Ok(true)`: the node is the block device `dev`; `Ok(false)`: no node; `Err`: something
/// else is there.
fn node_kind(node: &Path, dev: DevNum) -> Result<bool, String> {
    let m = match std::fs::symlink_metadata(node) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot stat it: {e}")),
    };
    if !m.file_type().is_block_device() {
        return Err("it is not a block device".into());
    }
    let rdev = m.rdev();
    let got = DevNum {
        major: u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
        minor: u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
    };
    if got != dev {
        return Err(format!("it is block device {got}, the disk is {dev}"));
    }
    Ok(true)
}

/// One address being searched for, with what the search has learnt and done so far.
struct Search<'a> {
    addr: GuestAddress,
    described: String,
    sys: Sysfs<'a>,
    /// The PCI function's device path, once the bridges on the way are known.
    pci_function: Option<String>,
    pci_rescanned: bool,
    /// SCSI hosts already asked to scan.
    scsi_hosts: BTreeSet<String>,
}

impl Search<'_> {
    fn look(&mut self) -> Result<Look, AddressError> {
        let sys = self.sys;
        match &self.addr {
            GuestAddress::Path(p) => Ok(Look::Missing(format!("{} is a path", p.display()))),
            GuestAddress::Pci(p) => match p.function_devpath(sys)? {
                Ok(function) => {
                    let look = if sys.list(&sys.path(&function))?.is_none() {
                        let name = function.rsplit('/').next().unwrap_or_default();
                        Ok(Look::Missing(format!("no PCI device {name}")))
                    } else {
                        sys.virtio_disk(&function)
                    };
                    self.pci_function = Some(function);
                    look
                }
                Err(why) => Ok(Look::Missing(why)),
            },
            GuestAddress::Scsi(a) => a.look(sys, &self.described),
            GuestAddress::Mmio(n) => n.look(sys, &self.described),
            GuestAddress::Pmem(n) => n.look(sys, &self.described),
            GuestAddress::Ccw(c) => c.look(sys),
        }
    }

    /// Asks the bus to scan for the disk; `true` if a scan was triggered now.
    fn kick(&mut self) -> Result<bool, AddressError> {
        let sys = self.sys;
        match &self.addr {
            GuestAddress::Pci(_) if !self.pci_rescanned => {
                self.pci_rescanned = true;
                sys.trigger(&sys.path("/bus/pci/rescan"), "1")
            }
            GuestAddress::Scsi(a) => {
                let before = self.scsi_hosts.len();
                a.scan_hosts(sys, &mut self.scsi_hosts)?;
                Ok(self.scsi_hosts.len() > before)
            }
            _ => Ok(false),
        }
    }

    /// The disk, when `ev` is its `add`.
    fn event_disk(&self, ev: &Uevent) -> Option<Found> {
        let devnum = ev.added_disk()?;
        let ours = match &self.addr {
            GuestAddress::Path(_) => false,
            GuestAddress::Pci(_) => self
                .pci_function
                .as_deref()
                .is_some_and(|f| pci::event_matches(f, ev)),
            GuestAddress::Scsi(a) => scsi::event_matches(*a, ev),
            GuestAddress::Mmio(n) => n.event_matches(ev),
            GuestAddress::Pmem(n) => n.event_matches(ev),
            GuestAddress::Ccw(c) => c.event_matches(ev),
        };
        ours.then(|| Found {
            name: ev.devname.clone(),
            devpath: ev.devpath.clone(),
            devnum,
        })
    }
}
