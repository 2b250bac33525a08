//! Teardown of whatever is mounted at a mount point, read back from the kernel: unmount →
//! remove our dm device when nothing else uses it (deferred when busy) → remove its node →
//! detach its loop device. What is already gone counts as done.

use std::path::{Path, PathBuf};

use super::error::{ApplyError, Step};
use super::step;
use crate::system::kernel::{self, View};
use crate::system::{DevNum, DmName, FileKind, MountEntry, SysError, System};

/// What a teardown did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    /// Something was mounted there and was unmounted.
    pub unmounted: bool,
    /// The dm device removed (or scheduled for removal).
    pub removed_device: Option<DmName>,
    /// The removal was deferred because the device was still busy.
    pub deferred: bool,
    /// The dm device was kept because another mount still uses it.
    pub kept_shared_device: bool,
    /// The loop device detached.
    pub detached_loop: Option<PathBuf>,
}

fn gone_ok(r: Result<(), SysError>) -> Result<bool, SysError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Loop devices have this major number.
const LOOP_MAJOR: u32 = 7;

/// What the caller knows was set up at a mount point, so a teardown interrupted after the
/// unmount can be finished by a retry (the kernel no longer links the mount to its devices).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The verity device.
    pub dm_name: Option<DmName>,
    /// The loop device.
    pub loop_device: Option<PathBuf>,
    /// The device the caller's mount is on. When known (or implied by `dm_name`), a mount at
    /// the mount point on any other device is someone else's: the teardown refuses it and
    /// changes nothing. When not known (the CLI's `umount`), the top mount is taken down.
    pub mounted_device: Option<DevNum>,
    /// Whether only a mount known to be the caller's may be unmounted: when the device its
    /// mount is on is unknown (neither `mounted_device` nor a live `dm_name`), a mount found
    /// at the mount point is left alone (an error) rather than taken for the caller's. The
    /// manager sets it; the CLI's `umount --any` does not.
    pub only_ours: bool,
    /// Whether other mount points of the caller still share the dm device: `Some(true)`
    /// keeps it, `Some(false)` removes it (deferred while anything, e.g. a bind mount, still
    /// holds it); `None` decides from the mount table (kept while any mount uses it).
    pub shared: Option<bool>,
}

/// What is there to take down, read before anything is changed.
struct Found {
    /// The top mount at the mount point.
    top: Option<MountEntry>,
    /// Our dm device under it (or the known one).
    dm: Option<(DmName, DevNum)>,
    /// The loop device under the dm device or the mount (or the known one).
    under: Option<(PathBuf, DevNum)>,
}

/// Tears down what is mounted at `mount_point` (and what `known` says belongs to it);
/// `remove_dirs` lists directories to remove afterwards (those the apply created),
/// outermost first.
pub fn teardown(
    sys: &dyn System,
    mount_point: &Path,
    known: &Known,
    remove_dirs: &[PathBuf],
) -> Result<Teardown, ApplyError> {
    let mut done = Teardown::default();
    let view = View::read(sys).map_err(step(Step::ReadState))?;
    let found = find(sys, &view, mount_point, known)?;
    if found.top.is_some() {
        done.unmounted = unmount(sys, mount_point)?;
    }
    if let Some((name, dev)) = found.dm {
        let keep = match known.shared {
            Some(shared) => shared,
            None => still_used(sys, dev)?,
        };
        if keep {
            done.kept_shared_device = true;
        } else {
            done.deferred = remove_device(sys, &name)?;
            done.removed_device = Some(name);
        }
    }
    // The node goes with the device — also when a previous attempt removed the device but
    // not its node.
    if !done.kept_shared_device
        && let Some(name) = done.removed_device.as_ref().or(known.dm_name.as_ref())
    {
        gone_ok(sys.remove_file(Path::new(&name.node_path()))).map_err(step(Step::RemoveDevice))?;
    }
    if !done.kept_shared_device
        && !done.deferred
        && let Some((path, d)) = found.under
    {
        done.detached_loop = detach_loop(sys, path, d)?;
    }
    remove_created_dirs(sys, remove_dirs)?;
    Ok(done)
}

