#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The volume manager against the recording fake: refcounting, idempotency, conflicts,
//! concurrency, crash/restart reconciliation and state-write failures.

use std::path::PathBuf;
use std::sync::Arc;

use kata_volume::manager::MemStore;
use kata_volume::manager::{ErrorKind, ManagerOptions, Phase, StateStore, Storage, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem, Op};
use kata_volume::volume::{KataVirtualVolume, Volume, encode_option};

/// The default policy, with the test's mount root.
fn opts() -> ManagerOptions {
    ManagerOptions {
        policy: Policy {
            mount_root: PathBuf::from("/run"),
            ..Policy::default()
        },
    }
}

fn root(i: usize) -> String {
    format!("{:064x}", 0xabcdef_u64 + i as u64)
}

fn option(i: usize, source: &str) -> String {
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"{source}","dm_verity":{{"hashtype":"sha256","hash":"{}","blocknum":2048,"blocksize":4096,"hashsize":4096,"offset":8388608}}}}"#,
        root(i)
    );
    let w: KataVirtualVolume = Volume::parse(&json).unwrap().to_wire();
    encode_option(&w)
}

fn system(layers: u32) -> Arc<FakeSystem> {
    let f = FakeSystem::new();
    f.add_dir("/run");
    for i in 0..layers {
        f.add_block_device(
            &format!("/dev/vd{i}"),
            DevNum {
                major: 254,
                minor: i * 16,
            },
            16 << 20,
        );
    }
    Arc::new(f)
}

fn storage(layer: usize, mp: &str) -> Storage {
    Storage {
        source: format!("/dev/vd{layer}"),
        options: vec!["ro".into(), option(layer, "/dev/ignored")],
        mount_point: mp.into(),
        ..Default::default()
    }
}

fn manager(sys: &Arc<FakeSystem>, store: Arc<dyn StateStore>) -> VolumeManager {
    VolumeManager::new(sys.clone(), store, opts()).unwrap().0
}

#[test]
fn shared_layer_is_refcounted() {
    let sys = system(1);
    let before = sys.snapshot();
    let m = manager(&sys, Arc::new(MemStore::default()));
    for i in 0..5 {
        let v = m
            .add_storage(&storage(0, &format!("/run/c{i}/rootfs")))
            .unwrap();
        assert_eq!(v.refcount, i + 1);
    }
    assert_eq!(sys.snapshot().dm.len(), 1);
    assert_eq!(sys.snapshot().mounts.len(), 5);
    for i in 0..5 {
        assert!(m.remove_storage(&format!("/run/c{i}/rootfs")).unwrap());
        let left = if i < 4 { 1 } else { 0 };
        assert_eq!(sys.snapshot().dm.len(), left, "after removing {i}");
    }
    assert_eq!(sys.snapshot(), before);
    assert!(m.list().is_empty());
}

/// Removing one of several mount points that share a device leaves the device alone: its
/// `/dev/mapper` node stays, it is neither removed nor scheduled for removal (no dm remove
/// call at all), and a full check through the other mount point still reads every block.
#[test]
fn removing_one_sharer_keeps_the_device_its_node_and_the_others_reads() {
    let sys = system(1);
    let m = manager(&sys, Arc::new(MemStore::default()));
    let a = m.add_storage(&storage(0, "/run/a")).unwrap();
    let b = m.add_storage(&storage(0, "/run/b")).unwrap();
    assert_eq!(a.dm_name, b.dm_name);
    assert_eq!(b.refcount, 2);
    let node = PathBuf::from(format!("/dev/mapper/{}", a.dm_name.unwrap()));
    let removes = sys.count(Op::DmRemove);
    assert!(m.remove_storage("/run/a").unwrap());
    assert_eq!(
        sys.count(Op::DmRemove),
        removes,
        "the shared device was removed or marked for deferred removal"
    );
    assert!(sys.snapshot().nodes.contains(&node), "{node:?} was removed");
    assert_eq!(sys.snapshot().dm.len(), 1);
    assert_eq!(sys.snapshot().mounts, vec![PathBuf::from("/run/b")]);
    let c = m.check("/run/b", true).unwrap();
    assert_eq!((c.status.as_str(), c.read_error), ("V", None));
    assert!(c.bytes_read.is_some());
    assert_eq!(m.list()[0].refcount, 1);
    // The device is still an ordinary one: it goes when its last user does, not before.
    assert!(m.remove_storage("/run/b").unwrap());
    assert_eq!(sys.count(Op::DmRemove), removes + 1);
    assert!(sys.snapshot().dm.is_empty() && sys.snapshot().nodes.is_empty());
}

