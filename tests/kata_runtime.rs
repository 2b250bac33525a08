#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Storage shapes a Kata runtime sends (issue 12), through the manager over the fake
//! system: the CCv0 `dmverity` driver with disks named by guest address, the `overlayfs`
//! rootfs over verified layers (two containers sharing one), and every refusal leaving
//! nothing behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kata_volume::manager::MemStore;
use kata_volume::manager::{
    ErrorKind, ManagerOptions, Phase, StateStore, Storage, StorageKind, VolumeManager,
};
use kata_volume::policy::Policy;
use kata_volume::request::CREATE_DIRECTORY;
use kata_volume::system::{FakeSystem, MountFlags, Op, System};

#[path = "common/kata.rs"]
mod kata;
use kata::*;

#[test]
fn a_dmverity_storage_mounts_the_disk_found_at_its_pci_path() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    let v = m.add_storage(&dmverity(1, "06")).unwrap();
    assert_eq!(v.kind.to_string(), "layer_raw_block");
    assert_eq!(v.source, "/dev/vdc");
    let mounted = mounts_at(&sys, &layer_mp(1));
    assert_eq!(mounted.len(), 1);
    assert_eq!(mounted[0].fs_type, "erofs");
    assert_eq!(mounted[0].options, "ro,nodev,nosuid");
    // The same layer as a virtual volume on the same disk is the same device (one key).
    let name = v.dm_name.unwrap();
    assert!(sys.snapshot().dm.contains(name.as_str()));
    assert!(m.remove_storage(&layer_mp(1)).unwrap());
    assert!(sys.snapshot().dm.is_empty());
}

#[test]
fn a_disk_that_never_comes_times_out_naming_its_address() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    let e = m.add_storage(&dmverity(1, "11")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(
        e.to_string()
            .starts_with("Disk 11 (virtio_pci) did not appear within 10 s"),
        "{e}"
    );
    assert_eq!(sys.snapshot(), before);
    assert!(store.load().unwrap().entries.is_empty());
}

#[test]
fn the_source_allowlist_applies_to_the_disk_found() {
    let sys = system();
    let policy = Policy {
        allowed_sources: vec!["/dev/sd*".into()],
        ..Policy::default()
    };
    let (m, _) = manager(&sys, policy);
    let before = sys.snapshot();
    let e = m.add_storage(&dmverity(1, "05")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("\"/dev/vdb\""), "{e}");
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn malformed_dmverity_storages_name_the_field() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    let cases: Vec<(&str, Storage, &str)> = vec![
        (
            "no verity_info",
            {
                let mut s = dmverity(1, "05");
                s.driver_options.remove(0);
                s
            },
            "Missing driver_options verity_info= for driver dmverity",
        ),
        (
            "verity_info twice",
            {
                let mut s = dmverity(1, "05");
                s.driver_options
                    .push(format!("verity_info={}", verity_info(2)));
                s
            },
            "Duplicate verity_info=",
        ),
        (
            "bad blocksize",
            {
                let mut s = dmverity(1, "05");
                s.driver_options[0] =
                    s.driver_options[0].replace("\"blocksize\":512", "\"blocksize\":3000");
                s
            },
            "dm_verity.blocksize 3000",
        ),
        (
            "unknown driver option",
            {
                let mut s = dmverity(1, "05");
                s.driver_options.push("cache=none".into());
                s
            },
            "Unknown driver_options item \"cache=none\" for driver dmverity",
        ),
        ("bad PCI path", dmverity(1, "5g"), "source_type virtio_pci"),
        (
            "unknown source_type",
            {
                let mut s = dmverity(1, "05");
                s.driver_options[1] = "source_type=usb".into();
                s
            },
            "Unknown source_type \"usb\"",
        ),
        (
            "loosening option",
            {
                let mut s = dmverity(1, "05");
                s.options.push("rw".into());
                s
            },
            "Invalid mount option \"rw\"",
        ),
    ];
    for (name, s, says) in cases {
        let e = m.add_storage(&s).unwrap_err();
        assert!(e.to_string().contains(says), "{name}: {e}");
        assert_ne!(e.kind(), ErrorKind::Internal, "{name}: {e}");
        assert_eq!(sys.snapshot(), before, "{name}");
    }
}

