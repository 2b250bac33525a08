//! Reconciling saved state with what the kernel shows, at start: re-adopt active volumes
//! that are still mounted, tear down what a crash left half done, and remove orphans (our
//! dm devices that no entry accounts for, with any mount of them).

use std::path::Path;

use super::state::{Entry, Phase, State, StorageKind};
use crate::apply;
use crate::system::System;
use crate::system::kernel::View;

/// What reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Mount points re-adopted.
    pub adopted: usize,
    /// Entries dropped (half set up, or gone from the system).
    pub dropped: usize,
    /// Orphan dm devices removed.
    pub orphans_removed: usize,
    /// Problems met (cleanup continues past them).
    pub problems: Vec<String>,
}

/// Returns the state to keep and a report.
pub(super) fn reconcile(sys: &dyn System, saved: State) -> (State, Reconciled) {
    let mut report = Reconciled::default();
    let view = View::read(sys).unwrap_or_else(|e| {
        report.problems.push(crate::error_chain(&e));
        View::default()
    });
    let mut keep: Vec<Entry> = Vec::new();
    let mut dropped: Vec<Entry> = Vec::new();
    for e in saved.entries {
        let top = view.top_mount(&e.mount_point);
        // Ours: on our dm device; else the very mount we made (its device as recorded, an
        // overlay's anonymous one included), not one someone mounted there since.
        let mounted_ours = match (&e.dm_name, top) {
            (Some(n), Some(m)) => view.device(n) == Some(m.dev),
            (None, Some(m)) if e.kind == StorageKind::Overlay => {
                m.fs_type == "overlay" && e.mounted_device.is_none_or(|d| d == m.dev)
            }
            (None, Some(m)) => e.mounted_device.is_none_or(|d| d == m.dev),
            (_, None) => false,
        };
        if matches!(e.phase, Phase::Active | Phase::Released) && mounted_ours {
            keep.push(e);
        } else {
            dropped.push(e);
        }
    }
    // Overlays first (they hold their layers), then released layers no kept overlay uses.
    dropped.sort_by_key(|e| e.kind != StorageKind::Overlay);
    let unused = |e: &Entry, keep: &[Entry]| {
        e.phase == Phase::Released
            && !keep
                .iter()
                .any(|o| o.kind == StorageKind::Overlay && o.lowers.contains(&e.mount_point))
    };
    let (orphaned, kept): (Vec<Entry>, Vec<Entry>) =
        keep.clone().into_iter().partition(|e| unused(e, &keep));
    keep = kept;
    report.adopted = keep.len();
    for e in dropped.into_iter().chain(orphaned) {
        report.dropped += 1;
        if let Err(err) = undo(sys, &view, &e) {
            report.problems.push(crate::error_chain(&err));
        }
    }
    remove_orphans(sys, &keep, &mut report);
    (
        State {
            entries: keep,
            ..State::empty()
        },
        report,
    )
}

/// Undoes whatever of an entry is there — never what someone else mounted there since
/// (then only our devices go).
fn undo(sys: &dyn System, view: &View, e: &Entry) -> Result<(), apply::ApplyError> {
    let top = view.top_mount(&e.mount_point);
    let ours = match (&e.dm_name, top) {
        (_, None) => true,
        (Some(n), Some(m)) => view.device(n) == Some(m.dev),
        (None, Some(m)) => e.mounted_device.is_none_or(|d| d == m.dev),
    };
    let (target, dirs) = if ours {
        (e.mount_point.as_path(), e.created_dirs.clone())
    } else {
        (Path::new(""), Vec::new())
    };
    if e.kind == StorageKind::Overlay {
        if !ours {
            return Ok(());
        }
        return apply::teardown_overlay(sys, target, e.mounted_device, &e.trees, &dirs).map(|_| ());
    }
    apply::teardown(sys, target, &e.known(), &dirs).map(|_| ())
}

/// Removes our dm devices that no kept entry accounts for and nothing mounts.
fn remove_orphans(sys: &dyn System, keep: &[Entry], report: &mut Reconciled) {
    let Ok(view) = View::read(sys) else {
        return;
    };
    for d in &view.devices {
        let Some(name) = d.ours() else {
            continue;
        };
        if keep.iter().any(|e| e.dm_name.as_ref() == Some(&name)) {
            continue;
        }
        // One still mounted somewhere is in use by something this state does not know
        // (`kata-volume mount`, another daemon's state folder): never pull it from under
        // its users; report it instead.
        if let Some(m) = view.mount_of(d.dev) {
            report.problems.push(format!(
                "left {} in place: mounted at {} but not in this state",
                d.name,
                m.target.display()
            ));
            continue;
        }
        match sys
            .dm_remove(&name, false)
            .or_else(|_| sys.dm_remove(&name, true))
        {
            Ok(()) => {
                let _ = sys.remove_file(Path::new(&name.node_path()));
                report.orphans_removed += 1;
            }
            Err(err) if err.is_not_found() => report.orphans_removed += 1,
            Err(err) => report.problems.push(crate::error_chain(&err)),
        }
    }
}
