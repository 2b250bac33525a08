//! The one seam between this crate and the kernel: every syscall the crate makes goes
//! through [`System`], injected through constructors. [`LinuxSystem`] is the real one
//! (`devicemapper`, `loopdev`, `nix`); `FakeSystem` (feature `fake`) is an in-memory recording fake that
//! can fail any call, for tests. Decides nothing: policy and ordering live in `apply`.

#[cfg(feature = "fake")]
mod fake;
pub mod kernel;
mod linux;
mod mountinfo;
mod pinned;
mod vocab;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "fake")]
pub use fake::{FakeSystem, Op, ROOT_MOUNT_ID, Snapshot};
pub use linux::LinuxSystem;
pub use mountinfo::{MountEntry, parse_mountinfo};

use crate::address::{AddressError, GuestAddress};
use crate::trust::{KeyDescription, RootHashSignature};
use crate::verity::VerityTable;
use crate::verity::units::Bytes;
pub use vocab::{DM_NAME_MAX, DM_NAME_PREFIX, DevNum, DmName, DmNameError, MountFlags, MountSpec};

/// What kind of file a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A block device, with its device number.
    Block(DevNum),
    /// A character device.
    Char,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symlink (only from `lstat`-like calls).
    Symlink,
    /// Anything else (fifo, socket).
    Other,
}

/// The facts `stat` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Kind (and device number for block devices).
    pub kind: FileKind,
    /// Device holding the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes (regular files).
    pub size: u64,
}

/// Size facts of a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Size in bytes.
    pub size: Bytes,
    /// Logical block size.
    pub logical_block_size: Bytes,
}

/// An active device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    /// Its name (any name the kernel allows: not necessarily one of ours).
    pub name: String,
    /// Its device number.
    pub dev: DevNum,
}

impl DmDevice {
    /// Its name, when it is one this crate made.
    pub fn ours(&self) -> Option<DmName> {
        DmName::new(&self.name).ok().filter(DmName::is_ours)
    }
}

/// A failed system call: which operation, on what, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("Cannot {op}{}", if target.is_empty() { String::new() } else { format!(" {target}") })]
pub struct SysError {
    /// The operation (e.g. "create dm device").
    pub op: &'static str,
    /// What it acted on (a name or path).
    pub target: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// A new error.
    pub fn new(op: &'static str, target: impl fmt::Display, source: io::Error) -> Self {
        Self {
            op,
            // Targets come from requests: keep messages short and printable.
            target: crate::volume::truncate_for_error(&target.to_string())
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
            source,
        }
    }

    /// The errno, if the error carries one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// Whether a directory could not be removed because something now uses it: another
    /// request made its own directory inside, or mounted on it (ENOTEMPTY, EEXIST, EBUSY).
    /// Leaving such a directory is the right outcome of an undo or a teardown.
    pub fn is_dir_in_use(&self) -> bool {
        matches!(
            self.errno(),
            Some(nix::libc::ENOTEMPTY | nix::libc::EBUSY | nix::libc::EEXIST)
        )
    }

    /// Whether the thing acted on does not exist (ENOENT, ENXIO, ENODEV, or "not mounted").
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(nix::libc::ENOENT | nix::libc::ENXIO | nix::libc::ENODEV)
        ) || self.source.kind() == io::ErrorKind::NotFound
    }

    /// Whether it failed because the thing is busy (EBUSY).
    pub fn is_busy(&self) -> bool {
        self.errno() == Some(nix::libc::EBUSY)
    }
}

/// Result of a system call.
pub type SysResult<T> = Result<T, SysError>;