#[test]
fn a_rootfs_over_three_verified_layers_top_first() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    for (i, slot) in [(1, "05"), (2, "06"), (3, "07")] {
        m.add_storage(&dmverity(i, slot)).unwrap();
    }
    let r = m.add_storage(&overlay("c1", &[3, 2, 1])).unwrap();
    assert_eq!(r.kind, StorageKind::Overlay);
    let rootfs = format!("{ROOT}/c1/rootfs");
    let o = mounts_at(&sys, &rootfs);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].fs_type, "overlay");
    assert_eq!(
        o[0].super_options,
        format!(
            "lowerdir={}:{}:{},upperdir={VV}/containers/c1/fs,workdir={VV}/containers/c1/work",
            layer_mp(3),
            layer_mp(2),
            layer_mp(1)
        )
    );
    let snap = sys.snapshot();
    assert!(
        snap.dirs
            .contains(&PathBuf::from(format!("{VV}/containers/c1/fs")))
    );
    // Removal in the upstream order: the volumes first (released: the rootfs still uses
    // them), then the overlay, which takes them along.
    for i in [1, 2, 3] {
        assert!(m.remove_storage(&layer_mp(i)).unwrap());
        assert_eq!(
            mounts_at(&sys, &layer_mp(i)).len(),
            1,
            "layer {i} went from under the rootfs"
        );
    }
    assert!(m.list().iter().all(|v| v.kind == StorageKind::Overlay));
    assert!(
        store
            .load()
            .unwrap()
            .entries
            .iter()
            .any(|e| e.phase == Phase::Released)
    );
    assert!(m.remove_storage(&rootfs).unwrap());
    assert_eq!(sys.snapshot(), before);
    assert!(store.load().unwrap().entries.is_empty());
}

#[test]
fn two_containers_share_a_layer_and_removal_keeps_it_for_the_other() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    // c1: layers 1 (shared) and 2; c2: layers 1 (shared) and 3.
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&dmverity(2, "06")).unwrap();
    m.add_storage(&overlay("c1", &[2, 1])).unwrap();
    let again = m.add_storage(&dmverity(1, "05")).unwrap();
    assert!(again.already_present);
    m.add_storage(&dmverity(3, "07")).unwrap();
    m.add_storage(&overlay("c2", &[3, 1])).unwrap();
    // c1 goes (overlay first this time), then its layers.
    m.remove_storage(&format!("{ROOT}/c1/rootfs")).unwrap();
    m.remove_storage(&layer_mp(2)).unwrap();
    m.remove_storage(&layer_mp(1)).unwrap();
    assert!(mounts_at(&sys, &layer_mp(2)).is_empty());
    assert_eq!(
        mounts_at(&sys, &layer_mp(1)).len(),
        1,
        "the shared layer went from under c2"
    );
    assert_eq!(mounts_at(&sys, &format!("{ROOT}/c2/rootfs")).len(), 1);
    // c2 goes: everything is gone.
    m.remove_storage(&layer_mp(1)).unwrap();
    m.remove_storage(&layer_mp(3)).unwrap();
    m.remove_storage(&format!("{ROOT}/c2/rootfs")).unwrap();
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn a_rootfs_under_a_foreign_mount_is_kept_listed_and_removed_once_it_goes() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    let rootfs = format!("{ROOT}/c1/rootfs");
    sys.mount(
        Path::new("/dev/vde"),
        Path::new(&rootfs),
        "tmpfs",
        MountFlags::default(),
        "",
    )
    .unwrap();
    let e = m.remove_storage(&rootfs).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(mounts_at(&sys, &rootfs).len(), 2, "a mount was taken down");
    assert!(
        m.list().iter().any(|v| v.mount_point == Path::new(&rootfs)),
        "the untouched rootfs is not listed"
    );
    sys.unmount(Path::new(&rootfs)).unwrap();
    assert!(m.remove_storage(&rootfs).unwrap());
    assert!(m.remove_storage(&layer_mp(1)).unwrap());
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn a_rootfs_refuses_layers_that_are_not_verified_volumes_of_ours() {
    let sys = system();
    sys.add_dir(&format!("{ROOT}/elsewhere"));
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    let before = sys.snapshot();
    let mut s = overlay("c1", &[1]);
    s.options.insert(0, format!("lowerdir={ROOT}/elsewhere"));
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("elsewhere"), "{e}");
    assert_eq!(sys.snapshot(), before);
    // Shapes refused: outside the root, a directory to create that is not upper or work,
    // a path an overlay option would split, no upper with one lower.
    let bad: Vec<(Storage, &str)> = vec![
        (
            {
                let mut s = overlay("c1", &[1]);
                s.options.push("upperdir=/tmp/u".into());
                s
            },
            "Duplicate upperdir=",
        ),
        (
            {
                let mut s = overlay("c1", &[1]);
                s.driver_options
                    .push(format!("{CREATE_DIRECTORY}={ROOT}/x"));
                s
            },
            "is neither the upper nor the work directory",
        ),
        (
            {
                let mut s = overlay("c1", &[1]);
                s.options[0] = format!("lowerdir={},x", layer_mp(1));
                s
            },
            "contains ':', ',' or '\\'",
        ),
        (
            {
                let mut s = overlay("c1", &[1]);
                s.options.retain(|o| o.starts_with("lowerdir"));
                s.driver_options.clear();
                s
            },
            "Missing options upperdir= and workdir=",
        ),
        (
            {
                let mut s = overlay("c1", &[1]);
                s.options.push("index=on".into());
                s
            },
            "Unknown options item \"index=on\" for driver overlayfs",
        ),
    ];
    for (s, says) in bad {
        let e = m.add_storage(&s).unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert_eq!(sys.snapshot(), before, "{says}");
    }
    let mut s = overlay("c1", &[1]);
    s.options = s
        .options
        .iter()
        .map(|o| o.replace(&format!("{VV}/containers"), "/tmp"))
        .collect();
    s.driver_options.clear();
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(store.load().unwrap().entries.len(), 1);
}

