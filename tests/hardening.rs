#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hardening, round two (issue 11): foreign mounts around the mount point, honest teardown,
//! stale entries, one volume per request, request limits, log-safe input, rollback corners.
//! Each test failed before its fix.

#[path = "hostile/cases.rs"]
#[allow(dead_code)]
mod cases;

use std::path::Path;
use std::sync::Arc;

use cases::{ROOT, good};
use kata_volume::manager::MemStore;
use kata_volume::manager::{
    ErrorKind, ManagerError, ManagerOptions, Phase, StateStore, VolumeManager,
};
use kata_volume::system::{DevNum, FakeSystem, MountFlags, Op, System};

/// The hostile catalogue's system, plus a disk for foreign mounts.
fn system() -> Arc<FakeSystem> {
    let f = cases::system();
    f.add_block_device(
        "/dev/vdz",
        DevNum {
            major: 254,
            minor: 400,
        },
        1 << 20,
    );
    Arc::new(f)
}

fn manager(sys: &Arc<FakeSystem>) -> (VolumeManager, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    let opts = ManagerOptions {
        policy: cases::policy(),
    };
    (
        VolumeManager::new(sys.clone(), store.clone(), opts)
            .unwrap()
            .0,
        store,
    )
}

/// Another party's mount (say the container rootfs the agent made) at `target`.
fn foreign_mount(sys: &FakeSystem, target: &str) {
    for dir in Path::new(target).ancestors() {
        sys.add_dir(&dir.to_string_lossy());
    }
    sys.mount(
        Path::new("/dev/vdz"),
        Path::new(target),
        "overlay",
        MountFlags::default(),
        "",
    )
    .unwrap();
}

/// The mount points the manager lists.
fn listed(m: &VolumeManager) -> Vec<String> {
    m.list()
        .iter()
        .map(|v| v.mount_point.display().to_string())
        .collect()
}

fn mounted_at(sys: &FakeSystem, target: &str) -> usize {
    sys.mounts()
        .unwrap()
        .iter()
        .filter(|m| m.target == Path::new(target))
        .count()
}

#[test]
fn item1_a_mount_point_inside_or_above_a_foreign_mount_is_refused() {
    let sys = system();
    let (m, store) = manager(&sys);
    let rootfs = format!("{ROOT}/c1/rootfs");
    foreign_mount(&sys, &rootfs);
    sys.add_dir(&format!("{rootfs}/etc"));
    sys.add_dir(&format!("{rootfs}/new"));
    let before = sys.snapshot();
    for (mp, says) in [
        (format!("{rootfs}/etc"), "inside another mount"),
        (format!("{rootfs}/new/dir"), "inside another mount"),
        (format!("{ROOT}/c1"), "mounted below it"),
    ] {
        let e = m.add_storage(&good(&mp)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{mp}: {e}");
        assert!(e.to_string().contains(says), "{mp}: {e}");
        assert_eq!(sys.snapshot(), before, "{mp} left something");
    }
    assert_eq!(
        mounted_at(&sys, &rootfs),
        1,
        "the foreign mount was touched"
    );
    assert!(store.load().unwrap().entries.is_empty());
    // Beside it, on the mount root's own mount, all is well.
    m.add_storage(&good(&format!("{ROOT}/c1/layer"))).unwrap();
}

#[test]
fn item1_a_shadowed_mount_point_is_not_taken_for_unmounted() {
    let sys = system();
    let (m, store) = manager(&sys);
    let mp = format!("{ROOT}/c2/layer");
    m.add_storage(&good(&mp)).unwrap();
    // Someone mounts over the parent: our mount is hidden, still in the mount table.
    foreign_mount(&sys, &format!("{ROOT}/c2"));
    let e = m.remove_storage(&mp).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(e.to_string().contains("unmount"), "{e}");
    assert_eq!(mounted_at(&sys, &mp), 1, "our mount was lost track of");
    assert_eq!(
        sys.snapshot().dm.len(),
        1,
        "the device went from under the mount"
    );
    assert_eq!(
        store.load().unwrap().entries.len(),
        1,
        "the entry was dropped"
    );
    // Nothing was changed: the volume is still listed (and checkable), not half torn down.
    assert_eq!(
        listed(&m),
        vec![mp.clone()],
        "the untouched volume is not listed"
    );
    m.check(&mp, false).unwrap();
    // Once the foreign mount is gone, the removal goes through.
    sys.unmount(Path::new(&format!("{ROOT}/c2"))).unwrap();
    assert!(m.remove_storage(&mp).unwrap());
    assert!(sys.snapshot().dm.is_empty());
}

#[test]
fn item2_remove_never_unmounts_a_foreign_mount_stacked_on_ours() {
    let sys = system();
    let (m, store) = manager(&sys);
    let mp = format!("{ROOT}/c3/layer");
    m.add_storage(&good(&mp)).unwrap();
    foreign_mount(&sys, &mp);
    let e = m.remove_storage(&mp).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("/dev/vdz"), "{e}");
    assert_eq!(mounted_at(&sys, &mp), 2, "a mount was taken down");
    assert_eq!(sys.snapshot().dm.len(), 1);
    assert_eq!(sys.count(Op::DmRemove), 0);
    assert_eq!(store.load().unwrap().entries.len(), 1);
    assert_eq!(
        listed(&m),
        vec![mp.clone()],
        "the untouched volume is not listed"
    );
    // Once the foreign mount is gone, the removal goes through.
    sys.unmount(Path::new(&mp)).unwrap();
    assert!(m.remove_storage(&mp).unwrap());
    assert!(sys.snapshot().dm.is_empty());
}

