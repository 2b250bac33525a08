#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A request's way from `Storage` to a mount without the manager's state — `prepare` (parse,
//! authorize, resolve, plan) then the apply transaction — and teardown, against the
//! recording fake: the happy paths, and every single system step failing in turn leaving
//! nothing behind.

use std::path::{Path, PathBuf};

use kata_volume::apply::{self, ApplyError, Known, Step};
use kata_volume::manager::ManagerError;
use kata_volume::policy::{Policy, PolicyError};
use kata_volume::system::{DevNum, Op, System};
use kata_volume::volume::Volume;

#[path = "common/apply.rs"]
mod support_apply;
use support_apply::*;

#[test]
fn verity_volume_applies_and_tears_down() {
    let sys = fake();
    let before = sys.snapshot();
    let a = apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    let name = a.dm_name.clone().unwrap();
    assert!(name.as_str().starts_with("kata-volume-8d5d1a5e2c3f7a4b-"));
    assert_eq!(a.status.as_deref(), Some("V"));
    // The table as the kernel reports it: devices by number.
    assert_eq!(
        a.table.unwrap().to_string(),
        format!("0 16384 verity 1 254:16 254:16 512 4096 16384 2048 sha256 {ROOT} -")
    );
    let snap = sys.snapshot();
    assert_eq!(snap.dm.len(), 1);
    assert_eq!(snap.mounts, vec![PathBuf::from(MP)]);
    assert!(snap.nodes.contains(&PathBuf::from(name.node_path())));
    let mounts = sys.mounts().unwrap();
    assert_eq!(mounts[0].options, "ro,nodev,nosuid");
    assert_eq!(mounts[0].fs_type, "erofs");

    let t = apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    assert!(t.unmounted);
    assert_eq!(t.removed_device, Some(name));
    assert_eq!(sys.snapshot(), before);
}

/// A hash tree after a gap: the kernel gets `offset` in hash blocks as the hash start, and
/// the device must reach the tree's end (counted from `offset`, not from the data's end).
#[test]
fn a_tree_after_a_gap_starts_at_its_offset() {
    let json =
        |source: &str| verity_json(source).replace(r#""offset":8388608"#, r#""offset":12582912"#);
    let sys = fake();
    let need = 12_582_912 + 129 * 4096;
    for (path, minor, size) in [("/dev/vdd", 48, need), ("/dev/vde", 64, need - 512)] {
        sys.add_block_device(path, DevNum { major: 254, minor }, size);
    }
    let a = apply_json(&sys, &json("/dev/vdd"), MP).unwrap();
    assert_eq!(
        a.table.unwrap().to_string(),
        format!("0 16384 verity 1 254:48 254:48 512 4096 16384 3072 sha256 {ROOT} -")
    );
    let before = sys.snapshot();
    let e = apply_json(&sys, &json("/dev/vde"), "/run/b").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Device /dev/vde is {} bytes, too small: dm_verity needs {need} bytes (data and hash tree)",
            need - 512
        )
    );
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn applying_twice_is_idempotent() {
    let sys = fake();
    apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    let creates = sys.count(Op::DmCreate);
    let mounts = sys.count(Op::Mount);
    let again = apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    assert!(again.already_applied);
    assert_eq!(sys.count(Op::DmCreate), creates);
    assert_eq!(sys.count(Op::Mount), mounts);
    assert_eq!(sys.snapshot().dm.len(), 1);
    assert_eq!(sys.snapshot().mounts.len(), 1);
}

