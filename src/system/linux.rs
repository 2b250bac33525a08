//! The real [`System`]: device-mapper ioctls through `devicemapper` (no udev: the guest has
//! none, so nodes are made here), loop devices through `loopdev`, the rest through `nix`
//! and `/proc`, `/sys`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use devicemapper::{DM, DevId, DmFlags, DmName as DmNameRef, DmOptions, DmUdevFlags};
use loopdev::{LoopControl, LoopDevice};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use super::pinned::PinnedDir;
use super::{
    BlockInfo, DevNum, DmDevice, FileInfo, FileKind, MountEntry, SysError, SysResult, System,
    parse_mountinfo,
};
use super::{DmName, MountFlags};
use crate::address::{AddressError, DiskFinder, GuestAddress, NetlinkUevents, Resolved};
use crate::trust::{KeyDescription, RootHashSignature, SignatureKey};
use crate::verity::units::{Bytes, SECTOR_SIZE};
use crate::verity::{TARGET_TYPE, VerityTable};
use std::time::Duration;

/// The device-mapper control node.
const CONTROL: &str = "/dev/mapper/control";

/// Present when the running kernel has device-mapper.
const DM_IN_KERNEL: &str = "/sys/class/misc/device-mapper";

/// How often a loop attach is retried when another process takes the free device first.
const LOOP_ATTACH_TRIES: usize = 16;

/// The Linux implementation.
pub struct LinuxSystem {
    dm: Mutex<Option<DM>>,
    /// Open handles of the loop devices this process attached (closing the last handle of an
    /// autoclear loop device that nothing else holds detaches it).
    loops: Mutex<HashMap<PathBuf, LoopDevice>>,
}

impl Default for LinuxSystem {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxSystem {
    /// A new instance; `/dev/mapper/control` is opened on first use.
    pub fn new() -> Self {
        Self {
            dm: Mutex::new(None),
            loops: Mutex::new(HashMap::new()),
        }
    }

    fn with_dm<T>(
        &self,
        op: &'static str,
        target: &str,
        f: impl FnOnce(&DM) -> Result<T, devicemapper::DmError>,
    ) -> SysResult<T> {
        let mut guard = self.dm.lock().map_err(|_| {
            SysError::new(op, target, io::Error::other("device-mapper lock poisoned"))
        })?;
        if guard.is_none() {
            *guard = Some(DM::new().map_err(|e| {
                SysError::new(
                    op,
                    target,
                    io::Error::other(format!(
                        "device-mapper is not available ({CONTROL}: {e}); is dm_mod loaded and /dev/mapper/control present?"
                    )),
                )
            })?);
        }
        let dm = guard.as_ref().ok_or_else(|| {
            SysError::new(op, target, io::Error::other("device-mapper unavailable"))
        })?;
        f(dm).map_err(|e| SysError::new(op, target, dm_io(e)))
    }
}

/// No udev in the guest: tell the kernel and libdevmapper's cookie protocol not to wait.
fn no_udev() -> DmOptions {
    DmOptions::private().set_udev_flags(
        DmOptions::private().udev_flags() | DmUdevFlags::DM_UDEV_DISABLE_DM_RULES_FLAG,
    )
}

fn dm_name(name: &DmName) -> SysResult<&DmNameRef> {
    DmNameRef::new(name.as_str()).map_err(|e| {
        SysError::new(
            "check dm name",
            name,
            io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        )
    })
}

/// The OS error inside a devicemapper error, keeping its errno when there is one.
fn dm_io(e: devicemapper::DmError) -> io::Error {
    if let devicemapper::DmError::Core(devicemapper::errors::Error::Ioctl(_, _, _, errno)) = &e {
        return io::Error::from_raw_os_error(**errno as i32);
    }
    io::Error::other(e.to_string())
}

fn io_err(op: &'static str, target: impl std::fmt::Display) -> impl FnOnce(io::Error) -> SysError {
    move |e| SysError::new(op, target, e)
}

fn nix_err(
    op: &'static str,
    target: impl std::fmt::Display,
) -> impl FnOnce(nix::Error) -> SysError {
    move |e| SysError::new(op, target, io::Error::from_raw_os_error(e as i32))
}

impl System for LinuxSystem {
    fn dm_create(&self, name: &DmName) -> SysResult<DevNum> {
        let n = dm_name(name)?;
        let info = self.with_dm("create dm device", name.as_str(), |dm| {
            dm.device_create(n, None, no_udev().set_flags(DmFlags::DM_READONLY))
        })?;
        let d = info.device();
        Ok(DevNum {
            major: d.major,
            minor: d.minor,
        })
    }

