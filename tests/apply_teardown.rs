#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Taking things down, against the recording fake: overlays applied only over themselves and
//! torn down only when they are ours; teardown's tolerances after a crash or a race (a
//! vanished device, a shared parent, a loop device left alone).

use std::path::{Path, PathBuf};

use kata_volume::apply::{self, ApplyError, Known};
use kata_volume::system::{DevNum, FakeSystem, Op, System};

#[path = "common/apply.rs"]
mod support_apply;
use support_apply::*;

/// An overlay plan over directories that exist in `sys`: lower `l`, upper and work made by
/// the plan, the rootfs at `/run/c1/rootfs`.
fn overlay_plan(sys: &FakeSystem, lower: &str) -> kata_volume::plan::OverlayPlan {
    use kata_volume::policy::AuthorizedOverlay;
    use kata_volume::resolve::{ResolvedOverlay, Target};
    for d in ["/run/c1", "/run/c1/rootfs", "/run/l", "/run/m"] {
        sys.add_dir(d);
    }
    let p = PathBuf::from;
    let (upper, work) = (p("/run/c1/fs"), p("/run/c1/work"));
    let auth = AuthorizedOverlay {
        lowers: vec![p(lower)],
        lower_devices: vec![None],
        upper: Some((upper.clone(), work.clone())),
        create: vec![upper.clone(), work.clone()],
        mount_point: p("/run/c1/rootfs"),
        mount_root: p("/run"),
        mount: kata_volume::system::MountSpec {
            fs_type: "overlay".into(),
            flags: kata_volume::system::MountFlags::default(),
            data: format!("lowerdir={lower},upperdir=/run/c1/fs,workdir=/run/c1/work"),
        },
    };
    let made = |d: &PathBuf| Target {
        path: d.clone(),
        missing_dirs: vec![d.clone()],
    };
    let resolved = ResolvedOverlay {
        target: Target {
            path: p("/run/c1/rootfs"),
            missing_dirs: Vec::new(),
        },
        dirs: vec![made(&upper), made(&work)],
    };
    kata_volume::plan::plan_overlay(&auth, resolved).unwrap()
}

/// An overlay is applied once: the same overlay there already is `already_applied`;
/// another overlay (other lowers) or another filesystem there is refused, untouched.
#[test]
fn an_overlay_is_reapplied_only_over_itself() {
    let sys = fake();
    let plan = overlay_plan(&sys, "/run/l");
    let a = apply::apply_overlay(&sys, &plan).unwrap();
    assert!(!a.already_applied);
    assert_eq!(
        a.created_dirs,
        vec![PathBuf::from("/run/c1/fs"), PathBuf::from("/run/c1/work")]
    );
    let again = apply::apply_overlay(&sys, &plan).unwrap();
    assert!(again.already_applied);
    assert_eq!(again.mounted_dev, a.mounted_dev);
    let before = sys.snapshot();
    let other = overlay_plan(&sys, "/run/m");
    let e = apply::apply_overlay(&sys, &other).unwrap_err();
    assert!(matches!(e, ApplyError::MountPointBusy(_)), "{e}");
    assert_eq!(sys.snapshot(), before);
    // Another filesystem there (with the same options) is not an overlay of ours either.
    let sys = fake();
    let plan = overlay_plan(&sys, "/run/l");
    sys.mount(
        Path::new("/dev/vdc"),
        Path::new("/run/c1/rootfs"),
        "ext4",
        kata_volume::system::MountFlags::default(),
        "lowerdir=/run/l,upperdir=/run/c1/fs,workdir=/run/c1/work",
    )
    .unwrap();
    let e = apply::apply_overlay(&sys, &plan).unwrap_err();
    assert!(matches!(e, ApplyError::MountPointBusy(_)), "{e}");
}