#[test]
fn add_and_remove_are_idempotent_and_conflicts_are_refused() {
    let sys = system(2);
    let m = manager(&sys, Arc::new(MemStore::default()));
    let a = m.add_storage(&storage(0, "/run/a")).unwrap();
    assert!(!a.already_present);
    let again = m.add_storage(&storage(0, "/run/a")).unwrap();
    assert!(again.already_present);
    assert_eq!(sys.count(Op::DmCreate), 1);
    assert_eq!(again.refcount, 2, "each add is a claim");
    let e = m.add_storage(&storage(1, "/run/a")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // Two claims: the first remove gives one back, the mount stays; the second tears down.
    assert!(m.remove_storage("/run/a").unwrap());
    assert_eq!(sys.snapshot().mounts.len(), 1);
    assert_eq!(m.list()[0].refcount, 1);
    assert!(m.remove_storage("/run/a").unwrap());
    assert!(sys.snapshot().mounts.is_empty());
    assert!(!m.remove_storage("/run/a").unwrap());
}

#[test]
fn bad_requests_are_typed() {
    let sys = system(1);
    let m = manager(&sys, Arc::new(MemStore::default()));
    let mut s = storage(0, "/run/a");
    s.options = vec!["ro".into()];
    assert_eq!(
        m.add_storage(&s).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    s.driver_options = vec![option(0, "/x")];
    m.add_storage(&s).unwrap();
    for mp in ["", "relative", "/run/../etc", "/run/./a", "/run//a", "/"] {
        let e = m.add_storage(&storage(0, mp)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{mp}: {e}");
    }
    assert_eq!(
        m.check("/run/nothing", false).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn check_reports_corruption() {
    let sys = system(1);
    let m = manager(&sys, Arc::new(MemStore::default()));
    let v = m.add_storage(&storage(0, "/run/a")).unwrap();
    assert_eq!(m.check("/run/a", true).unwrap().status, "V");
    sys.set_corrupt(v.dm_name.as_ref().unwrap().as_str());
    let c = m.check("/run/a", true).unwrap();
    assert_eq!(c.status, "C");
    assert!(c.read_error.is_some());
}

/// A second mount point is never put on a device that already reports corruption: the add
/// is refused (permission denied: the volume failed verification), nothing is recorded, and
/// the first mount point keeps its device.
#[test]
fn no_mount_point_is_added_onto_an_active_corrupted_device() {
    let sys = system(1);
    let store = Arc::new(MemStore::default());
    let m = manager(&sys, store.clone());
    let a = m.add_storage(&storage(0, "/run/a")).unwrap();
    let before = sys.snapshot();
    let saved = store.load().unwrap();
    sys.set_corrupt(a.dm_name.as_ref().unwrap().as_str());
    let e = m.add_storage(&storage(0, "/run/b")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.to_string().contains(a.dm_name.as_ref().unwrap().as_str()),
        "the error names the device: {e}"
    );
    assert_eq!(sys.snapshot(), before);
    assert_eq!(store.load().unwrap(), saved);
    let list = m.list();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].mount_point.to_str(), list[0].refcount),
        (Some("/run/a"), 1)
    );
}

/// Eight threads add and remove volumes at once, sharing four layers (so dm devices are
/// shared across threads) but each with its own mount points, so each add's outcome is
/// known: a new mount, the same volume already there, or a different volume already there
/// (a conflict). Every result is checked against that, whatever the interleaving.
#[test]
fn concurrent_adds_and_removes_stay_consistent() {
    /// What an add must do: mount (refcount at least 1), find itself already there, or
    /// conflict with the layer that holds the mount point.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Mounted,
        AlreadyPresent,
        Conflict { holder: usize },
    }
    /// The outcomes one thread must see, from its own mount points alone.
    fn expected(t: usize) -> Vec<Outcome> {
        let mut held: [Option<usize>; 3] = [None; 3];
        (0..40)
            .map(|round| {
                let (layer, slot) = ((t + round) % 4, round % 3);
                let outcome = match held[slot] {
                    None => Outcome::Mounted,
                    Some(l) if l == layer => Outcome::AlreadyPresent,
                    Some(holder) => Outcome::Conflict { holder },
                };
                held[slot].get_or_insert(layer);
                if round % 2 == 1 {
                    held[slot] = None;
                }
                outcome
            })
            .collect()
    }
    let sys = system(4);
    let before = sys.snapshot();
    // The dm name of each layer, from a probe of its own.
    let names: Arc<Vec<kata_volume::system::DmName>> = Arc::new(
        (0..4)
            .map(|l| {
                let probe = system(4);
                manager(&probe, Arc::new(MemStore::default()))
                    .add_storage(&storage(l, "/run/probe"))
                    .unwrap()
                    .dm_name
                    .unwrap()
            })
            .collect(),
    );
    let m = Arc::new(manager(&sys, Arc::new(MemStore::default())));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (m, names) = (m.clone(), names.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for round in 0..40 {
                    let layer = (t + round) % 4;
                    let mp = format!("/run/t{t}/m{}", round % 3);
                    seen.push(match m.add_storage(&storage(layer, &mp)) {
                        Ok(v) => {
                            assert!(v.refcount >= 1, "{mp}: {v:?}");
                            assert_eq!(v.dm_name.as_ref(), Some(&names[layer]), "{mp}");
                            if v.already_present {
                                Outcome::AlreadyPresent
                            } else {
                                Outcome::Mounted
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                            let holder = names
                                .iter()
                                .position(|n| e.to_string().contains(n.as_str()))
                                .unwrap_or_else(|| panic!("{mp}: conflict names no layer: {e}"));
                            Outcome::Conflict { holder }
                        }
                        Err(e) => panic!("add {mp}: {e} ({e:?})"),
                    });
                    if round % 2 == 1
                        && let Err(e) = m.remove_storage(&mp)
                    {
                        panic!("remove {mp}: {e} ({e:?})");
                    }
                }
                seen
            })
        })
        .collect();
    let mut mounted = 0;
    let mut conflicts = 0;
    for (t, thread) in threads.into_iter().enumerate() {
        let seen = thread.join().unwrap();
        assert_eq!(seen, expected(t), "thread {t}");
        mounted += seen.iter().filter(|o| **o == Outcome::Mounted).count();
        conflicts += seen
            .iter()
            .filter(|o| matches!(o, Outcome::Conflict { .. }))
            .count();
    }
    // Both kinds happened, so the test saw successes and refusals.
    assert_eq!((mounted, conflicts), (168, 152));
    // Every active entry is mounted, one dm device per distinct layer in use.
    let list = m.list();
    let snap = sys.snapshot();
    assert_eq!(snap.mounts.len(), list.len());
    let layers: std::collections::BTreeSet<_> = list.iter().map(|v| v.dm_name.clone()).collect();
    assert_eq!(snap.dm.len(), layers.len());
    for v in &list {
        assert_eq!(
            v.refcount,
            list.iter().filter(|o| o.dm_name == v.dm_name).count()
        );
    }
    for v in list {
        m.remove_storage(v.mount_point.to_str().unwrap()).unwrap();
    }
    assert_eq!(sys.snapshot().dm, before.dm);
    assert!(sys.snapshot().mounts.is_empty());
}

