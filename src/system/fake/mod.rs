//! [`FakeSystem`]: an in-memory model of the kernel objects this crate touches (dm devices,
//! nodes, loop devices, mounts, directories, signature keys in thread keyrings), recording
//! every call and able to fail any one. Passed explicitly to constructors in tests; never
//! selected implicitly.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::libc;

mod system_impl;

use super::{BlockInfo, DevNum, FileInfo, FileKind, MountEntry, SysError, SysResult};
use crate::verity::units::{Bytes, SECTOR_SIZE};

/// The id of the fake's root mount (the one every path is on unless something is mounted
/// over it).
pub const ROOT_MOUNT_ID: u64 = 1;
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
    MountId,
    ReadAt,
    FindDisk,
    RemoveTree,
    /// Adding a signature key to the thread keyring (part of `dm_load_signed`).
    KeyAdd,
    /// Unlinking it (part of `dm_load_signed`).
    KeyUnlink,
}

impl Op {
    /// Every operation that changes the system (the ones a transaction must undo).
    pub const MUTATING: [Op; 15] = [
        Op::MakeDir,
        Op::RemoveDir,
        Op::RemoveTree,
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
        Op::KeyAdd,
        Op::KeyUnlink,
    ];
}

#[derive(Debug, Clone)]
struct FakeDm {
    dev: DevNum,
    /// The loaded table as the kernel reports it (devices as `major:minor`).
    table: Option<String>,
    /// The device the loaded table sits on.
    holds: Option<DevNum>,
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
    /// The last anonymous device number given to an overlay mount.
    next_anon: u32,
    /// The next mount's id (the root filesystem is mount [`ROOT_MOUNT_ID`]).
    next_mount_id: u64,
    corrupt: BTreeSet<String>,
    /// Disks by guest address (canonical form): the node each one is, once plugged.
    disks: BTreeMap<String, PathBuf>,
    /// Bytes written at offsets of a device node or file (everything else reads as zeros).
    contents: BTreeMap<PathBuf, Vec<(u64, Vec<u8>)>>,
    /// dm devices whose first read fails (a wrong root hash): `V` until mounted, then `C`.
    corrupt_on_read: BTreeSet<String>,
    calls: Vec<Op>,
    /// Fail the call of this op after this many more calls of it succeed.
    fail: Vec<(Op, usize, i32)>,
    /// After this many more mutating calls, every mutating call fails (a process that died).
    crash_after: Option<usize>,
    /// Every call of this op first sleeps this long (outside the lock): a slow kernel.
    delays: BTreeMap<Op, std::time::Duration>,
    /// Signature keys in thread keyrings: (thread, description) → payload.
    keys: BTreeMap<(String, String), Vec<u8>>,
    /// What each table load that named a signature key found: (description, payload).
    signed_loads: Vec<(String, Vec<u8>)>,
    /// The kernel's verdict on every signature it finds (`None`: it accepts them).
    signature_verdict: Option<i32>,
    /// `dm_verity.require_signatures=1`: a table without a signature key is refused.
    require_signatures: bool,
    /// Every table loaded from now on is reported with this root hash (hex).
    reported_root_hash: Option<String>,
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
    /// Signature keys in any thread's keyring (descriptions).
    pub keys: BTreeSet<String>,
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
                logical_block_size: Bytes(SECTOR_SIZE),
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

    /// Makes every later call of `op` take `delay` first (a slow device or kernel), without
    /// holding the fake's lock meanwhile: other calls go on. The call is recorded (see
    /// [`FakeSystem::count`]) when it begins, before its delay.
    pub fn delay(&self, op: Op, delay: std::time::Duration) {
        self.lock().delays.insert(op, delay);
    }

    /// Ends every injected failure and crash (the "restarted" process works again).
    pub fn clear_failures(&self) {
        let mut s = self.lock();
        s.fail.clear();
        s.crash_after = None;
    }

    /// Plugs the disk `node` (a block device added before) at the guest address `address`
    /// (canonical form, e.g. `02/01` or `2:1`): `find_disk` finds it from now on; until
    /// then it times out at once, as a disk that never comes.
    pub fn plug_disk(&self, address: &str, node: &str) {
        self.lock()
            .disks
            .insert(address.to_owned(), PathBuf::from(node));
    }

    /// Puts `bytes` at `offset` of the device node or file `path` (what `read_at` returns;
    /// everything else reads as zeros).
    pub fn write_at(&self, path: &str, offset: u64, bytes: &[u8]) {
        self.lock()
            .contents
            .entry(PathBuf::from(path))
            .or_default()
            .push((offset, bytes.to_vec()));
    }

    /// Makes the dm device fail its first read, as with a wrong root hash: the status says
    /// `V` until something is mounted from it; that mount fails with `EIO` and the status
    /// says `C` from then on.
    pub fn set_corrupt_on_read(&self, name: &str) {
        self.lock().corrupt_on_read.insert(name.to_owned());
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
            keys: s.keys.keys().map(|(_, d)| d.clone()).collect(),
        }
    }

    /// Makes the kernel refuse every root-hash signature it is given with `errno` (`ENOKEY`:
    /// no key it trusts vouches for the signer; `EKEYREJECTED`: it does not verify), as a
    /// kernel that does not trust the signer does.
    pub fn refuse_signatures(&self, errno: i32) {
        self.lock().signature_verdict = Some(errno);
    }

    /// As with `dm_verity.require_signatures=1`: a table without a signature key is refused
    /// with `ENOKEY`.
    pub fn require_signatures(&self) {
        self.lock().require_signatures = true;
    }

    /// Every table loaded from now on is reported with the root hash `hex` (a table that is
    /// not the one loaded, to test that it is read back and compared).
    pub fn report_root_hash(&self, hex: &str) {
        self.lock().reported_root_hash = Some(hex.to_owned());
    }

    /// What each table load that named a signature key found in the loading thread's
    /// keyring: (description, payload).
    pub fn signed_loads(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().signed_loads.clone()
    }

    /// Records the call and fails it if asked to.
    fn enter(
        &self,
        op: Op,
        name: &'static str,
        target: &dyn std::fmt::Display,
    ) -> SysResult<MutexGuard<'_, State>> {
        // Recorded before its delay, so a test sees a slow call as soon as it has begun.
        let delay = {
            let mut s = self.lock();
            s.calls.push(op);
            s.delays.get(&op).copied()
        };
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut s = self.lock();
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

/// The calling thread, as the fake's keyrings know it.
fn this_thread() -> String {
    format!("{:?}", std::thread::current().id())
}

impl State {
    fn dev_in_use(&self, dev: DevNum) -> bool {
        self.mounts.iter().any(|m| m.dev == dev) || self.dm.values().any(|d| d.holds == Some(dev))
    }

    /// The mount a path is on: the last mount whose target is the path or one of its
    /// ancestors (a later mount over an ancestor hides earlier ones below it, as in the
    /// kernel), `None` for the root filesystem.
    fn visible_mount(&self, path: &Path) -> Option<&MountEntry> {
        self.mounts
            .iter()
            .rev()
            .find(|m| path.starts_with(&m.target))
    }

    /// The device a table names: `major:minor`, or a node path.
    fn device_of(&self, word: &str) -> Option<DevNum> {
        word.parse()
            .ok()
            .or_else(|| self.nodes.get(Path::new(word)).copied())
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