/// Teardown unmounts only the overlay it made (its device); another overlay or another
/// filesystem on top is a foreign mount, left alone; trees already gone are fine, a tree
/// that cannot be removed is an error.
#[test]
fn an_overlay_teardown_touches_only_its_own_mount_and_trees() {
    let sys = fake();
    let plan = overlay_plan(&sys, "/run/l");
    let a = apply::apply_overlay(&sys, &plan).unwrap();
    let rootfs = Path::new("/run/c1/rootfs");
    let other_dev = a.mounted_dev.map(|d| DevNum {
        major: d.major,
        minor: d.minor + 1,
    });
    let before = sys.snapshot();
    let e =
        apply::teardown_overlay(&sys, rootfs, other_dev, &plan.trees, &a.created_dirs).unwrap_err();
    assert!(matches!(e, ApplyError::ForeignMount { .. }), "{e}");
    assert_eq!(sys.snapshot(), before);
    // A tree that will not go is an error; one already gone is not.
    sys.fail_nth(Op::RemoveTree, 0, nix::libc::EBUSY);
    let e = apply::teardown_overlay(&sys, rootfs, a.mounted_dev, &plan.trees, &[]).unwrap_err();
    assert!(e.to_string().contains("remove"), "{e}");
    let gone = [PathBuf::from("/run/c1/never-made")];
    assert!(!apply::teardown_overlay(&sys, rootfs, a.mounted_dev, &gone, &[]).unwrap());
    // Another filesystem on top, with no device recorded: foreign too.
    let sys = fake();
    let plan = overlay_plan(&sys, "/run/l");
    sys.mount(
        Path::new("/dev/vdc"),
        rootfs,
        "ext4",
        kata_volume::system::MountFlags::default(),
        "",
    )
    .unwrap();
    let e = apply::teardown_overlay(&sys, rootfs, None, &plan.trees, &[]).unwrap_err();
    assert!(matches!(e, ApplyError::ForeignMount { .. }), "{e}");
}

/// A teardown after a crash that left only the loop device (unmounted, dm device removed):
/// the known loop device is found by its node and detached, nothing else touched.
#[test]
fn a_known_loop_device_left_alone_is_detached() {
    let sys = fake();
    let before = sys.snapshot();
    let a = apply_json(&sys, &verity_json("/images/layer.img"), MP).unwrap();
    let lo = a.loop_device.clone().unwrap();
    sys.unmount(Path::new(MP)).unwrap();
    sys.dm_remove(a.dm_name.as_ref().unwrap(), false).unwrap();
    let _ = sys.remove_file(Path::new(&a.dm_name.as_ref().unwrap().node_path()));
    assert_eq!(sys.snapshot().loops.len(), 1);
    let known = Known {
        loop_device: Some(lo.clone()),
        ..Known::default()
    };
    let t = apply::teardown(&sys, Path::new(MP), &known, &a.created_dirs).unwrap();
    assert!(!t.unmounted);
    assert_eq!(t.detached_loop, Some(lo));
    assert_eq!(sys.snapshot(), before);
}

/// Teardown's tolerances: a dm device that vanished between the look and the removal
/// (`ENXIO`) is gone, not an error; a directory we created that now holds another volume's
/// mount point stays (the last volume under it removes it).
#[test]
fn teardown_takes_a_vanished_device_and_a_shared_parent_in_its_stride() {
    let sys = fake();
    let before = sys.snapshot();
    let a = apply_json(&sys, &verity_json("/dev/vdb"), "/run/x/a").unwrap();
    let b = apply_json(&sys, &verity_json("/images/layer.img"), "/run/x/b").unwrap();
    assert_eq!(
        a.created_dirs,
        vec![PathBuf::from("/run/x"), PathBuf::from("/run/x/a")]
    );
    sys.fail_nth(Op::DmRemove, 0, nix::libc::ENXIO);
    let t = apply::teardown(
        &sys,
        Path::new("/run/x/a"),
        &Known::default(),
        &a.created_dirs,
    )
    .unwrap();
    assert!(t.unmounted);
    assert!(!t.deferred);
    assert!(sys.snapshot().dirs.contains(&PathBuf::from("/run/x")));
    assert!(!sys.snapshot().dirs.contains(&PathBuf::from("/run/x/a")));
    // The vanished-looking device is still there (the fake only failed the call): its own
    // removal, and the second volume's teardown with the parent, leave the start state.
    sys.dm_remove(a.dm_name.as_ref().unwrap(), false).unwrap();
    let _ = sys.remove_file(Path::new(&a.dm_name.as_ref().unwrap().node_path()));
    let mut dirs = vec![PathBuf::from("/run/x")];
    dirs.extend(
        b.created_dirs
            .iter()
            .filter(|d| d.as_path() != Path::new("/run/x"))
            .cloned(),
    );
    apply::teardown(&sys, Path::new("/run/x/b"), &Known::default(), &dirs).unwrap();
    assert_eq!(sys.snapshot(), before);
}