#[test]
fn restart_readopts_what_is_mounted() {
    let sys = system(2);
    let store = Arc::new(MemStore::default());
    let m = manager(&sys, store.clone());
    m.add_storage(&storage(0, "/run/a")).unwrap();
    m.add_storage(&storage(0, "/run/b")).unwrap();
    m.add_storage(&storage(1, "/run/c")).unwrap();
    drop(m);
    let (m2, report) = VolumeManager::new(sys.clone(), store, opts()).unwrap();
    assert_eq!(report.adopted, 3);
    assert_eq!(report.orphans_removed, 0);
    assert_eq!(m2.list().len(), 3);
    assert_eq!(sys.snapshot().dm.len(), 2);
}

/// A crash at any point of an add — after k of its system changes, with the pending entry
/// on disk and no rollback — is cleaned up by the next start: nothing leaked, nothing kept.
#[test]
fn restart_after_a_crash_mid_setup_leaks_nothing() {
    let probe = system(1);
    let m = manager(&probe, Arc::new(MemStore::default()));
    let start = probe.calls().len();
    m.add_storage(&storage(0, "/run/x/a")).unwrap();
    let steps = probe.calls()[start..]
        .iter()
        .filter(|c| Op::MUTATING.contains(c))
        .count();
    assert!(steps >= 5, "{:?}", probe.calls());
    for crash_after in 0..=steps {
        let sys = system(1);
        let before = sys.snapshot();
        // Saves: #0 startup, #1 pending; the process "dies" before it can save again.
        let store = Arc::new(MemStore::failing_from(2));
        let m = manager(&sys, store.clone());
        sys.crash_after(crash_after);
        let _ = m.add_storage(&storage(0, "/run/x/a"));
        drop(m);
        sys.clear_failures();
        store.fail_from(0);
        let (m2, report) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
        if crash_after < steps {
            assert_eq!(
                sys.snapshot(),
                before,
                "crash after {crash_after} steps: {report:?}"
            );
            assert!(m2.list().is_empty());
            assert!(store.load().unwrap().entries.is_empty());
        } else {
            // Every step happened: only the final save was lost; the volume is mounted but
            // was never recorded as active, so it is torn down too.
            assert_eq!(sys.snapshot().dm.len(), 0, "{report:?}");
            assert!(sys.snapshot().mounts.is_empty());
        }
    }
}

