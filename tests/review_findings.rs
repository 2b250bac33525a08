#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unused_imports, dead_code)]
//! The Storage shapes a Kata runtime sends (issue 12), through the manager over the fake
//! system: the CCv0 `dmverity` driver with disks named by guest address, the `overlayfs`
//! rootfs over verified layers (two containers sharing one), and every refusal leaving
//! nothing behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kata_volume::manager::MemStore;
use kata_volume::manager::{
    ErrorKind, ManagerOptions, Phase, State, StateStore, Storage, StorageKind, VolumeManager,
};
use kata_volume::policy::Policy;
use kata_volume::request::CREATE_DIRECTORY;
use kata_volume::system::{DevNum, FakeSystem, Op, System};

#[path = "common/kata.rs"]
mod kata;
use kata::*;

/// F1: the first layer mounts, the rootfs overlay mount fails: the layer, its dm device and
/// directories stay, and no entry lets the runtime's RemoveStorage(rootfs) find them.
#[test]
fn review_multilayer_failed_overlay_leaks_the_layer() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    // Mount #0: the layer; mount #1: the overlay.
    sys.fail_nth(Op::Mount, 1, nix::libc::EIO);
    let e = m.add_storage(&multi_layer(1, "c1")).unwrap_err();
    eprintln!("add failed: {e}");
    let rootfs = format!("{ROOT}/passthrough/c1/rootfs");
    let removed = m.remove_storage(&rootfs).unwrap();
    eprintln!("remove rootfs -> {removed}");
    eprintln!(
        "state: {:?}",
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .map(|e| (&e.mount_point, e.phase))
            .collect::<Vec<_>>()
    );
    eprintln!("mounts left: {:?}", sys.snapshot().mounts);
    eprintln!("dm left: {:?}", sys.snapshot().dm);
    assert_eq!(
        sys.snapshot(),
        before,
        "left behind after a failed multi-layer add + remove"
    );
}

/// F1b: a rebuild (second layer) whose overlay mount fails: the old rootfs is gone, its
/// upper (container writes) forgotten, layers orphaned.
#[test]
fn review_multilayer_failed_rebuild_leaks() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    m.add_storage(&multi_layer(1, "c1")).unwrap();
    // layer 2 mount ok (#0), overlay rebuild (#1) fails.
    sys.fail_nth(Op::Mount, 1, nix::libc::EIO);
    let e = m.add_storage(&multi_layer(2, "c1")).unwrap_err();
    eprintln!("rebuild failed: {e}");
    let rootfs = format!("{ROOT}/passthrough/c1/rootfs");
    eprintln!(
        "rootfs mounted after failed rebuild: {}",
        mounts_at(&sys, &rootfs).len()
    );
    let removed = m.remove_storage(&rootfs).unwrap();
    eprintln!("remove rootfs -> {removed}");
    eprintln!(
        "state: {:?}",
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .map(|e| (&e.mount_point, e.phase))
            .collect::<Vec<_>>()
    );
    let snap = sys.snapshot();
    eprintln!("mounts left: {:?}\ndm left: {:?}", snap.mounts, snap.dm);
    eprintln!(
        "dirs left: {:?}",
        snap.dirs.difference(&before.dirs).collect::<Vec<_>>()
    );
    assert_eq!(snap, before);
}

/// F6: the rootfs goes, the first layer's teardown fails: the overlay entry is already
/// forgotten, the other layers stay Released with no user, and a retry finds nothing.
#[test]
fn review_multilayer_layer_teardown_failure_orphans_the_rest() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    for n in [1, 2, 3] {
        m.add_storage(&multi_layer(n, "c1")).unwrap();
    }
    let rootfs = format!("{ROOT}/passthrough/c1/rootfs");
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EIO);
    let e = m.remove_storage(&rootfs).unwrap_err();
    eprintln!("remove failed: {e}");
    let again = m.remove_storage(&rootfs);
    eprintln!("retry -> {again:?}");
    eprintln!(
        "state: {:?}",
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .map(|e| (&e.mount_point, e.phase))
            .collect::<Vec<_>>()
    );
    // The container is created again: the same first layer.
    let re = m.add_storage(&multi_layer(1, "c1"));
    eprintln!(
        "re-add layer 1 -> {:?}",
        re.as_ref()
            .map(|v| v.already_present)
            .map_err(|e| (e.to_string(), e.kind()))
    );
    let snap = sys.snapshot();
    eprintln!("mounts left: {:?}\ndm left: {:?}", snap.mounts, snap.dm);
    let _ = before;
}