/// Reads what is there, and refuses a mount at the mount point that is not the caller's.
fn find(
    sys: &dyn System,
    view: &View,
    mount_point: &Path,
    known: &Known,
) -> Result<Found, ApplyError> {
    let top = view.top_mount(mount_point).cloned();
    let ours = known
        .mounted_device
        .or_else(|| view.device(known.dm_name.as_ref()?));
    let foreign = match (&top, ours) {
        (Some(t), Some(dev)) => t.dev != dev,
        (Some(_), None) => known.only_ours,
        (None, _) => false,
    };
    if let (true, Some(t)) = (foreign, &top) {
        return Err(ApplyError::ForeignMount {
            mount_point: mount_point.to_owned(),
            device: t.source.clone(),
            fs_type: t.fs_type.clone(),
        });
    }
    let dm: Option<(DmName, DevNum)> = top
        .as_ref()
        .and_then(|t| view.our_device(t.dev).map(|n| (n, t.dev)))
        .or_else(|| {
            let name = known.dm_name.as_ref()?;
            Some((name.clone(), view.device(name)?))
        });
    // The device under the mount or the dm device (for loop detach), read before removal.
    let under = match (&dm, &top) {
        (Some((name, _)), _) => underlying_device(sys, name),
        (None, Some(t)) => Some((PathBuf::from(&t.source), t.dev)),
        (None, None) => None,
    }
    .filter(|(_, d)| d.major == LOOP_MAJOR)
    .or_else(|| {
        let p = known.loop_device.clone()?;
        match sys.stat(&p).ok()?.kind {
            FileKind::Block(d) => Some((p, d)),
            _ => None,
        }
    });
    Ok(Found { top, dm, under })
}

/// Unmounts the top mount at `mount_point`. `EINVAL` ("not a mount point") means it is gone
/// — unless the mount table still lists it: then a mount over a parent directory hides it,
/// and it cannot be reached to unmount.
fn unmount(sys: &dyn System, mount_point: &Path) -> Result<bool, ApplyError> {
    match sys.unmount(mount_point) {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(nix::libc::EINVAL) => {
            let view = View::read(sys).map_err(step(Step::ReadState))?;
            if view.top_mount(mount_point).is_some() {
                return Err(ApplyError::Hidden(mount_point.to_owned()));
            }
            Ok(false)
        }
        Err(e) => Err(step(Step::Unmount)(e)),
    }
}

fn still_used(sys: &dyn System, dev: DevNum) -> Result<bool, ApplyError> {
    Ok(View::read(sys)
        .map_err(step(Step::ReadState))?
        .is_mounted(dev))
}

/// Removes the dm device, deferred when busy; returns whether the removal was deferred.
fn remove_device(sys: &dyn System, name: &DmName) -> Result<bool, ApplyError> {
    match sys.dm_remove(name, false) {
        Ok(()) => Ok(false),
        Err(e) if e.is_busy() => {
            sys.dm_remove(name, true)
                .map_err(step(Step::RemoveDevice))?;
            Ok(true)
        }
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(step(Step::RemoveDevice)(e)),
    }
}

/// Detaches the loop device when it is still attached and nothing mounts it.
fn detach_loop(
    sys: &dyn System,
    path: PathBuf,
    dev: DevNum,
) -> Result<Option<PathBuf>, ApplyError> {
    let attached = sys
        .loop_backing_file(dev)
        .map_err(step(Step::DetachLoop))?
        .is_some();
    if attached
        && !still_used(sys, dev)?
        && gone_ok(sys.loop_detach(&path)).map_err(step(Step::DetachLoop))?
    {
        return Ok(Some(path));
    }
    Ok(None)
}

/// Directories we created, innermost first. One still holding another mount point (a
/// parent shared with a later volume) stays; the last volume under it removes it.
pub(super) fn remove_created_dirs(sys: &dyn System, dirs: &[PathBuf]) -> Result<(), ApplyError> {
    for dir in dirs.iter().rev() {
        match sys.remove_dir(dir) {
            Err(e) if e.is_dir_in_use() => {}
            other => {
                gone_ok(other).map_err(step(Step::RemoveMountPoint))?;
            }
        }
    }
    Ok(())
}

/// The data device of a verity device, from its active table (where the kernel names
/// devices by number: `major:minor`).
fn underlying_device(sys: &dyn System, name: &DmName) -> Option<(PathBuf, DevNum)> {
    let table = kernel::active_table(sys, name).ok()?;
    let d = table.target.data_device.parse::<DevNum>().ok()?;
    // No udev in the guest: loop devices are only reachable as /dev/loop<minor>.
    let path = if d.major == LOOP_MAJOR {
        PathBuf::from(format!("/dev/loop{}", d.minor))
    } else {
        PathBuf::from(format!("/dev/block/{d}"))
    };
    Some((path, d))
}