#[test]
fn state_write_failure_leaves_system_and_state_consistent() {
    // Save #0 is the startup save; #1 the pending entry; #2 the active entry.
    for fail_from in 1..=2 {
        let sys = system(1);
        let before = sys.snapshot();
        let store = Arc::new(MemStore::failing_from(fail_from));
        let m = manager(&sys, store.clone());
        let e = m.add_storage(&storage(0, "/run/a")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        assert_eq!(
            sys.snapshot(),
            before,
            "save #{fail_from} failing left something"
        );
        assert!(m.list().is_empty());
        let saved = store.load().unwrap();
        assert!(
            saved.entries.iter().all(|e| e.phase == Phase::Pending) || saved.entries.is_empty()
        );
        // A restart with a working disk cleans any pending entry.
        store.fail_from(0);
        let (m2, _) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
        assert!(m2.list().is_empty());
        assert!(store.load().unwrap().entries.is_empty());
        let _ = PathBuf::new();
    }
}

/// Every system call of a remove failing in turn: the remove fails with an error, the entry
/// stays (so the host can retry), and the retry finishes the job with nothing leaked.
#[test]
fn every_teardown_step_failing_in_turn_is_retryable() {
    let probe = system(1);
    let m = manager(&probe, Arc::new(MemStore::default()));
    m.add_storage(&storage(0, "/run/x/a")).unwrap();
    let start = probe.calls().len();
    m.remove_storage("/run/x/a").unwrap();
    let calls: Vec<Op> = probe.calls()[start..].to_vec();
    let mut tried = 0;
    for (i, op) in calls.iter().enumerate() {
        let nth = calls[..i].iter().filter(|c| *c == op).count();
        let sys = system(1);
        let before = sys.snapshot();
        let store = Arc::new(MemStore::default());
        let m = manager(&sys, store.clone());
        m.add_storage(&storage(0, "/run/x/a")).unwrap();
        sys.fail_nth(*op, nth, nix::libc::EIO);
        match m.remove_storage("/run/x/a") {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Internal, "{op:?}#{nth}: {e}");
                // The entry stays, marked as being removed (not listed as mounted).
                let entries = store.load().unwrap().entries;
                assert_eq!(
                    entries.len(),
                    1,
                    "{op:?}#{nth}: entry must stay for a retry"
                );
                assert_eq!(entries[0].phase, Phase::Removing, "{op:?}#{nth}");
                assert!(
                    m.list().is_empty(),
                    "{op:?}#{nth}: half removed, still listed"
                );
                assert!(m.remove_storage("/run/x/a").unwrap(), "{op:?}#{nth}: retry");
            }
            // Reads whose failure teardown can work around.
            Ok(removed) => assert!(removed),
        }
        assert_eq!(sys.snapshot(), before, "{op:?}#{nth} leaked");
        assert!(store.load().unwrap().entries.is_empty());
        tried += 1;
    }
    assert!(tried >= 6, "{calls:?}");
}

/// The state-file writes of a remove failing: marking the entry as being removed fails →
/// nothing is touched; forgetting it after the teardown fails → the system is torn down and
/// the entry stays, marked; either way the next remove finishes consistently.
#[test]
fn remove_with_a_failing_state_write_is_consistent_after_retry() {
    // Saves: #0 startup, #1 pending, #2 active, #3 removing, #4 forget.
    for (fail_from, torn_down) in [(3, false), (4, true)] {
        let sys = system(1);
        let before = sys.snapshot();
        let store = Arc::new(MemStore::failing_from(fail_from));
        let m = manager(&sys, store.clone());
        m.add_storage(&storage(0, "/run/a")).unwrap();
        let mounted = sys.snapshot();
        let e = m.remove_storage("/run/a").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        let now = sys.snapshot();
        assert_eq!(
            now,
            if torn_down { before.clone() } else { mounted },
            "save #{fail_from}"
        );
        store.fail_from(0);
        assert!(m.remove_storage("/run/a").unwrap());
        assert!(store.load().unwrap().entries.is_empty());
        assert_eq!(sys.snapshot(), before);
    }
}