    fn dm_load(&self, name: &DmName, table: &VerityTable) -> SysResult<()> {
        let n = dm_name(name)?;
        let targets = [(
            0u64,
            table.length.0,
            TARGET_TYPE.to_owned(),
            table.target.to_string(),
        )];
        self.with_dm("load verity table into", name.as_str(), |dm| {
            dm.table_load(
                &DevId::Name(n),
                &targets,
                no_udev().set_flags(DmFlags::DM_READONLY),
            )
        })
        .map(drop)
    }

    fn dm_load_signed(
        &self,
        name: &DmName,
        table: &VerityTable,
        key: &KeyDescription,
        signature: &RootHashSignature,
    ) -> SysResult<()> {
        // The key lives in this thread's keyring only: add, load and unlink here, in one call.
        let keyring_error = |op, e: &dyn std::error::Error| {
            SysError::new(op, name, io::Error::other(crate::error_chain(e)))
        };
        let loaded = SignatureKey::load(key.clone(), signature)
            .map_err(|e| keyring_error("add the signature key to the thread keyring for", &e))?;
        let result = self.dm_load(name, table);
        let unlinked = loaded
            .unlink()
            .map_err(|e| keyring_error("unlink the signature key of", &e));
        result.and(unlinked)
    }

    fn dm_resume(&self, name: &DmName) -> SysResult<()> {
        let n = dm_name(name)?;
        self.with_dm("resume dm device", name.as_str(), |dm| {
            dm.device_suspend(&DevId::Name(n), no_udev())
        })
        .map(drop)
    }

    fn dm_remove(&self, name: &DmName, deferred: bool) -> SysResult<()> {
        let n = dm_name(name)?;
        let flags = if deferred {
            DmFlags::DM_DEFERRED_REMOVE
        } else {
            DmFlags::empty()
        };
        self.with_dm("remove dm device", name.as_str(), |dm| {
            dm.device_remove(&DevId::Name(n), no_udev().set_flags(flags))
        })
        .map(drop)
    }

    fn dm_table(&self, name: &DmName) -> SysResult<String> {
        let n = dm_name(name)?;
        let (_, lines) = self.with_dm("read table of", name.as_str(), |dm| {
            dm.table_status(
                &DevId::Name(n),
                DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
            )
        })?;
        Ok(target_lines(&lines))
    }

