//! `kata-volume storages` piped into `kata-volume add --storages` against the in-process
//! daemon over the fake system: all added in order; a failure in the middle removes what this
//! command added (last first) and leaves what was there before; bad input exits 1, bad
//! usage 2. The library's `VolumeClient::add_storages` is checked for its removal order.
//!
//! The round trip of a ccv0 list with its overlay (the `dmverity` and `overlayfs` shapes) is
//! the test at the end.

use super::*;
use kata_volume::request::Storage;
use kata_volume::service::AddStoragesError;

/// The host image of layer `i` (nydus-snapshotter's tarfs cache).
fn image(i: usize) -> String {
    format!("/var/lib/containerd-nydus/cache/layer{i}.disk")
}

/// Layer `i`'s volume option, as nydus-snapshotter writes it: the host image as `source`.
fn layer_option(i: usize) -> String {
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"{}","fs_type":"erofs","options":["ro"],"dm_verity":{{"hashtype":"sha256","hash":"{}","blocknum":2048,"blocksize":4096,"hashsize":4096,"offset":8388608}}}}"#,
        image(i),
        root_hash(i)
    );
    encode_option(&Volume::parse(&json).unwrap().to_wire())
}

/// `kata-volume storages` for layers 2, 1, 0 (top first), each image at `/dev/vd<disk>`.
fn storages_json(convention: &str, disks: [usize; 3]) -> String {
    let mut args = vec![
        "storages".to_owned(),
        "--mount-type".into(),
        "fuse.nydus-overlayfs".into(),
        "--container-id".into(),
        "c1".into(),
        "--convention".into(),
        convention.into(),
    ];
    for i in [2, 1, 0] {
        args.extend(["--mount-option".into(), layer_option(i)]);
        args.extend([
            "--source-map".into(),
            format!("{}=/dev/vd{}", image(i), disks[i]),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&args, None);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The volumes of a virtual-volume list, without its overlay (which today's daemon refuses).
fn volumes_only(disks: [usize; 3]) -> Vec<Storage> {
    let mut list: Vec<Storage> =
        serde_json::from_str(&storages_json("virtual-volume", disks)).unwrap();
    let overlay = list.pop().unwrap();
    assert_eq!(overlay.driver, "overlayfs");
    list
}

fn write(dir: &tempfile::TempDir, list: &[Storage]) -> String {
    let path = dir.path().join("storages.json");
    std::fs::write(&path, serde_json::to_string(list).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn listed(d: &Daemon) -> Vec<String> {
    let o = d.cli(&["list", "--json"], None);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut mps: Vec<String> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["mount_point"].as_str().unwrap().to_owned())
        .collect();
    mps.sort();
    mps
}

fn verity_mp(i: usize) -> String {
    format!("{ROOT}/virtual-volumes/verity/{}", root_hash(i))
}

fn stderr_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn add_storages_adds_every_one_in_order() {
    let d = Daemon::start(3);
    let list = volumes_only([0, 1, 2]);
    let file = write(&d.dir, &list);

    let o = d.cli(&["add", "--storages", &file], None);
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, i) in lines.iter().zip([2, 1, 0]) {
        let want = format!("mounted layer_raw_block /dev/vd{i} at {}", verity_mp(i));
        assert!(line.starts_with(&want), "{line} vs {want}");
    }
    let mut all = vec![verity_mp(0), verity_mp(1), verity_mp(2)];
    all.sort();
    assert_eq!(listed(&d), all);
    let mounts = d.sys.snapshot().mounts;
    let order: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
    assert_eq!(
        order,
        [verity_mp(2), verity_mp(1), verity_mp(0)],
        "added in order"
    );

    // Again, from standard input, with --json: all already there, nothing removed.
    let o = d.cli(
        &["add", "--storages", "-", "--json"],
        Some(&serde_json::to_string(&list).unwrap()),
    );
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    for (a, i) in answers.iter().zip([2, 1, 0]) {
        assert_eq!(a["mount_point"], verity_mp(i));
        assert_eq!(a["root_hash"], root_hash(i));
        assert_eq!(a["already_present"], true);
    }
    assert_eq!(listed(&d).len(), 3);
}

#[test]
fn a_failure_in_the_middle_removes_what_was_added_before_it() {
    let d = Daemon::start(3);
    let before = d.sys.snapshot();
    // Layer 1 (the second Storage) is mapped to a disk the guest does not have.
    let file = write(&d.dir, &volumes_only([0, 7, 2]));
    let o = d.cli(&["add", "--storages", &file], None);
    let err = stderr_line(&o);
    assert!(o.stdout.is_empty(), "{o:?}");
    let head = format!(
        "error: Storage 2 of 3 (mount point {}) failed (the 1 Storage added before it was \
         removed): ",
        verity_mp(1)
    );
    assert!(err.starts_with(&head), "{err}");
    assert!(err.contains("/dev/vd7"), "names the daemon's reason: {err}");
    assert!(
        err.trim_end().ends_with("(INVALID_ARGUMENT)"),
        "and its status code: {err}"
    );

    assert!(listed(&d).is_empty());
    let after = d.sys.snapshot();
    assert!(after.dm.is_empty() && after.mounts.is_empty(), "{after:?}");
    assert_eq!(
        after.dirs, before.dirs,
        "the directories it made are gone too"
    );
}

#[test]
fn a_failure_leaves_what_was_already_there() {
    let d = Daemon::start(3);
    let good = volumes_only([0, 1, 2]);
    // Another container already has the top layer.
    let o = d.cli(&["add", "--storages", &write(&d.dir, &good[..1])], None);
    assert!(o.status.success(), "{o:?}");

    // Top (already there), middle (new), base (fails).
    let mut list = good.clone();
    list[2] = volumes_only([5, 1, 2])[2].clone();
    let o = d.cli(&["add", "--storages", &write(&d.dir, &list)], None);
    let err = stderr_line(&o);
    // Each removal gives back this command's claim: the top layer keeps the other one.
    let head = format!(
        "error: Storage 3 of 3 (mount point {}) failed (the 2 Storages added before it were \
         removed): ",
        verity_mp(0)
    );
    assert!(err.starts_with(&head), "{err}");
    assert_eq!(listed(&d), [verity_mp(2)]);
    assert_eq!(d.sys.snapshot().dm.len(), 1);
}

#[test]
fn the_client_removes_in_reverse_order_and_reports_it() {
    let d = Daemon::start(3);
    let mut list = volumes_only([0, 1, 2]);
    list.push(Storage {
        mount_point: format!("{ROOT}/c1/rootfs"),
        options: vec!["io.katacontainers.volume=%%%".into()],
        ..Default::default()
    });
    let mut client = VolumeClient::new(d.addr.clone(), ClientOptions::default());
    let e: AddStoragesError = d.rt.block_on(client.add_storages(&list)).unwrap_err();
    assert_eq!((e.index, e.total), (4, 4));
    assert_eq!(e.mount_point, format!("{ROOT}/c1/rootfs"));
    assert_eq!(e.error.code(), Some(ttrpc::Code::INVALID_ARGUMENT));
    assert_eq!(e.removed, [verity_mp(0), verity_mp(1), verity_mp(2)]);
    assert!(e.kept.is_empty() && e.not_removed.is_empty());
    assert!(d.sys.snapshot().mounts.is_empty());

    let ok = d.rt.block_on(client.add_storages(&list[..3])).unwrap();
    let mps: Vec<&str> = ok.iter().map(|v| v.mount_point.as_str()).collect();
    assert_eq!(mps, [verity_mp(2), verity_mp(1), verity_mp(0)]);
    assert!(d.rt.block_on(client.add_storages(&[])).unwrap().is_empty());
}

#[test]
fn a_removal_that_fails_is_reported_and_the_rest_still_removed() {
    let d = Daemon::start(3);
    let mut list = volumes_only([0, 1, 2]);
    list.push(Storage {
        mount_point: format!("{ROOT}/c1/rootfs"),
        options: vec!["io.katacontainers.volume=%%%".into()],
        ..Default::default()
    });
    // The first removal (the base layer, added last) cannot unmount.
    d.sys
        .fail_nth(kata_volume::system::Op::Unmount, 0, libc_ebusy());
    let mut client = VolumeClient::new(d.addr.clone(), ClientOptions::default());
    let e = d.rt.block_on(client.add_storages(&list)).unwrap_err();
    assert_eq!(e.removed, [verity_mp(1), verity_mp(2)]);
    assert_eq!(e.not_removed.len(), 1);
    assert_eq!(e.not_removed[0].0, verity_mp(0));
    let message = e.to_string();
    let want = format!(
        "Storage 4 of 4 (mount point {ROOT}/c1/rootfs) failed (the 2 Storages added before it \
         were removed; removing {} failed, so it is still mounted (",
        verity_mp(0)
    );
    assert!(message.starts_with(&want), "{message}");
    let mounts = d.sys.snapshot().mounts;
    assert_eq!(mounts, [std::path::PathBuf::from(verity_mp(0))]);
    // What the message names can be removed again by hand.
    let o = d.cli(&["remove", "--mount-point", &verity_mp(0)], None);
    assert!(o.status.success(), "{o:?}");
    let after = d.sys.snapshot();
    assert!(after.dm.is_empty() && after.mounts.is_empty(), "{after:?}");
}

/// `EBUSY`, without a libc dependency.
fn libc_ebusy() -> i32 {
    16
}

#[test]
fn add_storages_refuses_bad_input() {
    let d = Daemon::start(1);
    let cases = [
        (
            "",
            "Invalid Storages in standard input (expected a JSON array of Storage objects)",
        ),
        (
            "[]",
            "The Storage list in standard input is empty: nothing to add",
        ),
        (
            r#"[{"mount_point": "/run/kata-containers/x", "fs_group": {}}]"#,
            "unknown field `fs_group`",
        ),
        (
            r#"{"mount_point": "/x"}"#,
            "expected a JSON array of Storage objects",
        ),
    ];
    for (input, message) in cases {
        let err = stderr_line(&d.cli(&["add", "--storages", "-"], Some(input)));
        assert!(err.contains(message), "{input}: {err}");
    }
    let missing = d.dir.path().join("none.json");
    let err = stderr_line(&d.cli(&["add", "--storages", missing.to_str().unwrap()], None));
    assert!(
        err.starts_with("error: Cannot read the Storages from "),
        "{err}"
    );

    for extra in [
        ["--mount-point", "/run/kata-containers/x"],
        ["--option", "ro"],
        ["--source", "/dev/vd0"],
        ["--driver", "blk"],
    ] {
        let mut args = vec!["add", "--storages", "-"];
        args.extend(extra);
        let o = d.cli(&args, Some("[]"));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    assert!(d.sys.snapshot().mounts.is_empty());
}

/// The ccv0 list with its overlay, end to end: `kata-volume storages` → `add --storages` →
/// a rootfs over three verified layers → removed, nothing left.
#[test]
fn a_ccv0_list_gives_a_rootfs_and_removes_cleanly() {
    let d = Daemon::start(3);
    let before = d.sys.snapshot();
    let json = storages_json("ccv0", [0, 1, 2]);
    let o = d.cli(&["add", "--storages", "-", "--json"], Some(&json));
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    let rootfs = format!("{ROOT}/c1/rootfs");
    assert_eq!(v[3]["mount_point"], rootfs.as_str());
    let mounts = d.sys.snapshot().mounts;
    assert_eq!(mounts.last().unwrap().to_str(), Some(rootfs.as_str()));
    assert_eq!(d.sys.snapshot().dm.len(), 3);

    for mp in [rootfs, verity_mp(2), verity_mp(1), verity_mp(0)] {
        let o = d.cli(&["remove", "--mount-point", &mp], None);
        assert!(o.status.success(), "{o:?}");
    }
    let after = d.sys.snapshot();
    assert!(after.dm.is_empty() && after.mounts.is_empty(), "{after:?}");
    assert_eq!(after.dirs, before.dirs, "directories left");
}