#[test]
fn same_layer_at_two_mount_points_shares_one_device() {
    let sys = fake();
    let before = sys.snapshot();
    let a = apply_json(&sys, &verity_json("/dev/vdb"), "/run/a").unwrap();
    let b = apply_json(&sys, &verity_json("/dev/vdb"), "/run/b").unwrap();
    assert!(b.shared_device);
    assert_eq!(a.dm_name, b.dm_name);
    assert_eq!(sys.snapshot().dm.len(), 1);
    let t = apply::teardown(
        &sys,
        Path::new("/run/a"),
        &Known::default(),
        &a.created_dirs,
    )
    .unwrap();
    assert!(t.kept_shared_device);
    assert_eq!(sys.snapshot().dm.len(), 1);
    let t = apply::teardown(
        &sys,
        Path::new("/run/b"),
        &Known::default(),
        &b.created_dirs,
    )
    .unwrap();
    assert!(t.removed_device.is_some());
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn file_source_goes_through_a_loop_device_and_back() {
    let sys = fake();
    let before = sys.snapshot();
    let a = apply_json(&sys, &verity_json("/images/layer.img"), MP).unwrap();
    assert_eq!(a.loop_device, Some(PathBuf::from("/dev/loop0")));
    assert!(a.table.unwrap().to_string().contains(" 7:0 7:0 "));
    apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    assert_eq!(sys.snapshot(), before);
}

#[test]
fn device_too_small_is_refused_before_anything_is_created() {
    let sys = fake();
    let before = sys.snapshot();
    let e = apply_json(&sys, &verity_json("/dev/vdc"), MP).unwrap_err();
    assert!(e.to_string().contains("too small"), "{e}");
    assert_eq!(sys.snapshot(), before);
    assert_eq!(sys.count(Op::DmCreate), 0);
}

#[test]
fn bad_sources_are_refused() {
    let sys = fake();
    let before = sys.snapshot();
    for (src, want) in [
        ("/dev/null", "character device"),
        ("/run", "directory"),
        ("relative/path", "absolute"),
        ("/does/not/exist", "stat"),
    ] {
        let e = apply_json(&sys, &verity_json(src), MP).unwrap_err();
        let chain = format!(
            "{e} {}",
            std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(chain.contains(want), "{src}: {chain}");
        assert_eq!(sys.snapshot(), before, "{src}");
    }
}

#[test]
fn unverified_raw_block_is_refused_unless_allowed() {
    let sys = fake();
    let json = r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#;
    let e = apply_json(&sys, json, MP).unwrap_err();
    assert!(
        matches!(e, ManagerError::Policy(PolicyError::Unverified(_))),
        "{e}"
    );
    assert!(sys.calls().is_empty(), "refused before touching anything");
}

#[test]
fn corrupted_status_is_refused_and_unwound() {
    let sys = fake();
    let before = sys.snapshot();
    // Find the name it will get, mark it corrupt.
    let a = apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    let name = a.dm_name.unwrap();
    apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    sys.set_corrupt(name.as_str());
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap_err());
    assert!(matches!(e, ApplyError::NotVerified { .. }), "{e}");
    assert_eq!(sys.snapshot(), before);
}

/// A device that is already active (another mount point uses it) and has seen corruption
/// is not shared: the status check runs on the reused device too, the second mount point
/// gets nothing, and the first one is left as it was.
#[test]
fn an_active_device_in_status_c_is_not_reused() {
    let sys = fake();
    let a = apply_json(&sys, &verity_json("/dev/vdb"), "/run/a").unwrap();
    let name = a.dm_name.clone().unwrap();
    let before = sys.snapshot();
    sys.set_corrupt(name.as_str());
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), "/run/b").unwrap_err());
    match &e {
        ApplyError::NotVerified { name: n, status } => {
            assert_eq!(n, &name);
            assert_eq!(status, "C");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(name.as_str()), "{e}");
    assert_eq!(
        sys.snapshot(),
        before,
        "the second mount point got something"
    );
    assert_eq!(
        sys.count(Op::DmCreate),
        1,
        "the active device was reused, not remade"
    );
    assert_eq!(sys.mounts().unwrap().len(), 1);
}

/// Volumes without dm-verity (direct_block, and raw blocks when unverified ones are
/// allowed) are mounted read-only, nodev and nosuid like verified ones: the host may add
/// flags, never drop these.
#[test]
fn unverified_volumes_are_mounted_ro_nodev_nosuid_too() {
    let opts = Policy {
        allow_unverified: true,
        allowed_fs_types: vec!["erofs".into(), "ext4".into()],
        ..policy()
    };
    for (json, want) in [
        (
            r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","direct_volume":{"metadata":{}}}"#,
            "ro,nodev,nosuid",
        ),
        (
            r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","options":["noexec","defaults"],"direct_volume":{"metadata":{}}}"#,
            "ro,nodev,nosuid,noexec",
        ),
        (
            r#"{"volume_type":"image_raw_block","source":"/dev/vdc"}"#,
            "ro,nodev,nosuid",
        ),
    ] {
        let sys = fake();
        let before = sys.snapshot();
        let a = apply_with(&sys, &opts, json, MP).unwrap();
        assert_eq!(a.dm_name, None);
        let mounts = sys.mounts().unwrap();
        assert_eq!(mounts.len(), 1, "{json}");
        assert_eq!(mounts[0].options, want, "{json}");
        assert_eq!(mounts[0].source, "/dev/vdc", "{json}");
        apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
        assert_eq!(sys.snapshot(), before);
    }
    for o in ["dev", "suid", "rw", "exec"] {
        let sys = fake();
        let json = format!(
            r#"{{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","options":["{o}"],"direct_volume":{{"metadata":{{}}}}}}"#
        );
        let e = apply_with(&sys, &opts, &json, MP).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Invalid mount option {o:?}: not allowed")
        );
        assert!(sys.mounts().unwrap().is_empty());
    }
}

