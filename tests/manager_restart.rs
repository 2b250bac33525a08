#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unused_imports, dead_code)]
//! A restart over the fake system: what the saved state and the kernel say together decides
//! what is kept (still mounted as recorded), what is finished (entries a crash left half
//! removed), what goes (released layers no kept rootfs uses) and which of our dm devices are
//! orphans (no entry, nothing mounted) — each counted in the report. Each test fails on a
//! mutant cargo-mutants found surviving (docs/mutants.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kata_volume::manager::{
    ManagerOptions, MemStore, Phase, Reconciled, State, StateStore, VolumeManager,
};
use kata_volume::policy::Policy;
use kata_volume::system::{FakeSystem, Op, System};

#[path = "common/kata.rs"]
mod kata;
use kata::*;

/// Starts a manager over `sys` and `store` (a restart when the store has entries), with the
/// default policy but for unverified volumes, which it allows.
fn start(sys: &Arc<FakeSystem>, store: &Arc<MemStore>) -> (VolumeManager, Reconciled) {
    let opts = ManagerOptions {
        policy: Policy {
            allow_unverified: true,
            ..Policy::default()
        },
    };
    VolumeManager::new(sys.clone(), store.clone(), opts).unwrap()
}

/// Changes the saved state as a crash at some point would have left it.
fn edit(store: &MemStore, f: impl FnOnce(&mut State)) {
    let mut state = store.load().unwrap();
    f(&mut state);
    store.save(&state).unwrap();
}

fn dm_devices(sys: &FakeSystem) -> Vec<String> {
    sys.snapshot().dm.into_iter().collect()
}

/// Two rootfs, each over its own layer, both layers' removal asked for (held by their
/// rootfs). One rootfs went while the daemon was down: it is dropped, and its layer, which
/// no kept rootfs uses, goes with it; the other rootfs keeps its layer.
#[test]
fn a_released_layer_goes_when_no_kept_rootfs_uses_it() {
    let sys = system();
    let store = Arc::new(MemStore::default());
    let (m, _) = start(&sys, &store);
    for (i, slot) in [(1, "05"), (2, "06")] {
        m.add_storage(&dmverity(i, slot)).unwrap();
    }
    m.add_storage(&overlay("c1", &[1])).unwrap();
    m.add_storage(&overlay("c2", &[2])).unwrap();
    for i in [1, 2] {
        assert!(m.remove_storage(&layer_mp(i)).unwrap());
    }
    drop(m);
    let c2 = overlay("c2", &[2]).mount_point;
    sys.unmount(Path::new(&c2)).unwrap();
    let (m, report) = start(&sys, &store);
    assert_eq!((report.adopted, report.dropped), (2, 2), "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(mounts_at(&sys, &layer_mp(1)).len(), 1, "c1's layer went");
    assert!(
        mounts_at(&sys, &layer_mp(2)).is_empty(),
        "c2's layer stayed"
    );
    assert_eq!(dm_devices(&sys).len(), 1);
    let listed: Vec<_> = m.list().into_iter().map(|v| v.mount_point).collect();
    assert_eq!(listed, [PathBuf::from(overlay("c1", &[1]).mount_point)]);
}

/// A crash in the middle of removals (the entries marked removing, nothing undone yet): the
/// restart finishes them — the rootfs's overlay and its trees, the layer, its device, a
/// volume without dm-verity, and every directory made for them.
#[test]
fn a_restart_finishes_what_a_crash_left_half_removed() {
    let sys = system();
    let store = Arc::new(MemStore::default());
    let before = sys.snapshot();
    let (m, _) = start(&sys, &store);
    m.add_storage(&dmverity(1, "06")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    m.add_storage(&unverified(&format!("{ROOT}/plain")))
        .unwrap();
    drop(m);
    edit(&store, |s| {
        for e in &mut s.entries {
            e.phase = Phase::Removing;
        }
    });
    let (m, report) = start(&sys, &store);
    assert_eq!((report.adopted, report.dropped), (0, 3), "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(m.list().is_empty());
    assert_eq!(sys.snapshot(), before);
    assert!(store.load().unwrap().entries.is_empty());
}

/// Our dm devices that no entry accounts for and nothing mounts are orphans: removed and
/// counted; the devices of kept entries stay.
#[test]
fn orphan_devices_are_removed_and_counted() {
    let sys = system();
    let store = Arc::new(MemStore::default());
    let (m, _) = start(&sys, &store);
    m.add_storage(&dmverity(1, "05")).unwrap();
    let orphan = m.add_storage(&dmverity(2, "06")).unwrap().dm_name.unwrap();
    drop(m);
    // The second volume's mount went and its entry was never saved.
    sys.unmount(Path::new(&layer_mp(2))).unwrap();
    edit(&store, |s| {
        s.entries
            .retain(|e| e.mount_point != Path::new(&layer_mp(2)));
    });
    let (m, report) = start(&sys, &store);
    assert_eq!(
        (report.adopted, report.orphans_removed),
        (1, 1),
        "{report:?}"
    );
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(!dm_devices(&sys).contains(&orphan.to_string()));
    assert_eq!(dm_devices(&sys).len(), 1);
    assert!(m.add_storage(&dmverity(1, "05")).unwrap().already_present);
}

/// An orphan that vanishes while it is being removed (ENXIO) is gone all the same; one that
/// cannot be removed is reported, and counted as nothing.
#[test]
fn an_orphan_already_gone_counts_as_removed_and_a_failure_is_reported() {
    for (errno, removed, problems) in [(nix::libc::ENXIO, 1, 0), (nix::libc::EIO, 0, 1)] {
        let sys = system();
        let store = Arc::new(MemStore::default());
        let (m, _) = start(&sys, &store);
        m.add_storage(&dmverity(2, "06")).unwrap();
        drop(m);
        sys.unmount(Path::new(&layer_mp(2))).unwrap();
        edit(&store, |s| s.entries.clear());
        // Both the removal and the deferred one fail.
        sys.fail_nth(Op::DmRemove, 0, errno);
        sys.fail_nth(Op::DmRemove, 1, errno);
        let (_, report) = start(&sys, &store);
        assert_eq!(
            (report.orphans_removed, report.problems.len()),
            (removed, problems),
            "errno {errno}: {report:?}"
        );
    }
}
