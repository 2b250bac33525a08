#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unused_imports, dead_code)]
//! A container's rootfs, over the fake system: an overlay asked for where something else is
//! mounted is a conflict, whatever the two are; Kata main's multi-layer shape names the
//! layers' directory after a container id it checks, records its layers as held by the
//! rootfs alone, and puts the old rootfs back exactly when a new layer cannot be added.
//! Each test fails on a mutant cargo-mutants found surviving (docs/mutants.md).

use std::path::Path;

use kata_volume::manager::{ErrorKind, Phase, StateStore, Storage, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::system::{FakeSystem, Op, System};

#[path = "common/kata.rs"]
mod kata;
use kata::*;

fn rootfs(cid: &str) -> String {
    format!("{ROOT}/{cid}/rootfs")
}

/// The mount options of what is mounted at `target` (one mount expected).
fn mounted_options(sys: &FakeSystem, target: &str) -> String {
    let m = mounts_at(sys, target);
    assert_eq!(m.len(), 1, "{target}: {m:?}");
    m[0].super_options.clone()
}

#[test]
fn an_overlay_where_a_layer_is_mounted_is_a_conflict() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    // A layer mounted where the container's rootfs is to go.
    let mut layer = dmverity(2, "06");
    layer.mount_point = rootfs("c1");
    m.add_storage(&layer).unwrap();
    let (before, saved) = (sys.snapshot(), store.load().unwrap());
    let e = m.add_storage(&overlay("c1", &[1])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // Named from the manager's own record: what is there, not only that something is.
    let dm = m
        .list()
        .into_iter()
        .find(|v| v.mount_point == Path::new(&rootfs("c1")));
    let dm = dm.unwrap().dm_name.unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "Mount point \"{}\" already holds a different volume ({dm})",
            rootfs("c1")
        )
    );
    assert_eq!(sys.snapshot(), before);
    assert_eq!(store.load().unwrap(), saved);
}

#[test]
fn an_overlay_over_other_layers_where_one_is_mounted_is_a_conflict() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    for (i, slot) in [(1, "05"), (2, "06")] {
        m.add_storage(&dmverity(i, slot)).unwrap();
    }
    m.add_storage(&overlay("c1", &[1])).unwrap();
    let (before, saved) = (sys.snapshot(), store.load().unwrap());
    let e = m.add_storage(&overlay("c1", &[2, 1])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string()
            .ends_with(r#"already holds a different volume ("overlay")"#),
        "{e}"
    );
    assert_eq!(sys.snapshot(), before);
    assert_eq!(store.load().unwrap(), saved);
    // The same overlay again is one more claim on it.
    assert!(m.add_storage(&overlay("c1", &[1])).unwrap().already_present);
}

/// The container id names a directory and goes into overlay options: letters, digits, `_`,
/// `.` and `-`, a letter or digit first, at most 64 bytes.
#[test]
fn multi_layer_container_ids_are_checked() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    let long = "a".repeat(65);
    for cid in [long.as_str(), "-c1", ".c1", "c:1", "c 1", "c1\u{e9}"] {
        let e = m.add_storage(&multi_layer(1, cid)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{cid:?}: {e}");
        assert!(e.to_string().contains("container id"), "{cid:?}: {e}");
        assert_eq!(sys.snapshot(), before, "{cid:?}");
        assert!(store.load().unwrap().entries.is_empty(), "{cid:?}");
    }
    let longest = "a".repeat(64);
    for cid in [longest.as_str(), "C1_x.y-z", "9"] {
        let rootfs = multi_layer(1, cid).mount_point;
        m.add_storage(&multi_layer(1, cid)).unwrap();
        assert!(m.remove_storage(&rootfs).unwrap(), "{cid:?}");
    }
    assert_eq!(sys.snapshot(), before);
}