#[test]
fn something_else_mounted_at_the_mount_point_is_refused() {
    let sys = fake();
    sys.add_dir(MP);
    let direct = r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","direct_volume":{"metadata":{"a":"b"}}}"#;
    let unverified = Policy {
        allow_unverified: true,
        allowed_fs_types: vec!["erofs".into(), "ext4".into()],
        ..policy()
    };
    apply_with(&sys, &unverified, direct, MP).unwrap();
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap_err());
    assert!(matches!(e, ApplyError::MountPointBusy(_)), "{e}");
    assert_eq!(sys.snapshot().dm.len(), 0);
}

/// Every system call made during a successful apply, failed in turn (the n-th call of each
/// op), leaves the system exactly as it was, and the error names the step.
#[test]
fn every_step_failing_in_turn_leaves_nothing_behind() {
    for source in ["/dev/vdb", "/images/layer.img"] {
        let probe = fake();
        apply_json(&probe, &verity_json(source), MP).unwrap();
        let calls = probe.calls();
        let mut tried = 0;
        for op in [
            Op::Stat,
            Op::BlockInfo,
            Op::LoopAttach,
            Op::DmList,
            Op::DmCreate,
            Op::DmLoad,
            Op::DmResume,
            Op::MakeNode,
            Op::DmStatus,
            Op::DmTable,
            Op::MakeDir,
            Op::Mount,
            Op::Mounts,
        ] {
            let n = calls.iter().filter(|c| **c == op).count();
            for nth in 0..n {
                let sys = fake();
                let before = sys.snapshot();
                sys.fail_nth(op, nth, nix::libc::EIO);
                let e = apply_json(&sys, &verity_json(source), MP).expect_err(&format!(
                    "{source}: {op:?} #{nth} failing must fail the apply"
                ));
                assert_eq!(
                    sys.snapshot(),
                    before,
                    "{source}: {op:?} #{nth} left something: {e}"
                );
                if let ManagerError::Apply(a) = &e {
                    assert!(a.undo_failures().is_empty(), "{a}");
                }
                tried += 1;
            }
        }
        assert!(tried >= 12, "{source}: only {tried} failure points");
    }
}

/// A failing undo is reported, not hidden.
#[test]
fn failed_rollback_is_reported() {
    let sys = fake();
    sys.fail_nth(Op::Mount, 0, nix::libc::EIO);
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EBUSY);
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap_err());
    match e {
        ApplyError::Step {
            step: Step::Mount,
            undo_failures,
            ..
        } => assert_eq!(undo_failures.len(), 1, "{undo_failures:?}"),
        other => panic!("{other}"),
    }
}

#[test]
fn teardown_of_nothing_is_success_and_teardown_steps_fail_cleanly() {
    let sys = fake();
    let t = apply::teardown(&sys, Path::new("/nowhere"), &Known::default(), &[]).unwrap();
    assert!(!t.unmounted);
    let a = apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    sys.fail_nth(Op::Unmount, 0, nix::libc::EBUSY);
    let e = apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap_err();
    assert!(
        matches!(
            e,
            ApplyError::Step {
                step: Step::Unmount,
                ..
            }
        ),
        "{e}"
    );
    // Retrying after the failure finishes the job.
    apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    assert!(sys.snapshot().dm.is_empty());
    assert!(sys.snapshot().mounts.is_empty());
}

#[test]
fn files_on_kernel_pseudo_filesystems_are_never_images() {
    let sys = fake();
    sys.add_dir("/proc");
    sys.add_file("/proc/kcore", 1 << 40);
    let before = sys.snapshot();
    let e = apply_json(&sys, &verity_json("/proc/kcore"), MP).unwrap_err();
    assert!(e.to_string().contains("pseudo filesystem"), "{e}");
    assert_eq!(sys.count(Op::LoopAttach), 0);
    assert_eq!(sys.snapshot(), before);
}

