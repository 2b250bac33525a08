//! [`FakeSystem`]: an in-memory model of the kernel objects this crate touches (dm devices,
//! nodes, loop devices, mounts, directories), recording every call and able to fail any one.
//! Passed explicitly to constructors in tests; never selected implicitly.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::libc;

use super::{
    BlockInfo, DevNum, DmDevice, FileInfo, FileKind, MountEntry, SysError, SysResult, System,
};
use crate::plan::{DmName, MountFlags};
use crate::verity::VerityTable;
use crate::verity::units::{Bytes, SECTOR_SIZE};

/// Device-mapper's major number in the fake.
const DM_MAJOR: u32 = 253;
/// Loop devices' major number.
const LOOP_MAJOR: u32 = 7;
/// `statfs` magic numbers the fake reports.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;
const SYSFS_MAGIC: u64 = 0x6265_6572;
const EXT4_SUPER_MAGIC: u64 = 0xef53;
/// Any directory named `shared` is on virtio-fs (FUSE) in the fake, as Kata's shared folder.
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// One kind of call, to record and to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Op {
    DmCreate,
    DmLoad,
    DmResume,
    DmRemove,
    DmTable,
    DmStatus,
    DmList,
    MakeNode,
    RemoveFile,
    LoopAttach,
    LoopDetach,
    LoopRelease,
    LoopBackingFile,
    Mount,
    Unmount,
    Mounts,
    Stat,
    Lstat,
    FsMagic,
    BlockInfo,
    MakeDir,
    RemoveDir,
    ReadDevice,
}

impl Op {
    /// Every operation that changes the system (the ones a transaction must undo).
    pub const MUTATING: [Op; 12] = [
        Op::MakeDir,
        Op::RemoveDir,
        Op::DmCreate,
        Op::DmLoad,
        Op::DmResume,
        Op::DmRemove,
        Op::MakeNode,
        Op::RemoveFile,
        Op::LoopAttach,
        Op::LoopDetach,
        Op::Mount,
        Op::Unmount,
    ];
}

#[derive(Debug, Clone)]
struct FakeDm {
    dev: DevNum,
    table: Option<String>,
    active: bool,
    deferred_remove: bool,
}

#[derive(Debug, Default)]
struct State {
    dm: BTreeMap<String, FakeDm>,
    next_dm_minor: u32,
    next_loop: u32,
    /// Block device nodes (seeded devices, made nodes, loop devices).
    nodes: BTreeMap<PathBuf, DevNum>,
    /// Nodes created by `make_node` (a subset of `nodes`).
    made_nodes: BTreeSet<PathBuf>,
    block_info: BTreeMap<DevNum, BlockInfo>,
    files: BTreeMap<PathBuf, u64>,
    char_devices: BTreeSet<PathBuf>,
    symlinks: BTreeMap<PathBuf, PathBuf>,
    dirs: BTreeSet<PathBuf>,
    loops: BTreeMap<PathBuf, (DevNum, PathBuf)>,
    mounts: Vec<MountEntry>,
    corrupt: BTreeSet<String>,
    calls: Vec<Op>,
    /// Fail the call of this op after this many more calls of it succeed.
    fail: Vec<(Op, usize, i32)>,
    /// After this many more mutating calls, every mutating call fails (a process that died).
    crash_after: Option<usize>,
}

/// What exists in the fake, for "nothing left behind" assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// dm device names.
    pub dm: BTreeSet<String>,
    /// Nodes made by `make_node`.
    pub nodes: BTreeSet<PathBuf>,
    /// Attached loop devices.
    pub loops: BTreeSet<PathBuf>,
    /// Mount points, in mount order.
    pub mounts: Vec<PathBuf>,
    /// Directories.
    pub dirs: BTreeSet<PathBuf>,
}

/// The in-memory fake.
#[derive(Debug, Default)]
pub struct FakeSystem {
    state: Mutex<State>,
}