    fn dm_status(&self, name: &DmName) -> SysResult<String> {
        let n = dm_name(name)?;
        let (_, lines) = self.with_dm("read status of", name.as_str(), |dm| {
            dm.table_status(&DevId::Name(n), DmOptions::default())
        })?;
        Ok(lines
            .into_iter()
            .map(|(_, _, _, s)| s)
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn dm_list(&self) -> SysResult<Vec<DmDevice>> {
        // A kernel without device-mapper (not built in, module not loaded) has no dm device,
        // and nothing of ours to tear down. With it, a missing control node is an error.
        if !Path::new(DM_IN_KERNEL).exists() {
            return Ok(Vec::new());
        }
        let list = self.with_dm("list dm devices", "", DM::list_devices)?;
        Ok(list
            .into_iter()
            .map(|(name, dev, _)| DmDevice {
                name: name.to_string(),
                dev: DevNum {
                    major: dev.major,
                    minor: dev.minor,
                },
            })
            .collect())
    }

    fn make_node(&self, path: &Path, dev: DevNum) -> SysResult<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent.display()))?;
        }
        let devt = nix::sys::stat::makedev(u64::from(dev.major), u64::from(dev.minor));
        nix::sys::stat::mknod(path, SFlag::S_IFBLK, Mode::from_bits_truncate(0o600), devt)
            .map_err(nix_err("create device node", path.display()))
    }

    fn remove_file(&self, path: &Path) -> SysResult<()> {
        fs::remove_file(path).map_err(io_err("remove", path.display()))
    }

    fn loop_attach(&self, file: &Path) -> SysResult<PathBuf> {
        let op = "attach loop device to";
        let control = LoopControl::open().map_err(io_err(op, file.display()))?;
        let mut last = io::Error::other("no free loop device");
        for _ in 0..LOOP_ATTACH_TRIES {
            let device = control.next_free().map_err(io_err(op, file.display()))?;
            match device.with().read_only(true).autoclear(true).attach(file) {
                Ok(()) => {
                    let path = device.path().ok_or_else(|| {
                        SysError::new(
                            op,
                            file.display(),
                            io::Error::other("loop device has no path"),
                        )
                    })?;
                    let mut loops = self.loops.lock().map_err(|_| {
                        SysError::new(op, file.display(), io::Error::other("lock poisoned"))
                    })?;
                    loops.insert(path.clone(), device);
                    return Ok(path);
                }
                // Another process took this device between next_free and attach: try again.
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => last = e,
                Err(e) => return Err(SysError::new(op, file.display(), e)),
            }
        }
        Err(SysError::new(op, file.display(), last))
    }

    fn loop_detach(&self, device: &Path) -> SysResult<()> {
        let held = self.loops.lock().ok().and_then(|mut l| l.remove(device));
        let dev = match held {
            Some(d) => d,
            None => {
                LoopDevice::open(device).map_err(io_err("open loop device", device.display()))?
            }
        };
        dev.detach()
            .map_err(io_err("detach loop device", device.display()))
    }

    fn loop_release(&self, device: &Path) -> SysResult<()> {
        // Dropping the handle closes our descriptor.
        let held = self
            .loops
            .lock()
            .map_err(|_| {
                SysError::new(
                    "release loop device",
                    device.display(),
                    io::Error::other("lock poisoned"),
                )
            })?
            .remove(device);
        drop(held);
        Ok(())
    }

    fn loop_backing_file(&self, dev: DevNum) -> SysResult<Option<PathBuf>> {
        let p = format!("/sys/dev/block/{dev}/loop/backing_file");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(PathBuf::from(s.trim_end()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SysError::new("read", p, e)),
        }
    }

    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fs_type: &str,
        flags: MountFlags,
        data: &str,
    ) -> SysResult<()> {
        let mut ms = MsFlags::empty();
        for (on, f) in [
            (flags.read_only, MsFlags::MS_RDONLY),
            (flags.nodev, MsFlags::MS_NODEV),
            (flags.nosuid, MsFlags::MS_NOSUID),
            (flags.noexec, MsFlags::MS_NOEXEC),
            (flags.noatime, MsFlags::MS_NOATIME),
            (flags.nodiratime, MsFlags::MS_NODIRATIME),
        ] {
            if on {
                ms |= f;
            }
        }
        let data = (!data.is_empty()).then_some(data);
        // Mount on the directory checked, not on whatever its path names by now.
        let pinned = PinnedDir::open(target)?;
        nix::mount::mount(Some(source), &pinned.proc_path(), Some(fs_type), ms, data).map_err(
            nix_err(
                "mount",
                format!("{} on {}", source.display(), target.display()),
            ),
        )
    }

    fn unmount(&self, target: &Path) -> SysResult<()> {
        nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW)
            .map_err(nix_err("unmount", target.display()))
    }

    fn mounts(&self) -> SysResult<Vec<MountEntry>> {
        let bytes =
            fs::read("/proc/self/mountinfo").map_err(io_err("read", "/proc/self/mountinfo"))?;
        // A mount point that is not UTF-8 (none of the daemon's: requests are UTF-8) is kept
        // with its odd bytes replaced, so it never matches a path we look for.
        Ok(parse_mountinfo(&String::from_utf8_lossy(&bytes)))
    }

    fn stat(&self, path: &Path) -> SysResult<FileInfo> {
        let m = fs::metadata(path).map_err(io_err("stat", path.display()))?;
        Ok(file_info(&m))
    }

    fn fs_magic(&self, path: &Path) -> SysResult<u64> {
        let st = nix::sys::statfs::statfs(path).map_err(nix_err("statfs", path.display()))?;
        // f_type is a signed word on some ABIs; magic numbers are small positive values.
        Ok(u64::try_from(st.filesystem_type().0).unwrap_or(u64::MAX))
    }

    fn mount_id(&self, path: &Path) -> SysResult<u64> {
        use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
        let st = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)
            .map_err(|e| SysError::new("statx", path.display(), io::Error::from(e)))?;
        if StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::MNT_ID) {
            Ok(st.stx_mnt_id)
        } else {
            Err(SysError::new(
                "statx",
                path.display(),
                io::Error::other(
                    "the kernel does not report mount ids (Linux 5.8 or later needed)",
                ),
            ))
        }
    }

    fn lstat(&self, path: &Path) -> SysResult<FileInfo> {
        let m = fs::symlink_metadata(path).map_err(io_err("lstat", path.display()))?;
        Ok(file_info(&m))
    }

    fn block_info(&self, dev: DevNum) -> SysResult<BlockInfo> {
        let base = format!("/sys/dev/block/{dev}");
        let read_u64 = |p: &str| -> SysResult<u64> {
            let s = fs::read_to_string(p).map_err(io_err("read", p))?;
            s.trim().parse().map_err(|_| {
                SysError::new(
                    "parse",
                    p,
                    io::Error::new(io::ErrorKind::InvalidData, s.trim().to_owned()),
                )
            })
        };
        let sectors = read_u64(&format!("{base}/size"))?;
        // Partitions have no queue/ of their own: it is their disk's.
        let lbs = read_u64(&format!("{base}/queue/logical_block_size"))
            .or_else(|_| read_u64(&format!("{base}/../queue/logical_block_size")))
            .unwrap_or(SECTOR_SIZE);
        Ok(BlockInfo {
            size: Bytes(sectors.saturating_mul(SECTOR_SIZE)),
            logical_block_size: Bytes(lbs),
        })
    }

    fn make_dir(&self, path: &Path) -> SysResult<bool> {
        match fs::create_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(SysError::new("create directory", path.display(), e)),
        }
    }

    fn remove_dir(&self, path: &Path) -> SysResult<()> {
        fs::remove_dir(path).map_err(io_err("remove directory", path.display()))
    }

    fn remove_tree(&self, path: &Path) -> SysResult<()> {
        // Never below a mount: a mount inside would have its files deleted.
        let inside = self.mounts()?.iter().any(|m| m.target.starts_with(path));
        if inside {
            return Err(SysError::new(
                "remove directory tree",
                path.display(),
                io::Error::from_raw_os_error(nix::libc::EBUSY),
            ));
        }
        // std's remove_dir_all opens each directory relative to its parent without following
        // symlinks, so a symlink swapped in meanwhile cannot send it elsewhere.
        fs::remove_dir_all(path).map_err(io_err("remove directory tree", path.display()))
    }

    fn find_disk(&self, addr: &GuestAddress, timeout: Duration) -> Result<PathBuf, AddressError> {
        match DiskFinder::new().find(addr, timeout, &NetlinkUevents)? {
            Resolved::Path(p) => Ok(p),
            Resolved::Disk(d) if d.node_present => Ok(d.node),
            Resolved::Disk(d) => {
                // No devtmpfs: make the node the kernel announced (as udev would).
                self.make_node(&d.node, d.devnum)
                    .map_err(|e| AddressError::Node {
                        address: addr.describe(),
                        name: d.name.clone(),
                        node: d.node.clone(),
                        why: crate::error_chain(&e),
                    })?;
                Ok(d.node)
            }
        }
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> SysResult<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let f = fs::File::open(path).map_err(io_err("open", path.display()))?;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let at = offset.saturating_add(u64::try_from(got).unwrap_or(u64::MAX));
            match f.read_at(buf.get_mut(got..).unwrap_or_default(), at) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SysError::new("read", path.display(), e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn read_device(&self, path: &Path) -> SysResult<u64> {
        let mut f = fs::File::open(path).map_err(io_err("open", path.display()))?;
        io::copy(&mut f, &mut io::sink()).map_err(io_err("read", path.display()))
    }
}

fn target_lines(lines: &[(u64, u64, String, String)]) -> String {
    lines
        .iter()
        .map(|(start, len, ty, params)| format!("{start} {len} {ty} {params}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn file_info(m: &fs::Metadata) -> FileInfo {
    let t = m.file_type();
    let kind = if t.is_block_device() {
        let rdev = m.rdev();
        let major = u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX);
        let minor = u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX);
        FileKind::Block(DevNum { major, minor })
    } else if t.is_char_device() {
        FileKind::Char
    } else if t.is_file() {
        FileKind::Regular
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    };
    FileInfo {
        kind,
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
    }
}