/// F4: two rootfs whose parent directories share a name share one layer directory: the second
/// rootfs gets the first's layers.
#[test]
fn review_multilayer_container_name_collision_mixes_layers() {
    let sys = system();
    partitioned(&sys);
    let (m, _) = manager(&sys, Policy::default());
    let mut a = multi_layer(1, "c1");
    a.mount_point = format!("{ROOT}/a/c1/rootfs");
    m.add_storage(&a).unwrap();
    let mut b = multi_layer(2, "c1");
    b.mount_point = format!("{ROOT}/b/c1/rootfs");
    m.add_storage(&b).unwrap();
    let o = mounts_at(&sys, &format!("{ROOT}/b/c1/rootfs"));
    eprintln!("b's overlay: {}", o[0].super_options);
    assert!(
        !o[0].super_options.contains("lower-1"),
        "b got a's layer: {}",
        o[0].super_options
    );
}

/// F2: two overlays name the same upper: the first created it (a tree), the second found it.
/// Removing the first deletes the second's upper while it is mounted.
#[test]
fn review_shared_upper_is_removed_under_another_rootfs() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    // c2 reuses c1's upper and work directories (they exist now: nothing to create).
    let mut s2 = overlay("c1", &[1]);
    s2.mount_point = format!("{ROOT}/c2/rootfs");
    s2.driver_options.clear();
    // Refused: two rootfs never share an upper (or work) directory.
    let e = m.add_storage(&s2).unwrap_err();
    assert_eq!(
        e.kind(),
        kata_volume::manager::ErrorKind::PermissionDenied,
        "{e}"
    );
    assert!(e.to_string().contains("writable directory"), "{e}");
    assert!(mounts_at(&sys, &format!("{ROOT}/c2/rootfs")).is_empty());
    let upper = PathBuf::from(format!("{VV}/containers/c1/fs"));
    assert!(sys.snapshot().dirs.contains(&upper));
}

/// F3: the lower's entry is checked, not what is mounted there now: a mount over a verified
/// layer's mount point (not ours) becomes a rootfs layer.
#[test]
fn review_overlay_lower_is_trusted_from_state_not_kernel() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    // Something else (the agent, another storage driver) mounts over the layer's mount point.
    sys.add_block_device(
        "/dev/vde9",
        DevNum {
            major: 254,
            minor: 99,
        },
        1 << 20,
    );
    sys.mount(
        Path::new("/dev/vde9"),
        Path::new(&layer_mp(1)),
        "ext4",
        kata_volume::system::MountFlags::default(),
        "",
    )
    .unwrap();
    let r = m.add_storage(&overlay("c1", &[1]));
    assert!(
        r.is_err(),
        "an overlay over a foreign mount at a verified layer's mount point was built"
    );
}

/// F5: the rootfs overlay went away (unmounted outside); a re-add mounts it again but keeps
/// the old device number in the entry: the removal then calls our own overlay foreign.
#[test]
fn review_overlay_remount_keeps_stale_device() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    let rootfs = format!("{ROOT}/c1/rootfs");
    sys.unmount(Path::new(&rootfs)).unwrap();
    let again = m.add_storage(&overlay("c1", &[1])).unwrap();
    eprintln!("re-add: already_present={}", again.already_present);
    assert_eq!(mounts_at(&sys, &rootfs).len(), 1);
    let r = m.remove_storage(&rootfs);
    eprintln!(
        "remove -> {:?}",
        r.as_ref().map_err(|e| (e.to_string(), e.kind()))
    );
    eprintln!(
        "state: {:?}",
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .map(|e| (&e.mount_point, e.phase))
            .collect::<Vec<_>>()
    );
    drop(m);
    let (m2, report) = VolumeManager::new(
        sys.clone(),
        store.clone(),
        ManagerOptions {
            policy: Policy::default(),
        },
    )
    .unwrap();
    eprintln!(
        "restart: {report:?}; rootfs still mounted: {}; state {:?}",
        mounts_at(&sys, &rootfs).len(),
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .map(|e| (&e.mount_point, e.phase))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "remove after restart -> {:?}",
        m2.remove_storage(&rootfs).map_err(|e| e.to_string())
    );
    assert!(r.is_ok());
}

/// F5b: multi-layer: a re-sent layer answers already_present from the state alone.
#[test]
fn review_multilayer_already_present_without_rootfs() {
    let sys = system();
    partitioned(&sys);
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&multi_layer(1, "c1")).unwrap();
    let rootfs = format!("{ROOT}/passthrough/c1/rootfs");
    sys.unmount(Path::new(&rootfs)).unwrap();
    let again = m.add_storage(&multi_layer(1, "c1")).unwrap();
    eprintln!(
        "already_present={} mounted={}",
        again.already_present,
        mounts_at(&sys, &rootfs).len()
    );
    assert_eq!(
        mounts_at(&sys, &rootfs).len(),
        1,
        "already_present with no rootfs mounted"
    );
}