#[test]
fn item4_a_stale_entry_never_answers_already_present_with_nothing_mounted() {
    let sys = system();
    let (m, store) = manager(&sys);
    let mp = format!("{ROOT}/c4/layer");
    let v = m.add_storage(&good(&mp)).unwrap();
    let name = v.dm_name.unwrap();
    // The removal unmounts, then fails to remove the device.
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EIO);
    m.remove_storage(&mp).unwrap_err();
    assert_eq!(mounted_at(&sys, &mp), 0);
    let entries = store.load().unwrap().entries;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].phase, Phase::Removing);
    assert!(m.list().is_empty(), "a volume half torn down is listed");
    // A re-add finishes the removal, then mounts for real.
    let again = m.add_storage(&good(&mp)).unwrap();
    assert!(!again.already_present, "answered already_present");
    assert_eq!(mounted_at(&sys, &mp), 1, "nothing mounted");
    assert_eq!(again.dm_name.as_ref(), Some(&name));
    assert_eq!(store.load().unwrap().entries[0].phase, Phase::Active);
    // An active entry whose mount went away (unmounted behind our back) is mounted again.
    sys.unmount(Path::new(&mp)).unwrap();
    let again = m.add_storage(&good(&mp)).unwrap();
    assert!(!again.already_present);
    assert_eq!(mounted_at(&sys, &mp), 1);
    assert!(m.add_storage(&good(&mp)).unwrap().already_present);
}