/// A mount of the layer that the manager does not know (a bind mount into a container) does
/// not make the remove keep and forget the device: it is removed deferred, and goes when
/// that last user does.
#[test]
fn remove_with_a_foreign_bind_mount_defers_the_device_removal() {
    use kata_volume::system::MountFlags;
    use kata_volume::system::System;
    let sys = system(1);
    sys.add_dir("/run/container");
    let m = manager(&sys, Arc::new(MemStore::default()));
    let v = m.add_storage(&storage(0, "/run/a")).unwrap();
    let node = format!("/dev/mapper/{}", v.dm_name.unwrap());
    sys.mount(
        std::path::Path::new(&node),
        std::path::Path::new("/run/container"),
        "erofs",
        MountFlags::VERITY,
        "",
    )
    .unwrap();
    assert!(m.remove_storage("/run/a").unwrap());
    assert!(m.list().is_empty());
    assert_eq!(sys.snapshot().dm.len(), 1, "still held by the bind mount");
    sys.unmount(std::path::Path::new("/run/container")).unwrap();
    assert!(sys.snapshot().dm.is_empty(), "deferred removal happened");
}

/// A rollback that fails keeps the pending entry, so a remove finishes the cleanup.
#[test]
fn failed_rollback_keeps_the_entry_for_a_later_remove() {
    let sys = system(1);
    let before = sys.snapshot();
    let m = manager(&sys, Arc::new(MemStore::default()));
    sys.fail_nth(Op::Mount, 0, nix::libc::EIO);
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EBUSY);
    let e = m.add_storage(&storage(0, "/run/x/a")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert_eq!(
        sys.snapshot().dm.len(),
        1,
        "the failed undo left the device"
    );
    assert!(
        m.remove_storage("/run/x/a").unwrap(),
        "the pending entry is still known"
    );
    assert_eq!(sys.snapshot(), before);
}

/// File sources: the daemon lets go of its loop handle once the dm device holds the loop.
#[test]
fn loop_handles_are_released_once_the_device_holds_them() {
    let sys = system(0);
    sys.add_file("/run/img/layer.img", 16 << 20);
    let policy = Policy {
        mount_root: PathBuf::from("/run"),
        allow_files: true,
        allowed_sources: vec!["/run/img/*".into()],
        ..Policy::default()
    };
    let (m, _) = VolumeManager::new(
        sys.clone(),
        Arc::new(MemStore::default()),
        ManagerOptions { policy },
    )
    .unwrap();
    let mut s = storage(0, "/run/a");
    s.source = "/run/img/layer.img".into();
    m.add_storage(&s).unwrap();
    assert_eq!(sys.count(Op::LoopAttach), 1);
    assert_eq!(sys.count(Op::LoopRelease), 1);
    assert!(m.remove_storage("/run/a").unwrap());
    assert!(sys.snapshot().loops.is_empty());
}

#[test]
fn a_mount_root_through_a_symlink_is_refused_at_start() {
    let sys = system(0);
    sys.add_dir("/real");
    sys.add_symlink("/link", "/real");
    let store: Arc<dyn StateStore> = Arc::new(MemStore::default());
    let opts = |root: &str| ManagerOptions {
        policy: Policy {
            mount_root: PathBuf::from(root),
            ..Policy::default()
        },
    };
    for root in ["/link", "/link/kata", "/link/missing/deeper"] {
        let e = VolumeManager::new(sys.clone(), store.clone(), opts(root)).err();
        let e = e.unwrap_or_else(|| panic!("{root}: accepted"));
        assert_eq!(
            e.to_string(),
            format!(
                "Mount root \"{root}\" passes through the symlink \"/link\": give its real path, without symlinks"
            )
        );
    }
    for root in ["/real", "/real/missing/deeper", "/run"] {
        assert!(
            VolumeManager::new(sys.clone(), store.clone(), opts(root)).is_ok(),
            "{root}"
        );
    }
    assert!(store.load().unwrap().entries.is_empty());
}