/// A refusal after system changes (status C) whose rollback fails keeps both facts.
#[test]
fn refusal_with_a_failed_rollback_reports_both() {
    let sys = fake();
    let a = apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    sys.set_corrupt(a.dm_name.unwrap().as_str());
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EBUSY);
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap_err());
    match &e {
        ApplyError::RollbackFailed {
            error,
            undo_failures,
        } => {
            assert!(matches!(**error, ApplyError::NotVerified { .. }), "{e}");
            assert_eq!(undo_failures.len(), 1, "{e}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.undo_failures().len(), 1);
    assert!(e.to_string().contains("rolling back failed"), "{e}");
}

#[test]
fn an_unverified_file_volume_applied_twice_is_idempotent() {
    let sys = fake();
    let before = sys.snapshot();
    let json =
        r#"{"volume_type":"layer_raw_block","source":"/images/layer.img","fs_type":"erofs"}"#;
    let p = Policy {
        allow_unverified: true,
        ..policy()
    };
    let a = apply_with(&sys, &p, json, MP).unwrap();
    assert!(a.loop_device.is_some() && a.dm_name.is_none());
    let again = apply_with(&sys, &p, json, MP).unwrap();
    assert!(again.already_applied);
    assert_eq!(sys.count(Op::Mount), 1);
    // Another file at the same mount point is still refused.
    sys.add_file("/images/other.img", 16 << 20);
    let other = json.replace("layer.img", "other.img");
    assert!(matches!(
        apply_with(&sys, &p, &other, MP),
        Err(ManagerError::Apply(ApplyError::MountPointBusy(_)))
    ));
    let t = apply::teardown(&sys, Path::new(MP), &Known::default(), &a.created_dirs).unwrap();
    assert!(t.unmounted);
    assert_eq!(sys.snapshot(), before);
}

/// What the source holds at the hash offset is checked before anything is built: the
/// superblock a request describes (every field), or none where it says there is none.
#[test]
fn superblocks_are_checked_against_the_request_before_anything_is_built() {
    use kata_volume::verity::Superblock;
    let with_sb = |extra: &str| {
        format!(
            r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{{"hashtype":"sha256","hash":"{ROOT}","blocknum":16384,"blocksize":512,"hashsize":4096,"offset":8388608{extra}}}}}"#
        )
    };
    let params = Volume::parse(&with_sb(r#","no_superblock":false"#))
        .unwrap()
        .verity()
        .cloned()
        .unwrap();
    let good = Superblock::for_params(&params, [7; 16]).encode();
    // A superblock where the request (six fields: no superblock) expects none.
    let sys = fake();
    sys.write_at("/dev/vdb", 8_388_608, &good);
    let before = sys.snapshot();
    let e = apply_json(&sys, &with_sb(""), MP).unwrap_err();
    assert_eq!(
        e.to_string(),
        "A verity superblock was found at byte 8388608 but dm_verity.no_superblock is true"
    );
    assert_eq!(e.kind(), kata_volume::manager::ErrorKind::InvalidArgument);
    assert_eq!(sys.snapshot(), before);
    assert_eq!(sys.count(Op::DmCreate), 0);
    // The request says there is one, and it matches: the tree starts one hash block later.
    let a = apply_json(&sys, &with_sb(r#","no_superblock":false"#), MP).unwrap();
    let table = a.table.unwrap().to_string();
    assert!(table.contains(" 16384 2049 sha256 "), "{table}");
    // The request says there is one, and there is none.
    let sys = fake();
    let e = apply_json(&sys, &with_sb(r#","no_superblock":false"#), MP).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Expected a verity superblock at byte 8388608"),
        "{e}"
    );
    assert_eq!(sys.count(Op::DmCreate), 0);
    // One that differs from the request (another salt) is named.
    let sys = fake();
    sys.write_at("/dev/vdb", 8_388_608, &good);
    let e = apply_json(
        &sys,
        &with_sb(r#","no_superblock":false,"salt":"00ff""#),
        MP,
    )
    .unwrap_err();
    assert!(e.to_string().contains("salt"), "{e}");
    assert_eq!(sys.count(Op::DmCreate), 0);
}

/// A stale `/dev/mapper/<name>` — a block node of another device, left by a crash or made by
/// someone else — is replaced by the right one, not trusted for its name.
#[test]
fn a_stale_node_of_another_device_is_replaced() {
    let name = apply_json(&fake(), &verity_json("/dev/vdb"), MP)
        .unwrap()
        .dm_name
        .unwrap();
    let sys = fake();
    let stale = DevNum {
        major: 254,
        minor: 32,
    };
    sys.add_block_device(&name.node_path(), stale, 1 << 20);
    apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap();
    let mounted = sys.mounts().unwrap()[0].dev;
    assert_ne!(mounted, stale);
    assert_eq!(
        sys.stat(Path::new(&name.node_path())).unwrap().kind,
        kata_volume::system::FileKind::Block(mounted)
    );
}

/// A failing step whose undo fails too names both: what failed, and what may be left.
#[test]
fn a_failed_step_with_a_failed_undo_says_so() {
    let sys = fake();
    sys.fail_nth(Op::Mount, 0, nix::libc::EIO);
    sys.fail_nth(Op::DmRemove, 0, nix::libc::EBUSY);
    let e = apply_err(apply_json(&sys, &verity_json("/dev/vdb"), MP).unwrap_err());
    assert_eq!(e.undo_failures().len(), 1, "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("Failed to "), "{msg}");
    assert!(msg.contains(" (and rolling back failed: "), "{msg}");
}