#[test]
fn a_failing_overlay_mount_leaves_its_directories_and_layers_as_they_were() {
    let sys = system();
    let (m, store) = manager(&sys, Policy::default());
    m.add_storage(&dmverity(1, "05")).unwrap();
    let before = sys.snapshot();
    let mounts = sys.count(Op::Mount);
    sys.fail_nth(Op::Mount, 0, nix::libc::EIO);
    m.add_storage(&overlay("c1", &[1])).unwrap_err();
    assert_eq!(sys.count(Op::Mount), mounts + 1);
    assert_eq!(sys.snapshot(), before);
    assert_eq!(store.load().unwrap().entries.len(), 1);
    // And it works once the mount does.
    m.add_storage(&overlay("c1", &[1])).unwrap();
}

#[test]
fn a_restart_keeps_rootfs_and_released_layers_and_tears_them_down_together() {
    let sys = system();
    let before = sys.snapshot();
    let store = Arc::new(MemStore::default());
    let opts = || ManagerOptions {
        policy: Policy::default(),
    };
    let m = VolumeManager::new(sys.clone(), store.clone(), opts())
        .unwrap()
        .0;
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    m.remove_storage(&layer_mp(1)).unwrap();
    drop(m);
    let (m, report) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    assert_eq!(report.adopted, 2, "{report:?}");
    m.remove_storage(&format!("{ROOT}/c1/rootfs")).unwrap();
    assert_eq!(sys.snapshot(), before);
}

/// After a crash, another party's overlay took the place of ours at a rootfs (ours was
/// unmounted meanwhile): a restart must not adopt it as ours — the entry recorded the
/// overlay's own device — nor tear it down; the layer is adopted on its own.
#[test]
fn a_restart_does_not_adopt_another_overlay_at_a_rootfs_of_ours() {
    let sys = system();
    let store = Arc::new(MemStore::default());
    let opts = || ManagerOptions {
        policy: Policy::default(),
    };
    let m = VolumeManager::new(sys.clone(), store.clone(), opts())
        .unwrap()
        .0;
    m.add_storage(&dmverity(1, "05")).unwrap();
    m.add_storage(&overlay("c1", &[1])).unwrap();
    drop(m);
    let rootfs = format!("{ROOT}/c1/rootfs");
    sys.unmount(Path::new(&rootfs)).unwrap();
    let theirs = format!("lowerdir={}", layer_mp(1));
    sys.mount(
        Path::new("overlay"),
        Path::new(&rootfs),
        "overlay",
        MountFlags::default(),
        &theirs,
    )
    .unwrap();
    let (m, report) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    assert_eq!(report.adopted, 1, "{report:?}");
    let listed: Vec<_> = m.list().into_iter().map(|v| v.mount_point).collect();
    assert_eq!(listed, vec![PathBuf::from(layer_mp(1))]);
    let mounts = sys.mounts().unwrap();
    let at_rootfs: Vec<_> = mounts
        .iter()
        .filter(|x| x.target == Path::new(&rootfs))
        .collect();
    assert_eq!(at_rootfs.len(), 1, "{mounts:?}");
    assert_eq!(at_rootfs[0].fs_type, "overlay");
    assert_eq!(at_rootfs[0].options, format!("rw,{theirs}"));
}