/// Every operation on the kernel this crate performs.
///
/// Implementations must be callable from several threads. Calls block: async callers run
/// them with `spawn_blocking`.
pub trait System: Send + Sync {
    /// Creates an empty, read-only device-mapper device; returns its device number.
    fn dm_create(&self, name: &DmName) -> SysResult<DevNum>;
    /// Loads a verity table (read-only) into the device's inactive slot.
    fn dm_load(&self, name: &DmName, table: &VerityTable) -> SysResult<()>;
    /// Loads a verity table whose root hash the kernel checks against a signature: adds
    /// `signature`'s DER as a `user` key described `key` to the calling thread's keyring,
    /// loads the table (which names `root_hash_sig_key_desc <key>`: the kernel looks the key
    /// up and verifies the signature while it builds the target), then unlinks the key. All
    /// on the calling thread, whose keyring is the only one that holds the key. The load's
    /// error keeps the kernel's errno (`ENOKEY`, `EKEYREJECTED`, …); the key is unlinked
    /// whatever the load did.
    fn dm_load_signed(
        &self,
        name: &DmName,
        table: &VerityTable,
        key: &KeyDescription,
        signature: &RootHashSignature,
    ) -> SysResult<()>;
    /// Resumes the device (activates the loaded table).
    fn dm_resume(&self, name: &DmName) -> SysResult<()>;
    /// Removes the device; `deferred` asks the kernel to remove it when its last user closes.
    fn dm_remove(&self, name: &DmName, deferred: bool) -> SysResult<()>;
    /// The active table's target line (`<start> <len> <type> <params>`).
    fn dm_table(&self, name: &DmName) -> SysResult<String>;
    /// The target's status (for verity: `V` verified so far, `C` corruption seen).
    fn dm_status(&self, name: &DmName) -> SysResult<String>;
    /// Every device-mapper device.
    fn dm_list(&self) -> SysResult<Vec<DmDevice>>;
    /// Creates a block device node (no udev in the guest).
    fn make_node(&self, path: &Path, dev: DevNum) -> SysResult<()>;
    /// Removes a file or node.
    fn remove_file(&self, path: &Path) -> SysResult<()>;
    /// Attaches `file` to a free loop device, read-only with autoclear; returns its path.
    fn loop_attach(&self, file: &Path) -> SysResult<PathBuf>;
    /// Detaches a loop device.
    fn loop_detach(&self, device: &Path) -> SysResult<()>;
    /// Lets go of this process's hold on a loop device it attached, once something else (the
    /// dm device or a mount) holds it: autoclear then detaches it when that user goes.
    fn loop_release(&self, device: &Path) -> SysResult<()>;
    /// The backing file of a loop device, `None` when it is not attached.
    fn loop_backing_file(&self, dev: DevNum) -> SysResult<Option<PathBuf>>;
    /// Mounts `source` on `target`.
    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fs_type: &str,
        flags: MountFlags,
        data: &str,
    ) -> SysResult<()>;
    /// Unmounts `target`.
    fn unmount(&self, target: &Path) -> SysResult<()>;
    /// The current mount table.
    fn mounts(&self) -> SysResult<Vec<MountEntry>>;
    /// `stat` (follows symlinks).
    fn stat(&self, path: &Path) -> SysResult<FileInfo>;
    /// `lstat` (does not follow a final symlink).
    fn lstat(&self, path: &Path) -> SysResult<FileInfo>;
    /// The id of the mount `path` is on (`statx` with `STATX_MNT_ID`, not following a final
    /// symlink): the same ids as [`MountEntry::id`].
    fn mount_id(&self, path: &Path) -> SysResult<u64>;
    /// The magic number of the filesystem holding `path` (`statfs`'s `f_type`).
    fn fs_magic(&self, path: &Path) -> SysResult<u64>;
    /// Size facts of a block device.
    fn block_info(&self, dev: DevNum) -> SysResult<BlockInfo>;
    /// Creates a directory (parent must exist); `Ok(false)` when it already existed.
    fn make_dir(&self, path: &Path) -> SysResult<bool>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> SysResult<()>;
    /// Removes a directory and everything in it (an overlay's upper and work directories),
    /// never following a symlink; refused while anything is mounted inside.
    fn remove_tree(&self, path: &Path) -> SysResult<()>;
    /// The block device at a guest address: a path as it is, or the disk on its bus, waited
    /// for up to `timeout` when it is not there yet (subscribe to uevents, then look). Where
    /// `/dev` has no node for it (no devtmpfs, no udev), the node is made.
    fn find_disk(&self, addr: &GuestAddress, timeout: Duration) -> Result<PathBuf, AddressError>;
    /// Reads up to `len` bytes of a block device or file from byte `offset` (fewer where it
    /// ends sooner).
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> SysResult<Vec<u8>>;
    /// Reads a whole block device (forcing dm-verity to check every block); returns the
    /// bytes read.
    fn read_device(&self, path: &Path) -> SysResult<u64>;
}