/// A rootfs's layers are held by the rootfs alone: recorded released, with no claim of
/// their own.
#[test]
fn multi_layer_layers_are_recorded_released_without_claims() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    for n in [1, 2] {
        m.add_storage(&multi_layer(n, "c1")).unwrap();
    }
    let layers: Vec<_> = store
        .load()
        .unwrap()
        .entries
        .into_iter()
        .filter(|e| e.mount_point.to_string_lossy().contains("/lower-"))
        .map(|e| (e.phase, e.holders))
        .collect();
    assert_eq!(layers, [(Phase::Released, 0), (Phase::Released, 0)]);
}

/// Adding a layer rebuilds the overlay over one more lower; when the new overlay cannot be
/// mounted, the old one is mounted again as it was (over the old layers), the new layer
/// goes, and the state is what it was.
#[test]
fn a_failed_multi_layer_rebuild_puts_the_old_rootfs_back() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let first = multi_layer(1, "c1");
    m.add_storage(&first).unwrap();
    let options = mounted_options(&sys, &first.mount_point);
    let (before, saved) = (sys.snapshot(), store.load().unwrap());
    // Mount #0: layer 2; #1: the new overlay (fails); #2: the old overlay again.
    sys.fail_nth(Op::Mount, 1, nix::libc::EIO);
    m.add_storage(&multi_layer(2, "c1")).unwrap_err();
    sys.clear_failures();
    assert_eq!(mounted_options(&sys, &first.mount_point), options);
    assert_eq!(sys.snapshot(), before);
    // The state is as it was, but for the device of the overlay mounted again.
    let mut now = store.load().unwrap();
    let dev = mounts_at(&sys, &first.mount_point)[0].dev;
    for e in &mut now.entries {
        if e.mount_point == Path::new(&first.mount_point) {
            assert_eq!(
                e.mounted_device,
                Some(dev),
                "the record names another mount"
            );
            e.mounted_device = saved
                .entries
                .iter()
                .find(|s| s.key == e.key)
                .unwrap()
                .mounted_device;
        }
    }
    assert_eq!(now, saved);
}

/// A rootfs whose layer cannot be torn down stays recorded as being removed (not listed,
/// not mistaken for a mounted rootfs), with only the layers still to release; a retry ends
/// the job.
#[test]
fn a_rootfs_whose_layer_release_fails_is_kept_removing_with_what_is_left() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    for (i, slot) in [(1, "05"), (2, "06")] {
        m.add_storage(&dmverity(i, slot)).unwrap();
    }
    m.add_storage(&overlay("c1", &[1, 2])).unwrap();
    // The layers' removal is asked for: the rootfs holds them (released).
    for i in [1, 2] {
        assert!(m.remove_storage(&layer_mp(i)).unwrap());
    }
    // The first layer goes, the second's device does not.
    sys.fail_nth(Op::DmRemove, 1, nix::libc::EIO);
    m.remove_storage(&rootfs("c1")).unwrap_err();
    sys.clear_failures();
    assert!(m.list().is_empty(), "{:?}", m.list());
    let entries = store.load().unwrap().entries;
    let o = entries
        .iter()
        .find(|e| e.mount_point == Path::new(&rootfs("c1")))
        .unwrap();
    assert_eq!(o.phase, Phase::Removing);
    assert_eq!(o.lowers, [Path::new(&layer_mp(2))]);
    // Its upper and work are gone: it no longer claims them, another rootfs may use them.
    assert!(o.writable.is_empty() && o.trees.is_empty(), "{o:?}");
    m.add_storage(&dmverity(3, "07")).unwrap();
    let mut c2 = overlay("c1", &[3]);
    c2.mount_point = rootfs("c2");
    m.add_storage(&c2).unwrap();
    assert!(m.remove_storage(&rootfs("c2")).unwrap());
    assert!(m.remove_storage(&layer_mp(3)).unwrap());
    assert!(m.remove_storage(&rootfs("c1")).unwrap());
    assert_eq!(sys.snapshot(), before);
    assert!(store.load().unwrap().entries.is_empty());
}