fn err(op: &'static str, target: impl std::fmt::Display, errno: i32) -> SysError {
    SysError::new(op, target, io::Error::from_raw_os_error(errno))
}

impl FakeSystem {
    /// An empty system with `/` and `/dev` directories.
    pub fn new() -> Self {
        let fake = Self::default();
        {
            let mut s = fake.lock();
            s.dirs.insert(PathBuf::from("/"));
            s.dirs.insert(PathBuf::from("/dev"));
        }
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread poisons the lock; the state is still usable for others.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a block device node of `size` bytes with 512-byte logical blocks.
    pub fn add_block_device(&self, path: &str, dev: DevNum, size: u64) {
        let mut s = self.lock();
        s.nodes.insert(PathBuf::from(path), dev);
        s.block_info.insert(
            dev,
            BlockInfo {
                size: Bytes(size),
                logical_block_size: SECTOR_SIZE,
            },
        );
    }

    /// Adds a regular file of `size` bytes.
    pub fn add_file(&self, path: &str, size: u64) {
        self.lock().files.insert(PathBuf::from(path), size);
    }

    /// Adds a character device (e.g. `/dev/null`).
    pub fn add_char_device(&self, path: &str) {
        self.lock().char_devices.insert(PathBuf::from(path));
    }

    /// Adds a symlink `path` → `target` (followed by `stat`, not by `lstat`).
    pub fn add_symlink(&self, path: &str, target: &str) {
        self.lock()
            .symlinks
            .insert(PathBuf::from(path), PathBuf::from(target));
    }

    /// Adds a directory.
    pub fn add_dir(&self, path: &str) {
        self.lock().dirs.insert(PathBuf::from(path));
    }

    /// Makes the `nth` (0-based, counted from now) call of `op` fail with `errno`.
    pub fn fail_nth(&self, op: Op, nth: usize, errno: i32) {
        self.lock().fail.push((op, nth, errno));
    }

    /// Simulates a crash: after `n` more mutating calls, every mutating call fails with EIO
    /// (so neither the operation nor its rollback changes anything any more).
    pub fn crash_after(&self, n: usize) {
        self.lock().crash_after = Some(n);
    }

    /// Ends every injected failure and crash (the "restarted" process works again).
    pub fn clear_failures(&self) {
        let mut s = self.lock();
        s.fail.clear();
        s.crash_after = None;
    }

    /// Makes the dm device report corruption (`C`).
    pub fn set_corrupt(&self, name: &str) {
        self.lock().corrupt.insert(name.to_owned());
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Op> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` so far.
    pub fn count(&self, op: Op) -> usize {
        self.lock().calls.iter().filter(|c| **c == op).count()
    }

    /// What exists now.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        Snapshot {
            dm: s.dm.keys().cloned().collect(),
            nodes: s.made_nodes.clone(),
            loops: s.loops.keys().cloned().collect(),
            mounts: s.mounts.iter().map(|m| m.target.clone()).collect(),
            dirs: s.dirs.clone(),
        }
    }

    /// Records the call and fails it if asked to.
    fn enter(
        &self,
        op: Op,
        name: &'static str,
        target: &dyn std::fmt::Display,
    ) -> SysResult<MutexGuard<'_, State>> {
        let mut s = self.lock();
        s.calls.push(op);
        let mut fail = None;
        for f in s.fail.iter_mut().filter(|f| f.0 == op) {
            if f.1 == 0 {
                fail = Some(f.2);
            }
            f.1 = f.1.wrapping_sub(1);
        }
        s.fail.retain(|f| f.0 != op || f.1 != usize::MAX);
        if Op::MUTATING.contains(&op) {
            match s.crash_after {
                Some(0) => fail = Some(libc::EIO),
                Some(n) => s.crash_after = Some(n - 1),
                None => {}
            }
        }
        match fail {
            Some(errno) => Err(err(name, target, errno)),
            None => Ok(s),
        }
    }
}

impl State {
    fn dev_in_use(&self, dev: DevNum) -> bool {
        self.mounts.iter().any(|m| m.dev == dev)
            || self.dm.values().filter_map(|d| d.table.as_ref()).any(|t| {
                self.nodes
                    .iter()
                    .any(|(p, n)| *n == dev && t.contains(&*p.to_string_lossy()))
            })
    }

    fn info(&self, path: &Path, op: &'static str) -> SysResult<FileInfo> {
        let kind = if let Some(dev) = self.nodes.get(path) {
            FileKind::Block(*dev)
        } else if self.files.contains_key(path) {
            FileKind::Regular
        } else if self.dirs.contains(path) {
            FileKind::Directory
        } else if self.char_devices.contains(path) {
            FileKind::Char
        } else {
            return Err(err(op, path.display(), libc::ENOENT));
        };
        // A stable fake inode: the path's hash.
        let ino = path
            .to_string_lossy()
            .bytes()
            .fold(1469598103934665603u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(1099511628211)
            });
        Ok(FileInfo {
            kind,
            dev: 1,
            ino,
            size: self.files.get(path).copied().unwrap_or(0),
        })
    }

    fn reap_deferred(&mut self) {
        let dead: Vec<String> = self
            .dm
            .iter()
            .filter(|(_, d)| d.deferred_remove && !self.mounts.iter().any(|m| m.dev == d.dev))
            .map(|(n, _)| n.clone())
            .collect();
        for n in dead {
            self.dm.remove(&n);
        }
    }
}

impl System for FakeSystem {
    fn dm_create(&self, name: &DmName) -> SysResult<DevNum> {
        let mut s = self.enter(Op::DmCreate, "create dm device", name)?;
        if s.dm.contains_key(name.as_str()) {
            return Err(err("create dm device", name, libc::EBUSY));
        }
        let dev = DevNum {
            major: DM_MAJOR,
            minor: s.next_dm_minor,
        };
        s.next_dm_minor += 1;
        s.dm.insert(
            name.as_str().to_owned(),
            FakeDm {
                dev,
                table: None,
                active: false,
                deferred_remove: false,
            },
        );
        Ok(dev)
    }

    fn dm_load(&self, name: &DmName, table: &VerityTable) -> SysResult<()> {
        let mut s = self.enter(Op::DmLoad, "load verity table into", name)?;
        let Some(d) = s.dm.get_mut(name.as_str()) else {
            return Err(err("load verity table into", name, libc::ENXIO));
        };
        d.table = Some(table.to_string());
        Ok(())
    }

    fn dm_resume(&self, name: &DmName) -> SysResult<()> {
        let mut s = self.enter(Op::DmResume, "resume dm device", name)?;
        match s.dm.get_mut(name.as_str()) {
            Some(d) if d.table.is_some() => {
                d.active = true;
                Ok(())
            }
            Some(_) => Err(err("resume dm device", name, libc::EINVAL)),
            None => Err(err("resume dm device", name, libc::ENXIO)),
        }
    }

    fn dm_remove(&self, name: &DmName, deferred: bool) -> SysResult<()> {
        let mut s = self.enter(Op::DmRemove, "remove dm device", name)?;
        let Some(d) = s.dm.get(name.as_str()).cloned() else {
            return Err(err("remove dm device", name, libc::ENXIO));
        };
        if s.dev_in_use(d.dev) {
            if !deferred {
                return Err(err("remove dm device", name, libc::EBUSY));
            }
            if let Some(d) = s.dm.get_mut(name.as_str()) {
                d.deferred_remove = true;
            }
            return Ok(());
        }
        s.dm.remove(name.as_str());
        Ok(())
    }

    fn dm_table(&self, name: &DmName) -> SysResult<String> {
        let s = self.enter(Op::DmTable, "read table of", name)?;
        match s.dm.get(name.as_str()) {
            Some(FakeDm {
                table: Some(t),
                active: true,
                ..
            }) => Ok(t.clone()),
            Some(_) => Ok(String::new()),
            None => Err(err("read table of", name, libc::ENXIO)),
        }
    }

    fn dm_status(&self, name: &DmName) -> SysResult<String> {
        let s = self.enter(Op::DmStatus, "read status of", name)?;
        match s.dm.get(name.as_str()) {
            Some(d) if d.active => Ok(if s.corrupt.contains(name.as_str()) {
                "C"
            } else {
                "V"
            }
            .to_owned()),
            Some(_) => Ok(String::new()),
            None => Err(err("read status of", name, libc::ENXIO)),
        }
    }

    fn dm_list(&self) -> SysResult<Vec<DmDevice>> {
        let s = self.enter(Op::DmList, "list dm devices", &"")?;
        Ok(s.dm
            .iter()
            .map(|(n, d)| DmDevice {
                name: n.clone(),
                dev: d.dev,
            })
            .collect())
    }

    fn make_node(&self, path: &Path, dev: DevNum) -> SysResult<()> {
        let mut s = self.enter(Op::MakeNode, "create device node", &path.display())?;
        if s.nodes.contains_key(path) || s.files.contains_key(path) {
            return Err(err("create device node", path.display(), libc::EEXIST));
        }
        s.nodes.insert(path.to_owned(), dev);
        s.made_nodes.insert(path.to_owned());
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::RemoveFile, "remove", &path.display())?;
        let had = s.nodes.remove(path).is_some() | s.files.remove(path).is_some();
        s.made_nodes.remove(path);
        if had {
            Ok(())
        } else {
            Err(err("remove", path.display(), libc::ENOENT))
        }
    }

    fn loop_attach(&self, file: &Path) -> SysResult<PathBuf> {
        let mut s = self.enter(Op::LoopAttach, "attach loop device to", &file.display())?;
        let Some(size) = s.files.get(file).copied() else {
            return Err(err("attach loop device to", file.display(), libc::ENOENT));
        };
        let n = s.next_loop;
        s.next_loop += 1;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = DevNum {
            major: LOOP_MAJOR,
            minor: n,
        };
        s.nodes.insert(path.clone(), dev);
        s.block_info.insert(
            dev,
            BlockInfo {
                size: Bytes(size),
                logical_block_size: SECTOR_SIZE,
            },
        );
        s.loops.insert(path.clone(), (dev, file.to_owned()));
        Ok(path)
    }

    fn loop_detach(&self, device: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::LoopDetach, "detach loop device", &device.display())?;
        match s.loops.remove(device) {
            Some((dev, _)) => {
                s.nodes.remove(device);
                s.block_info.remove(&dev);
                Ok(())
            }
            None => Err(err("detach loop device", device.display(), libc::ENXIO)),
        }
    }

    fn loop_release(&self, device: &Path) -> SysResult<()> {
        let s = self.enter(Op::LoopRelease, "release loop device", &device.display())?;
        if s.loops.contains_key(device) {
            Ok(())
        } else {
            Err(err("release loop device", device.display(), libc::ENXIO))
        }
    }

    fn loop_backing_file(&self, dev: DevNum) -> SysResult<Option<PathBuf>> {
        let s = self.enter(Op::LoopBackingFile, "read backing file of", &dev)?;
        Ok(s.loops
            .values()
            .find(|(d, _)| *d == dev)
            .map(|(_, f)| f.clone()))
    }

    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fs_type: &str,
        flags: MountFlags,
        data: &str,
    ) -> SysResult<()> {
        let what = format!("{} on {}", source.display(), target.display());
        let mut s = self.enter(Op::Mount, "mount", &what)?;
        if !s.dirs.contains(target) {
            return Err(err("mount", what, libc::ENOENT));
        }
        let Some(dev) = s.nodes.get(source).copied() else {
            return Err(err("mount", what, libc::ENOENT));
        };
        let options = if data.is_empty() {
            flags.to_string()
        } else {
            format!("{flags},{data}")
        };
        s.mounts.push(MountEntry {
            dev,
            target: target.to_owned(),
            fs_type: fs_type.to_owned(),
            source: source.display().to_string(),
            options,
        });
        Ok(())
    }

    fn unmount(&self, target: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::Unmount, "unmount", &target.display())?;
        let Some(i) = s.mounts.iter().rposition(|m| m.target == target) else {
            return Err(err("unmount", target.display(), libc::EINVAL));
        };
        s.mounts.remove(i);
        s.reap_deferred();
        Ok(())
    }

    fn mounts(&self) -> SysResult<Vec<MountEntry>> {
        let s = self.enter(Op::Mounts, "read", &"/proc/self/mountinfo")?;
        Ok(s.mounts.clone())
    }

    fn stat(&self, path: &Path) -> SysResult<FileInfo> {
        let s = self.enter(Op::Stat, "stat", &path.display())?;
        let path = s
            .symlinks
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.to_owned());
        s.info(&path, "stat")
    }

    fn fs_magic(&self, path: &Path) -> SysResult<u64> {
        let _s = self.enter(Op::FsMagic, "statfs", &path.display())?;
        // The fake's pseudo filesystems: /proc and /sys.
        Ok(if path.starts_with("/proc") {
            PROC_SUPER_MAGIC
        } else if path.components().any(|c| c.as_os_str() == "shared") {
            FUSE_SUPER_MAGIC
        } else if path.starts_with("/sys") {
            SYSFS_MAGIC
        } else {
            EXT4_SUPER_MAGIC
        })
    }

    fn lstat(&self, path: &Path) -> SysResult<FileInfo> {
        let s = self.enter(Op::Lstat, "lstat", &path.display())?;
        if s.symlinks.contains_key(path) {
            return Ok(FileInfo {
                kind: FileKind::Symlink,
                dev: 1,
                ino: 0,
                size: 0,
            });
        }
        s.info(path, "lstat")
    }

    fn block_info(&self, dev: DevNum) -> SysResult<BlockInfo> {
        let s = self.enter(Op::BlockInfo, "read size of", &dev)?;
        s.block_info
            .get(&dev)
            .copied()
            .ok_or_else(|| err("read size of", dev, libc::ENOENT))
    }

    fn make_dir(&self, path: &Path) -> SysResult<bool> {
        let mut s = self.enter(Op::MakeDir, "create directory", &path.display())?;
        if s.dirs.contains(path) {
            return Ok(false);
        }
        if s.nodes.contains_key(path) || s.files.contains_key(path) {
            return Err(err("create directory", path.display(), libc::EEXIST));
        }
        s.dirs.insert(path.to_owned());
        Ok(true)
    }

    fn remove_dir(&self, path: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::RemoveDir, "remove directory", &path.display())?;
        if s.mounts.iter().any(|m| m.target == path) {
            return Err(err("remove directory", path.display(), libc::EBUSY));
        }
        if s.dirs.iter().any(|d| d != path && d.starts_with(path)) {
            return Err(err("remove directory", path.display(), libc::ENOTEMPTY));
        }
        if s.dirs.remove(path) {
            Ok(())
        } else {
            Err(err("remove directory", path.display(), libc::ENOENT))
        }
    }

    fn read_device(&self, path: &Path) -> SysResult<u64> {
        let s = self.enter(Op::ReadDevice, "read", &path.display())?;
        let Some(dev) = s.nodes.get(path).copied() else {
            return Err(err("read", path.display(), libc::ENOENT));
        };
        if let Some((name, _)) = s.dm.iter().find(|(_, d)| d.dev == dev)
            && s.corrupt.contains(name)
        {
            return Err(err("read", path.display(), libc::EIO));
        }
        Ok(s.block_info.get(&dev).map(|b| b.size.0).unwrap_or(0))
    }
}