#[test]
fn item5_two_volumes_in_one_request_or_another_fstype_are_refused() {
    let sys = system();
    let (m, _) = manager(&sys);
    let before = sys.snapshot();
    let mut s = good(&format!("{ROOT}/c5/layer"));
    let signature = s.driver_options.clone();
    s.driver_options = vec![cases::opt_of(&cases::verity_json(cases::UNTRUSTED, ""))];
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("options and driver_options"), "{e}");
    // The same volume in both places is one volume (signed, as the policy wants).
    s.driver_options = s.options.iter().chain(&signature).cloned().collect();
    m.add_storage(&s).unwrap();
    m.remove_storage(&s.mount_point).unwrap();
    s.fstype = "ext4".into();
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("fstype \"ext4\""), "{e}");
    s.fstype = "erofs".into();
    m.add_storage(&s).unwrap();
    m.remove_storage(&s.mount_point).unwrap();
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn item7_option_counts_are_bounded_whatever_their_size() {
    let sys = system();
    let (m, _) = manager(&sys);
    let mut s = good(&format!("{ROOT}/c7/layer"));
    s.options
        .extend(std::iter::repeat_n(String::new(), 100_000));
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("options"), "{e}");
    let mut s = good(&format!("{ROOT}/c7/layer"));
    s.driver_options = vec![String::new(); 100_000];
    assert_eq!(
        m.add_storage(&s).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn item8_control_characters_in_paths_are_refused() {
    let sys = system();
    let (m, _) = manager(&sys);
    let before = sys.snapshot();
    for mp in [
        format!("{ROOT}/c8/a\nINFO forged log line"),
        format!("{ROOT}/c8/\u{1b}[31mred"),
        format!("{ROOT}/c8/tab\there"),
        format!("{ROOT}/c8/del\u{7f}"),
    ] {
        let e = m.add_storage(&good(&mp)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{mp:?}: {e}");
        let msg = e.to_string();
        assert!(msg.contains("control character"), "{msg}");
        assert!(
            !msg.chars().any(char::is_control),
            "the error echoes a control character: {msg:?}"
        );
        assert!(m.remove_storage(&mp).is_err(), "{mp:?}");
    }
    let mut s = good(&format!("{ROOT}/c8/ok"));
    s.source = "/dev/vdb\u{1b}".into();
    let e = m.add_storage(&s).unwrap_err();
    assert!(!e.to_string().chars().any(char::is_control), "{e}");
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn item8_echoed_values_are_truncated() {
    let sys = system();
    let (m, _) = manager(&sys);
    let long = format!("{ROOT}/{}", "d".repeat(3000));
    let e = m.check(&long, false).unwrap_err();
    assert!(
        e.to_string().len() < 300,
        "{} bytes: {e}",
        e.to_string().len()
    );
    let e = m.add_storage(&good(&format!("{long}/x"))).unwrap_err();
    assert!(e.to_string().len() < 300, "{} bytes", e.to_string().len());
}

#[test]
fn item9_a_rollback_that_finds_its_directory_in_use_leaves_it_and_no_pending_entry() {
    let sys = system();
    let (m, store) = manager(&sys);
    // The mount fails; undoing the directory it made finds it not empty (a parallel add
    // made its own directory inside): that is "leave it", not a failed rollback.
    sys.fail_nth(Op::Mount, 0, nix::libc::EIO);
    sys.fail_nth(Op::RemoveDir, 0, nix::libc::ENOTEMPTY);
    let e = m
        .add_storage(&good(&format!("{ROOT}/c9/layer")))
        .unwrap_err();
    match &e {
        ManagerError::Apply(a) => assert!(a.undo_failures().is_empty(), "{e}"),
        other => panic!("{other}"),
    }
    assert!(
        store.load().unwrap().entries.is_empty(),
        "a pending entry is stuck"
    );
    m.add_storage(&good(&format!("{ROOT}/c9/layer"))).unwrap();
}

#[test]
fn item10_only_erofs_by_default() {
    let p = kata_volume::policy::Policy::default();
    assert_eq!(p.allowed_fs_types, vec!["erofs".to_owned()]);
    let sys = system();
    let (m, _) = manager(&sys);
    let json = cases::verity_json(cases::TRUSTED, r#","fs_type":"ext4""#);
    let mut s = good(&format!("{ROOT}/c10/layer"));
    s.options = vec![cases::opt_of(&json)];
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

#[test]
fn item16_a_wrong_root_hash_is_named_not_an_eio() {
    let sys = system();
    let (m, store) = manager(&sys);
    let before = sys.snapshot();
    let mp = format!("{ROOT}/c16/layer");
    // Find the name the volume gets, then make its first read fail as a wrong root hash does.
    let name = m.add_storage(&good(&mp)).unwrap().dm_name.unwrap();
    m.remove_storage(&mp).unwrap();
    sys.set_corrupt_on_read(name.as_str());
    let e = m.add_storage(&good(&mp)).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{msg}");
    assert!(
        msg.starts_with("The image on \"/dev/vdb\" does not match root hash 1111"),
        "{msg}"
    );
    assert!(msg.contains(name.as_str()), "{msg}");
    assert!(!msg.contains("Input/output error"), "{msg}");
    assert_eq!(sys.snapshot(), before, "the refused mount left something");
    assert!(store.load().unwrap().entries.is_empty());
}