/// A directory the overlay's plan expected to make but someone else made first is not
/// recorded as the rootfs's, and stays when the rootfs goes.
#[test]
fn an_overlay_does_not_record_a_directory_someone_else_made_meanwhile() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    let containers = format!("{VV}/containers");
    // The first directory the overlay makes is `containers`; each creation waits.
    sys.delay(Op::MakeDir, std::time::Duration::from_millis(300));
    std::thread::scope(|scope| {
        let add = scope.spawn(|| m.add_storage(&overlay("c1", &[1])));
        // Well after the plan, well before the creation.
        std::thread::sleep(std::time::Duration::from_millis(100));
        sys.add_dir(&containers);
        add.join().unwrap().unwrap();
    });
    sys.delay(Op::MakeDir, std::time::Duration::ZERO);
    let entries = store.load().unwrap().entries;
    let o = entries
        .iter()
        .find(|e| e.mount_point == Path::new(&rootfs("c1")))
        .unwrap();
    assert!(
        !o.created_dirs
            .contains(&Path::new(&containers).to_path_buf()),
        "{:?}",
        o.created_dirs
    );
    assert!(m.remove_storage(&rootfs("c1")).unwrap());
    assert!(
        sys.lstat(Path::new(&containers)).is_ok(),
        "another's directory removed"
    );
}

/// While a rootfs is being built over a layer, the layer's removal waits (the build holds the
/// layer's lock), then finds it in use: released, still mounted under the rootfs.
#[test]
fn a_layer_is_not_removed_while_a_rootfs_is_being_built_over_it() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    // Every look at the mount table is slow: the build is still planning when the removal
    // is asked for.
    sys.delay(Op::Mounts, std::time::Duration::from_millis(200));
    let (added, removed) = std::thread::scope(|scope| {
        let add = scope.spawn(|| m.add_storage(&overlay("c1", &[1])));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let removed = m.remove_storage(&layer_mp(1));
        (add.join().unwrap(), removed)
    });
    sys.delay(Op::Mounts, std::time::Duration::ZERO);
    added.unwrap();
    assert!(removed.unwrap());
    assert_eq!(
        mounts_at(&sys, &layer_mp(1)).len(),
        1,
        "the layer was taken down"
    );
    assert_eq!(mounts_at(&sys, &rootfs("c1")).len(), 1);
    let entries = store.load().unwrap().entries;
    let layer = entries
        .iter()
        .find(|e| e.mount_point == Path::new(&layer_mp(1)));
    // Held by the rootfs alone: no claim of its own left.
    assert_eq!(
        layer.map(|e| (e.phase, e.holders)),
        Some((Phase::Released, 0)),
        "{entries:?}"
    );
}

/// Only a volume that is mounted (active, or released but held by a rootfs) is a layer: one
/// half torn down (its removal failed), or another container's rootfs, is not a volume
/// mounted here, and a rootfs over it is refused saying so.
#[test]
fn a_half_removed_layer_or_another_rootfs_is_not_a_layer() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    for (i, slot) in [(1, "05"), (2, "06")] {
        m.add_storage(&dmverity(i, slot)).unwrap();
    }
    m.add_storage(&overlay("c2", &[2])).unwrap();
    // Layer 1's removal unmounts it, then fails to remove its device.
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EIO);
    m.remove_storage(&layer_mp(1)).unwrap_err();
    sys.clear_failures();
    let before = sys.snapshot();
    for lower in [layer_mp(1), rootfs("c2")] {
        // c1 over `lower` alone.
        let mut s = overlay("c1", &[]);
        s.options.insert(0, format!("lowerdir={lower}"));
        let e = m.add_storage(&s).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{lower}: {e}");
        let message = e.to_string();
        assert!(
            message.starts_with("Lower layer \"")
                && message.contains("\" is not a volume mounted here: a rootfs is built only"),
            "{lower}: {message}"
        );
        assert_eq!(sys.snapshot(), before, "{lower}");
    }
}
