#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unused_imports, dead_code)]
//! What the manager records is what it did, and what it locks is what it touches: the loop
//! device a mount really sits on (after a re-mount too), the directories an add really made
//! (not those the plan expected to make), the policy it was given, and one lock per mount
//! point (adds at two mount points do not wait for each other). Each test fails on a mutant
//! cargo-mutants found surviving (docs/mutants.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kata_volume::manager::{StateStore, Storage};
use kata_volume::policy::Policy;
use kata_volume::system::{DmName, FakeSystem, Op, System};

#[path = "common/kata.rs"]
mod kata;
use kata::*;

/// The default policy with file sources allowed from `/images`.
fn files_policy() -> Policy {
    let mut p = Policy {
        allow_files: true,
        allowed_sources: vec!["/images/*".into()],
        ..Policy::default()
    };
    p.load_trust().unwrap();
    p
}

/// Layer 0 from the image file `/images/layer.img` (mounted through a loop device).
fn file_layer() -> Storage {
    let mut s = dmverity(0, "05");
    s.source = "/images/layer.img".into();
    s.driver_options.retain(|o| !o.starts_with("source_type="));
    s
}

fn file_system() -> Arc<FakeSystem> {
    let sys = system();
    sys.add_file("/images/layer.img", 16 << 20);
    sys
}

/// Takes the volume at `mp` down behind the manager's back: the mount and the dm device go,
/// the loop device (if any) stays attached.
fn lose_mount_and_device(sys: &FakeSystem, mp: &str) {
    let dm = sys.snapshot().dm.first().cloned().unwrap();
    sys.unmount(Path::new(mp)).unwrap();
    sys.dm_remove(&DmName::new(&dm).unwrap(), false).unwrap();
}

fn loops(sys: &FakeSystem) -> Vec<PathBuf> {
    sys.snapshot().loops.into_iter().collect()
}

/// The recorded loop device is what the remove detaches when the dm device that held it is
/// gone (nothing else names it any more).
#[test]
fn the_loop_device_is_recorded_and_detached_when_its_dm_device_is_gone() {
    let sys = file_system();
    let (m, store) = manager(&sys, files_policy());
    let s = file_layer();
    m.add_storage(&s).unwrap();
    assert_eq!(loops(&sys), [PathBuf::from("/dev/loop0")]);
    let entry = store.load().unwrap().entries.remove(0);
    assert_eq!(entry.loop_device.as_deref(), Some(Path::new("/dev/loop0")));
    lose_mount_and_device(&sys, &s.mount_point);
    assert!(m.remove_storage(&s.mount_point).unwrap());
    assert_eq!(loops(&sys), Vec::<PathBuf>::new(), "the loop device leaked");
}

/// A volume mounted again (its mount and device went away) records the new loop device; the
/// last remove detaches that one.
#[test]
fn a_re_mount_records_its_new_loop_device() {
    let sys = file_system();
    let (m, store) = manager(&sys, files_policy());
    let s = file_layer();
    m.add_storage(&s).unwrap();
    lose_mount_and_device(&sys, &s.mount_point);
    sys.loop_detach(Path::new("/dev/loop0")).unwrap();
    let again = m.add_storage(&s).unwrap();
    assert!(!again.already_present);
    assert_eq!(loops(&sys), [PathBuf::from("/dev/loop1")]);
    let entry = store.load().unwrap().entries.remove(0);
    assert_eq!(entry.loop_device.as_deref(), Some(Path::new("/dev/loop1")));
    lose_mount_and_device(&sys, &s.mount_point);
    // Two adds, two claims: the first remove only drops one.
    assert!(m.remove_storage(&s.mount_point).unwrap());
    assert!(m.remove_storage(&s.mount_point).unwrap());
    assert!(m.list().is_empty());
    assert_eq!(loops(&sys), Vec::<PathBuf>::new(), "the loop device leaked");
}

/// A directory the plan expected to make but someone else made first (between the plan and
/// the apply) is not ours: it is not recorded, and the remove leaves it.
#[test]
fn a_directory_made_by_someone_else_meanwhile_is_not_recorded_or_removed() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    let s = dmverity(0, "05");
    // Every directory creation waits; the first one is VV, which the plan found missing.
    sys.delay(Op::MakeDir, Duration::from_millis(600));
    let adding = {
        let (m, s) = (&m, s.clone());
        std::thread::scope(|scope| {
            let add = scope.spawn(move || m.add_storage(&s));
            // Well after the plan (microseconds), well before the creation (600 ms).
            std::thread::sleep(Duration::from_millis(200));
            sys.add_dir(VV);
            add.join().unwrap()
        })
    };
    adding.unwrap();
    sys.delay(Op::MakeDir, Duration::ZERO);
    let entry = store.load().unwrap().entries.remove(0);
    let ours = [format!("{VV}/verity"), layer_mp(0)].map(PathBuf::from);
    assert_eq!(entry.created_dirs, ours, "the dirs the add made");
    assert!(m.remove_storage(&s.mount_point).unwrap());
    assert!(
        sys.lstat(Path::new(VV)).is_ok(),
        "another's directory removed"
    );
    assert!(sys.lstat(Path::new(&format!("{VV}/verity"))).is_err());
}

#[test]
fn the_manager_answers_with_the_policy_it_was_given() {
    let sys = system();
    let policy = Policy {
        max_volumes: 7,
        max_request_bytes: 12_345,
        ..files_policy()
    };
    let (m, _) = manager(&sys, policy.clone());
    assert_eq!(m.policy(), &policy);
}

