//! Teardown of whatever is mounted at a mount point, read back from the kernel: unmount →
//! remove our dm device when nothing else uses it (deferred when busy) → remove its node →
//! detach its loop device. What is already gone counts as done.

use std::path::{Path, PathBuf};

use super::error::{ApplyError, Step};
use crate::plan::DmName;
use crate::system::{DevNum, FileKind, SysError, System};

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

fn step(s: Step) -> impl FnOnce(SysError) -> ApplyError {
    move |source| ApplyError::Step {
        step: s,
        source,
        undo_failures: Vec::new(),
    }
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

/// Tears down what is mounted at `mount_point`; `remove_dirs` lists directories to remove
/// afterwards (those the apply created), innermost last.
pub fn teardown(
    sys: &dyn System,
    mount_point: &Path,
    remove_dirs: &[PathBuf],
) -> Result<Teardown, ApplyError> {
    let mut done = Teardown::default();
    let mounts = sys.mounts().map_err(step(Step::Unmount))?;
    if let Some(top) = mounts.iter().rev().find(|m| m.target == mount_point) {
        let dev = top.dev;
        let dm = sys
            .dm_list()
            .map_err(step(Step::RemoveDevice))?
            .into_iter()
            .find(|d| d.dev == dev)
            .and_then(|d| DmName::new(&d.name).ok())
            .filter(DmName::is_ours);
        // The device under a dm device (for loop detach), read before removing it.
        let under = match &dm {
            Some(name) => underlying_device(sys, name),
            None => Some((PathBuf::from(&top.source), dev)),
        };
        match sys.unmount(mount_point) {
            Ok(()) => done.unmounted = true,
            Err(e) if e.errno() == Some(nix::libc::EINVAL) => {}
            Err(e) => return Err(step(Step::Unmount)(e)),
        }
        let still_used = |d: DevNum| -> Result<bool, ApplyError> {
            Ok(sys
                .mounts()
                .map_err(step(Step::Unmount))?
                .iter()
                .any(|m| m.dev == d))
        };
        if let Some(name) = dm {
            if still_used(dev)? {
                done.kept_shared_device = true;
            } else {
                match sys.dm_remove(&name, false) {
                    Ok(()) => {}
                    Err(e) if e.is_busy() => {
                        sys.dm_remove(&name, true)
                            .map_err(step(Step::RemoveDevice))?;
                        done.deferred = true;
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(step(Step::RemoveDevice)(e)),
                }
                gone_ok(sys.remove_file(Path::new(&name.node_path())))
                    .map_err(step(Step::RemoveDevice))?;
                done.removed_device = Some(name);
            }
        }
        if !done.kept_shared_device && !done.deferred {
            if let Some((path, d)) = under.filter(|(_, d)| d.major == LOOP_MAJOR) {
                let ours = sys
                    .loop_backing_file(d)
                    .map_err(step(Step::DetachLoop))?
                    .is_some();
                if ours
                    && !still_used(d)?
                    && gone_ok(sys.loop_detach(&path)).map_err(step(Step::DetachLoop))?
                {
                    done.detached_loop = Some(path);
                }
            }
        }
    }
    // Directories we created, innermost first. One still holding another mount point (a
    // parent shared with a later volume) stays; the last volume under it removes it.
    for dir in remove_dirs.iter().rev() {
        match sys.remove_dir(dir) {
            Err(e)
                if matches!(
                    e.errno(),
                    Some(nix::libc::ENOTEMPTY | nix::libc::EBUSY | nix::libc::EEXIST)
                ) => {}
            other => {
                gone_ok(other).map_err(step(Step::RemoveMountPoint))?;
            }
        }
    }
    Ok(done)
}

/// The data device of a verity device, from its table (`… verity 1 <dev> …`).
fn underlying_device(sys: &dyn System, name: &DmName) -> Option<(PathBuf, DevNum)> {
    let table = sys.dm_table(name).ok()?;
    let dev = table.split_ascii_whitespace().nth(4)?;
    if let Some((maj, min)) = dev.split_once(':') {
        let d = DevNum {
            major: maj.parse().ok()?,
            minor: min.parse().ok()?,
        };
        // No udev in the guest: loop devices are only reachable as /dev/loop<minor>.
        let path = if d.major == LOOP_MAJOR {
            PathBuf::from(format!("/dev/loop{}", d.minor))
        } else {
            PathBuf::from(format!("/dev/block/{d}"))
        };
        return Some((path, d));
    }
    let path = PathBuf::from(dev);
    match sys.stat(&path).ok()?.kind {
        FileKind::Block(d) => Some((path, d)),
        _ => None,
    }
}