#[test]
fn an_image_the_guest_pulls_is_the_agents_business() {
    let sys = system();
    let (m, _) = manager(&sys, Policy::default());
    let s = Storage {
        driver: "image_guest_pull".into(),
        source: "docker.io/library/busybox:latest".into(),
        mount_point: format!("{ROOT}/c1/rootfs"),
        ..Storage::default()
    };
    let calls = sys.calls().len();
    let e = m.add_storage(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotHandledHere);
    assert!(matches!(
        e,
        kata_volume::manager::ManagerError::Request(kata_volume::request::RequestError::GuestPull)
    ));
    assert_eq!(sys.calls().len(), calls, "the system was touched");
}

#[test]
fn kata_mains_multi_layer_storages_build_one_rootfs_layer_by_layer() {
    let sys = system();
    partitioned(&sys);
    let (m, store) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    let rootfs = format!("{ROOT}/passthrough/c1/rootfs");
    // The layers' directory: the container's name and a digest of the rootfs path.
    let dir = |sys: &FakeSystem| {
        sys.mounts()
            .unwrap()
            .iter()
            .map(|m| m.target.to_string_lossy().into_owned())
            .find_map(|t| {
                let rest = t.strip_prefix(&format!("{ROOT}/multi-layer/c1-"))?;
                Some(format!("{ROOT}/multi-layer/c1-{}", rest.split('/').next()?))
            })
            .unwrap()
    };
    for n in [2, 1, 3] {
        let r = m.add_storage(&multi_layer(n, "c1")).unwrap();
        assert_eq!(r.kind, StorageKind::Overlay);
        assert_eq!(
            mounts_at(&sys, &format!("{}/lower-{n}", dir(&sys))).len(),
            1,
            "layer {n}"
        );
    }
    let dir = dir(&sys);
    let lower = |n: u8| format!("{dir}/lower-{n}");
    // One overlay, the lowest partition number on top, a guest directory as its upper.
    let o = mounts_at(&sys, &rootfs);
    assert_eq!(o.len(), 1, "{o:?}");
    let upper = format!("{dir}/upper");
    assert_eq!(
        o[0].super_options,
        format!(
            "lowerdir={}:{}:{},upperdir={upper}/upper,workdir={upper}/work",
            lower(1),
            lower(2),
            lower(3)
        )
    );
    // Each layer is its partition, verified.
    let tables: Vec<String> = (1..=3)
        .map(|n| {
            let mp = lower(n);
            let e = store
                .load()
                .unwrap()
                .entries
                .into_iter()
                .find(|e| e.mount_point == Path::new(&mp))
                .unwrap();
            assert_eq!(e.source, format!("/dev/vdb{n}"));
            e.dm_name.unwrap().to_string()
        })
        .collect();
    assert_eq!(tables.len(), 3);
    // The same storage again: nothing changes.
    let mounts = sys.count(Op::Mount);
    assert!(
        m.add_storage(&multi_layer(1, "c1"))
            .unwrap()
            .already_present
    );
    assert_eq!(sys.count(Op::Mount), mounts);
    // Removing the rootfs takes its layers along.
    assert!(m.remove_storage(&rootfs).unwrap());
    assert_eq!(sys.snapshot(), before);
    assert!(store.load().unwrap().entries.is_empty());
}

#[test]
fn malformed_multi_layer_storages_are_refused_naming_the_option() {
    let sys = system();
    partitioned(&sys);
    let (m, _) = manager(&sys, Policy::default());
    let before = sys.snapshot();
    let with = |f: &dyn Fn(&mut Storage)| {
        let mut s = multi_layer(1, "c1");
        f(&mut s);
        s
    };
    let cases: Vec<(Storage, &str)> = vec![
        (
            with(&|s| {
                s.options[1] = "X-kata.overlay-upper".into();
                s.fstype = "ext4".into();
            }),
            "a writable upper disk (X-kata.overlay-upper) is not mounted here",
        ),
        (
            with(&|s| s.options.push("X-kata.surprise=1".into())),
            "X-kata.surprise=1",
        ),
        (
            with(&|s| s.options.retain(|o| !o.contains("roothash"))),
            "X-kata.dmverity.roothash=",
        ),
        (
            with(&|s| s.options[7] = "X-kata.dmverity.hashoffset=1000".into()),
            "must be a positive multiple of the block size",
        ),
        (
            with(&|s| s.options.retain(|o| !o.contains("partition-number"))),
            "X-kata.partition-number=",
        ),
        (
            with(&|s| s.options.push(super_option())),
            "does not take an io.katacontainers.volume option",
        ),
    ];
    for (s, says) in cases {
        let e = m.add_storage(&s).unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
        assert_eq!(sys.snapshot(), before, "{says}");
    }
}

fn super_option() -> String {
    "io.katacontainers.volume=e30=".into()
}