/// Two adds at different mount points (of different layers) run side by side: each holds
/// only its own locks. Every mount takes 800 ms here, so one after the other they take
/// 1.6 s at least; side by side, about 0.8 s.
#[test]
fn adds_at_two_mount_points_do_not_wait_for_each_other() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    sys.delay(Op::Mount, Duration::from_millis(800));
    let start = Instant::now();
    std::thread::scope(|scope| {
        let adds: Vec<_> = [(0, "05"), (1, "06")]
            .into_iter()
            .map(|(i, slot)| {
                let m = &m;
                scope.spawn(move || m.add_storage(&dmverity(i, slot)))
            })
            .collect();
        for add in adds {
            add.join().unwrap().unwrap();
        }
    });
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "the two adds took {took:?}: one waited for the other"
    );
    assert_eq!(m.list().len(), 2);
}

/// Every refusal and failure is classed as the code the agent answers with: the request's
/// fault (`InvalidArgument`) when it names what is not there or cannot be, the guest's
/// (`Internal`) when the system fails, and nothing is left either way.
#[test]
fn failures_are_classed_by_whose_fault_they_are() {
    use kata_volume::manager::ErrorKind::{self, Internal, InvalidArgument};
    let policy = Policy {
        device_timeout: Duration::from_millis(50),
        ..Policy::default()
    };
    /// What is asked, the failure injected (an op and its errno), the kind expected.
    type Case = (&'static str, Storage, Option<(Op, i32)>, ErrorKind);
    let cases: [Case; 6] = [
        (
            "a malformed PCI path",
            dmverity(0, "zz/0g"),
            None,
            InvalidArgument,
        ),
        ("no disk at the address", dmverity(0, "1f"), None, Internal),
        (
            "the disk cannot be read",
            dmverity(0, "05"),
            Some((Op::Stat, nix::libc::EIO)),
            Internal,
        ),
        (
            "the mount's device vanished",
            dmverity(0, "05"),
            Some((Op::Mount, nix::libc::ENOENT)),
            InvalidArgument,
        ),
        (
            "the mount fails",
            dmverity(0, "05"),
            Some((Op::Mount, nix::libc::EIO)),
            Internal,
        ),
        (
            "the device node cannot be made",
            dmverity(0, "05"),
            Some((Op::MakeNode, nix::libc::EIO)),
            Internal,
        ),
    ];
    for (what, storage, failure, kind) in cases {
        let sys = system();
        let (m, store) = manager(&sys, policy.clone());
        let before = sys.snapshot();
        if let Some((op, errno)) = failure {
            sys.fail_nth(op, 0, errno);
        }
        let e = m.add_storage(&storage).unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e}");
        sys.clear_failures();
        assert_eq!(sys.snapshot(), before, "{what}: left something");
        assert!(store.load().unwrap().entries.is_empty(), "{what}");
    }
}

/// A restart re-adopts what is still mounted as recorded: a volume without dm-verity (no
/// device of ours to recognise it by) by its recorded device, whatever its filesystem.
#[test]
fn a_restart_adopts_an_unverified_volume_still_mounted() {
    use kata_volume::manager::{ManagerOptions, MemStore, VolumeManager};
    let sys = system();
    let store = Arc::new(MemStore::default());
    let opts = || ManagerOptions {
        policy: Policy {
            allow_unverified: true,
            ..Policy::default()
        },
    };
    let s = unverified(&format!("{ROOT}/plain"));
    let (m, _) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    assert_eq!(m.add_storage(&s).unwrap().dm_name, None);
    drop(m);
    let (m, report) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    assert_eq!((report.adopted, report.dropped), (1, 0), "{report:?}");
    assert_eq!(mounts_at(&sys, &s.mount_point).len(), 1);
    assert!(m.add_storage(&s).unwrap().already_present);
}

/// A rootfs is re-adopted only if an overlay is mounted there on the recorded device: a
/// mount of another filesystem on that device number (numbers of anonymous devices are
/// reused) is someone else's, and left alone.
#[test]
fn a_restart_does_not_adopt_another_filesystem_on_a_rootfs_device_number() {
    use kata_volume::manager::{ManagerOptions, MemStore, VolumeManager};
    use kata_volume::system::MountFlags;
    let sys = system();
    let store = Arc::new(MemStore::default());
    let opts = || ManagerOptions {
        policy: Policy::default(),
    };
    let (m, _) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    m.add_storage(&dmverity(1, "05")).unwrap();
    let rootfs = overlay("c1", &[1]).mount_point;
    m.add_storage(&overlay("c1", &[1])).unwrap();
    drop(m);
    // The overlay went; another filesystem came, on a device number the record then names.
    sys.unmount(Path::new(&rootfs)).unwrap();
    sys.mount(
        Path::new("/dev/vde"),
        Path::new(&rootfs),
        "erofs",
        MountFlags::default(),
        "",
    )
    .unwrap();
    let dev = mounts_at(&sys, &rootfs)[0].dev;
    let mut state = store.load().unwrap();
    for e in &mut state.entries {
        if e.mount_point == Path::new(&rootfs) {
            e.mounted_device = Some(dev);
        }
    }
    store.save(&state).unwrap();
    let (m, report) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    assert_eq!(report.adopted, 1, "only the layer: {report:?}");
    let listed: Vec<_> = m.list().into_iter().map(|v| v.mount_point).collect();
    assert_eq!(listed, [PathBuf::from(layer_mp(1))]);
    let at = mounts_at(&sys, &rootfs);
    assert_eq!(at.len(), 1, "{at:?}");
    assert_eq!(at[0].fs_type, "erofs", "another's mount taken down");
}