/// F7: multi-layer's overlay request is built internally from the container name (the rootfs's
/// parent directory), which nothing checks for the overlay separators: a ':' splits one
/// checked lower into two the kernel mounts (the second relative to the daemon's cwd).
#[test]
fn review_multilayer_container_name_with_colon_splits_lowerdir() {
    let sys = system();
    partitioned(&sys);
    // What the kernel would resolve relative to the daemon's cwd.
    sys.add_dir("b/lower-1");
    sys.add_dir("b/upper/upper");
    sys.add_dir("b/upper/work");
    sys.add_dir(&format!("{ROOT}/multi-layer/a"));
    let (m, _) = manager(&sys, Policy::default());
    let mut s = multi_layer(1, "c1");
    s.mount_point = format!("{ROOT}/p/a:b/rootfs");
    let r = m.add_storage(&s);
    eprintln!(
        "add -> {:?}",
        r.as_ref().map(|_| ()).map_err(|e| format!("{e:?}"))
    );
    let o = mounts_at(&sys, &format!("{ROOT}/p/a:b/rootfs"));
    if let Some(o) = o.first() {
        eprintln!("overlay data: {}", o.super_options);
    }
    assert!(
        r.is_err(),
        "a rootfs whose lowerdir the kernel splits differently was mounted"
    );
}

/// F7b: a lower ending in '\' is accepted; the kernel reads "\:" as an escaped ':' and joins
/// it with the next lower into one path nobody checked.
#[test]
fn review_overlay_lower_with_backslash_is_accepted() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    let mut v = dmverity(2, "06");
    v.mount_point = format!("{ROOT}/evil\\");
    m.add_storage(&v).unwrap();
    let mut s = overlay("c1", &[1]);
    s.options.insert(0, format!("lowerdir={ROOT}/evil\\"));
    let r = m.add_storage(&s);
    let o = mounts_at(&sys, &format!("{ROOT}/c1/rootfs"));
    if let Some(o) = o.first() {
        eprintln!("overlay data: {}", o.super_options);
    }
    assert!(
        r.is_err(),
        "a lowerdir with an escape character was passed to the kernel"
    );
}

/// F9: a mount point inside a rootfs's upper directory (which the container writes: it can
/// turn any directory there into a symlink between resolve and mount) is accepted.
#[test]
fn review_mount_point_inside_a_containers_upper_is_accepted() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    // The container made /d in its rootfs: it is in the upper directory.
    sys.add_dir(&format!("{VV}/containers/c1/fs/d"));
    let mut v = dmverity(2, "06");
    v.mount_point = format!("{VV}/containers/c1/fs/d/mnt");
    let r = m.add_storage(&v);
    assert!(
        r.is_err(),
        "a mount point inside a container-writable upper directory was used"
    );
}

/// F10: a shared layer's mount point has no count of who asked for it: c2 asks for layer 1
/// (already_present), then c1 goes (layer, then rootfs, in the upstream order): the layer is
/// torn down under c2, whose rootfs then cannot be built.
#[test]
fn review_shared_layer_claimed_by_second_container_is_torn_down() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    // c2's CreateContainer starts: its layer is already there.
    assert!(m.add_storage(&dmverity(1, "05")).unwrap().already_present);
    // Meanwhile c1 is removed, volumes first.
    m.remove_storage(&layer_mp(1)).unwrap();
    m.remove_storage(&format!("{ROOT}/c1/rootfs")).unwrap();
    eprintln!("layer 1 mounted: {}", mounts_at(&sys, &layer_mp(1)).len());
    // c2's CreateContainer goes on.
    let r = m.add_storage(&overlay("c2", &[1]));
    eprintln!(
        "c2 rootfs -> {:?}",
        r.as_ref().map(|_| ()).map_err(|e| e.to_string())
    );
    assert!(r.is_ok(), "c2 lost its layer");
}

/// F11: a Released layer asked for again is claimed again: it outlives the rootfs that held
/// it, until its own remove.
#[test]
fn review_reactivated_layer_reports_already_present() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    m.remove_storage(&layer_mp(1)).unwrap(); // Released
    let again = m.add_storage(&dmverity(1, "05")).unwrap();
    assert_eq!(again.refcount, 1);
    m.remove_storage(&format!("{ROOT}/c1/rootfs")).unwrap();
    assert_eq!(
        mounts_at(&sys, &layer_mp(1)).len(),
        1,
        "the claimed layer went with the rootfs"
    );
    assert!(m.remove_storage(&layer_mp(1)).unwrap());
    assert!(mounts_at(&sys, &layer_mp(1)).is_empty());
}
