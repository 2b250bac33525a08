//! Planning: device-mapper names, the verity plan, device checks, mount options (the policy's
//! mount spec), whole plans from authorized requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;

use kata_volume::plan::{PlanError, VerityPlan, check_device, dm_name, plan};
use kata_volume::policy::{DEFAULT_FS_OPTIONS, Policy, PolicyError, mount_spec};
use kata_volume::request::{self, Request, RequestError, Storage};
use kata_volume::resolve::{Resolved, Source, Target};
use kata_volume::system::{DM_NAME_MAX, DM_NAME_PREFIX, DevNum, DmName, MountFlags};
use kata_volume::verity::units::Bytes;
use kata_volume::verity::{VerityOption, VerityParams, parse_tarfs};
use kata_volume::volume::VolumeType;
use support::{H1, H256, assert_names, raw_with, tarfs_verity, verity};

fn tarfs() -> VerityParams {
    parse_tarfs(&format!("16384,8388608,sha256:{H256}")).unwrap()
}

fn device(path: &str, size: u64) -> Source {
    Source::Block {
        path: path.into(),
        dev: DevNum {
            major: 254,
            minor: 16,
        },
        size: Bytes(size),
        logical_block_size: Bytes(512),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The flags and data of a mount with `options` under `allowed`.
fn mount_options(
    options: &[String],
    allowed: &[&str],
) -> Result<(MountFlags, String), PolicyError> {
    mount_spec("erofs", options, allowed).map(|m| (m.flags, m.data))
}

/// Parses and authorizes the volume JSON `json` with `policy`, then plans it on `source`.
fn plan_json(
    json: &str,
    policy: &Policy,
    source: Source,
) -> Result<kata_volume::plan::Plan, String> {
    let storage = Storage {
        options: vec![support::option(json)],
        mount_point: "/run/kata-containers/c1/l1".into(),
        ..Storage::default()
    };
    let Request::Volume(r) =
        request::parse(&storage, &policy.limits()).map_err(|e| e.to_string())?
    else {
        return Err("not a volume request".into());
    };
    let auth = policy.authorize(&r).map_err(|e| e.to_string())?;
    let target = Target {
        path: r.mount_point.clone(),
        missing_dirs: Vec::new(),
    };
    plan(&auth, Resolved { source, target }).map_err(|e| e.to_string())
}

#[test]
fn dm_name_rules() {
    for ok in [
        "a",
        "kata-volume-0123",
        "a_b.c+d#e:f",
        &"x".repeat(DM_NAME_MAX),
    ] {
        assert_eq!(DmName::new(ok).unwrap().as_str(), ok);
    }
    assert_eq!(DM_NAME_MAX, 127);
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "/",
        "a b",
        "a\nb",
        "é",
        "a\u{0}",
        &"x".repeat(128),
    ] {
        let e = DmName::new(bad).unwrap_err();
        assert_names(&e.to_string(), &["device-mapper name", "127"]);
    }
    let e = DmName::new("a/b").unwrap_err().to_string();
    assert!(e.contains("\"a/b\""), "{e}");
    let n = DmName::new("kata-volume-x").unwrap();
    assert!(n.is_ours());
    assert_eq!(n.node_path(), "/dev/mapper/kata-volume-x");
    assert!(!DmName::new("other").unwrap().is_ours());
}

#[test]
fn verity_names_are_valid_deterministic_and_distinct() {
    let p = tarfs();
    let name = dm_name("254:16", &p, &[]);
    // Valid by the kernel's rules, ours, and recognisable by its root hash.
    assert_eq!(DmName::new(name.as_str()).unwrap(), name);
    assert!(name.is_ours());
    assert!(name.as_str().len() <= DM_NAME_MAX);
    assert!(!name.as_str().contains('/'));
    assert!(
        name.as_str()
            .starts_with(&format!("{DM_NAME_PREFIX}{}", &H256[..16]))
    );
    // The same volume on the same device: the same name, whatever path reaches the device.
    assert_eq!(dm_name("254:16", &tarfs(), &[]), name);
    let a = kata_volume::plan::verity(&p, &device("/dev/vdb", 16 << 20), Vec::new()).unwrap();
    let b =
        kata_volume::plan::verity(&p, &device("/dev/block/254:16", 16 << 20), Vec::new()).unwrap();
    assert_eq!(a.name, b.name);
    assert_eq!(a.name, dm_name("block:254:16", &p, &[]));
    // Distinct device identity, root hash, parameters or options: distinct names.
    let other_hash = parse_tarfs(&format!("16384,8388608,sha256:{}", "0".repeat(64))).unwrap();
    let other_offset = parse_tarfs(&format!("16384,8392704,sha256:{H256}")).unwrap();
    let other_count = parse_tarfs(&format!("16383,8388608,sha256:{H256}")).unwrap();
    let others = [
        dm_name("254:32", &p, &[]),
        dm_name("254:1", &p, &[]),
        dm_name("254:16", &other_hash, &[]),
        dm_name("254:16", &other_offset, &[]),
        dm_name("254:16", &other_count, &[]),
        dm_name("254:16", &p, &[VerityOption::CheckAtMostOnce]),
        dm_name("254:16", &p, &[VerityOption::IgnoreZeroBlocks]),
    ];
    let mut all: HashSet<DmName> = others.iter().cloned().collect();
    all.insert(name.clone());
    assert_eq!(all.len(), others.len() + 1, "{all:?}");
    // The identity is delimited: moving a byte from it into the parameters changes the name.
    assert_ne!(dm_name("a", &p, &[]), dm_name("a\u{0}", &p, &[]));
}

#[test]
fn verity_names_are_stable() {
    // Names are recorded in state files and found again after a restart: they must not change
    // from one build to the next. (Golden values, from before the allocation-free rewrite.)
    let p = tarfs();
    assert_eq!(
        dm_name("254:16", &p, &[]).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-592320147cd14222"
    );
    assert_eq!(
        dm_name("/dev/vdb", &p, &[]).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-686f6115db436dea"
    );
    let options = [
        VerityOption::CheckAtMostOnce,
        VerityOption::RootHashSigKeyDesc("k".into()),
    ];
    assert_eq!(
        dm_name("254:16", &p, &options).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-3d696b8b5d8ed16b"
    );
}

#[test]
fn many_names_never_collide_and_stay_valid() {
    let mut seen = HashSet::new();
    for i in 0..2000u64 {
        let p = parse_tarfs(&format!("16384,8388608,sha256:{i:064x}")).unwrap();
        for dev in ["254:16", "254:32"] {
            let n = dm_name(dev, &p, &[]);
            assert!(DmName::new(n.as_str()).is_ok());
            assert!(seen.insert(n), "collision at {i} {dev}");
        }
    }
}

#[test]
fn verity_plan_gives_the_exact_table() {
    let vp = VerityPlan::new(&tarfs(), "254:16", Vec::new());
    assert_eq!(
        vp.table("/dev/vdb").unwrap().to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    assert_eq!(vp.name, dm_name("254:16", &tarfs(), &[]));
    // The kernel reports devices by number: the plan recognises its table on that device,
    // and nothing else.
    let dev = DevNum {
        major: 254,
        minor: 16,
    };
    let active = vp.table("254:16").unwrap();
    assert!(vp.matches(&active, dev));
    assert!(!vp.matches(
        &active,
        DevNum {
            major: 254,
            minor: 32
        }
    ));
    let other = VerityPlan::new(&tarfs(), "254:16", vec![VerityOption::CheckAtMostOnce]);
    assert!(!other.matches(&active, dev));
    // A device path that is not one word cannot make a table.
    let e = vp.table("/dev/v db").unwrap_err();
    assert_names(&e.to_string(), &["device", "\"/dev/v db\""]);
    let e = kata_volume::plan::verity(&tarfs(), &device("/dev/v db", 16 << 20), Vec::new())
        .unwrap_err();
    assert_names(&e.to_string(), &["device", "\"/dev/v db\""]);
}

#[test]
fn check_device_size_and_logical_block() {
    let p = tarfs();
    let required = p.required_device_size().0;
    // 8 MiB of data + 16384/128 + 1 = 129 hash blocks of 4 KiB.
    assert_eq!(required, 8_388_608 + 129 * 4096);
    assert!(check_device(&p, &device("/dev/vdb", required)).is_ok());
    assert!(check_device(&p, &device("/dev/vdb", u64::MAX)).is_ok());
    for size in [0, 8_388_608, required - 1] {
        let e = check_device(&p, &device("/dev/vdb", size)).unwrap_err();
        assert_eq!(
            e,
            PlanError::DeviceTooSmall {
                device: "/dev/vdb".into(),
                size,
                required
            }
        );
        assert_names(
            &e.to_string(),
            &["/dev/vdb", &size.to_string(), &required.to_string()],
        );
    }
    // 512-byte data blocks on a 4 KiB-sector device: refused, naming blocksize.
    let with_sectors = |logical: u64| Source::Block {
        path: "/dev/nvme0n1".into(),
        dev: DevNum {
            major: 259,
            minor: 0,
        },
        size: Bytes(1 << 30),
        logical_block_size: Bytes(logical),
    };
    let dev = with_sectors(4096);
    let e = check_device(&p, &dev).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::BelowLogicalBlock {
                field: "blocksize",
                ..
            }
        ),
        "{e}"
    );
    assert_names(
        &e.to_string(),
        &["dm_verity.blocksize 512", "4096", "/dev/nvme0n1"],
    );
    // 4 KiB data blocks with 512-byte hash blocks: refused, naming hashsize.
    let q = VerityParams::new(&kata_volume::verity::RawVerity {
        hashtype: "sha1",
        hash: H1,
        blocknum: 8,
        blocksize: 4096,
        hashsize: 512,
        offset: 32768,
    })
    .unwrap();
    let e = check_device(&q, &dev).unwrap_err();
    assert_names(&e.to_string(), &["dm_verity.hashsize 512", "4096"]);
    assert!(check_device(&q, &with_sectors(512)).is_ok());
    // A file through a loop device: whole sectors of it, 512-byte logical blocks.
    let file = Source::File {
        path: "/images/a.img".into(),
        id: kata_volume::resolve::FileId { dev: 1, ino: 2 },
        size: Bytes(required + 511),
    };
    assert!(check_device(&p, &file).is_ok());
    assert_eq!(file.device_size(), Bytes(required));
}

#[test]
fn mount_options_refuse_anything_that_loosens() {
    for bad in [
        "rw",
        "exec",
        "dev",
        "suid",
        "remount",
        "bind",
        "rbind",
        "defaults,rw",
        "sync",
        "strictatime",
        "nosymfollow=0",
        "context=x",
        "upperdir=/x",
        "RO",
        " ro",
    ] {
        let e = mount_options(&strings(&[bad]), DEFAULT_FS_OPTIONS).unwrap_err();
        assert_eq!(e, PolicyError::MountOption(bad.into()));
        assert_names(&e.to_string(), &["mount option", &format!("{bad:?}")]);
    }
}

#[test]
fn mount_options_refuse_loosening_flags_even_if_allowlisted() {
    // A policy's allowlist is for filesystem data options; passing `rw` or `suid` as mount
    // data would let the kernel's generic parser clear the flags we set.
    let allowed = [
        "rw", "exec", "dev", "suid", "remount", "bind", "async", "acl",
    ];
    for bad in ["rw", "exec", "dev", "suid", "remount", "bind", "async"] {
        let e = mount_options(&strings(&[bad]), &allowed).unwrap_err();
        assert_eq!(e, PolicyError::MountOption(bad.into()), "{bad}");
    }
    assert_eq!(
        mount_options(&strings(&["acl"]), &allowed).unwrap().1,
        "acl"
    );
}

#[test]
fn mount_options_accept_tightening_and_allowlisted_data() {
    let (flags, data) = mount_options(
        &strings(&[
            "ro",
            "nodev",
            "nosuid",
            "noexec",
            "noatime",
            "nodiratime",
            "",
            "defaults",
        ]),
        DEFAULT_FS_OPTIONS,
    )
    .unwrap();
    assert!(flags.read_only && flags.nodev && flags.nosuid && flags.noexec);
    assert!(flags.noatime && flags.nodiratime);
    assert_eq!(
        flags.to_string(),
        "ro,nodev,nosuid,noexec,noatime,nodiratime"
    );
    assert_eq!(data, "");
    // Base flags stay set; allowlisted data options pass through in order, once each.
    let (flags, data) = mount_options(
        &strings(&[
            "user_xattr",
            "cache_strategy=readaround",
            "user_xattr",
            "dax=never",
        ]),
        DEFAULT_FS_OPTIONS,
    )
    .unwrap();
    assert_eq!(flags, MountFlags::VERITY);
    assert_eq!(flags.to_string(), "ro,nodev,nosuid");
    assert_eq!(data, "user_xattr,cache_strategy=readaround,dax=never");
    // Nothing requested: exactly the base.
    assert_eq!(
        mount_options(&[], &[]).unwrap(),
        (MountFlags::VERITY, String::new())
    );
    assert_eq!(MountFlags::default().to_string(), "rw");
    // A data option not in this allowlist is refused.
    assert_eq!(
        mount_options(&strings(&["acl"]), &[]).unwrap_err(),
        PolicyError::MountOption("acl".into())
    );
}

#[test]
fn plan_of_a_verified_raw_block() {
    let dev = device("/dev/vdb", 16 << 20);
    let p = plan_json(&raw_with(&tarfs_verity()), &Policy::default(), dev.clone()).unwrap();
    assert_eq!(p.volume_type, VolumeType::LayerRawBlock);
    assert_eq!(p.source, dev);
    assert_eq!(p.key(), p.verity.as_ref().unwrap().name.to_string());
    let vp = p.verity.clone().unwrap();
    assert_eq!(
        vp.table("/dev/vdb").unwrap().to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    assert_eq!(vp, VerityPlan::new(&tarfs(), "block:254:16", Vec::new()));
    assert_eq!(p.mount.fs_type, "erofs");
    assert_eq!(p.mount.flags, MountFlags::VERITY);
    assert_eq!(p.mount.data, "");
    // Planned twice: the same plan.
    assert_eq!(
        plan_json(&raw_with(&tarfs_verity()), &Policy::default(), dev).unwrap(),
        p
    );
}

#[test]
fn plan_with_options_and_unverified_volumes() {
    let json = format!(
        r#"{{"volume_type":"image_raw_block","source":"/dev/vdb","fs_type":"erofs","options":["noexec","user_xattr"],"dm_verity":{}}}"#,
        tarfs_verity()
    );
    let policy = Policy {
        check_at_most_once: true,
        allow_unverified: true,
        allowed_fs_types: vec!["erofs".into(), "ext4".into()],
        ..Policy::default()
    };
    let p = plan_json(&json, &policy, device("/dev/vdb", 16 << 20)).unwrap();
    assert!(p.mount.flags.noexec && p.mount.flags.read_only);
    assert_eq!(p.mount.data, "user_xattr");
    assert!(
        p.verity
            .unwrap()
            .table("/dev/vdb")
            .unwrap()
            .to_string()
            .ends_with(" - 1 check_at_most_once")
    );
    // No dm_verity: no verity device, still read-only; the key is the device itself.
    let p = plan_json(
        r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#,
        &policy,
        device("/dev/vdb", 0),
    )
    .unwrap();
    assert!(p.verity.is_none());
    assert_eq!(p.key(), "block:254:16");
    assert_eq!(p.mount.flags, MountFlags::VERITY);
    // direct_block keeps its fs_type and is read-only, nodev, nosuid too.
    let p = plan_json(
        r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","direct_volume":{"metadata":{}}}"#,
        &policy,
        device("/dev/vdc", 1 << 20),
    )
    .unwrap();
    assert_eq!(p.mount.fs_type, "ext4");
    assert_eq!(
        p.mount.flags,
        MountFlags::VERITY,
        "direct_block is ro,nodev,nosuid"
    );
    assert_eq!(p.mount.flags.to_string(), "ro,nodev,nosuid");
    // Options may add flags to a direct_block, never take these away.
    let p = plan_json(
        r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","options":["noexec","noatime"],"direct_volume":{"metadata":{}}}"#,
        &policy,
        device("/dev/vdc", 1 << 20),
    )
    .unwrap();
    assert_eq!(p.mount.flags.to_string(), "ro,nodev,nosuid,noexec,noatime");
}

#[test]
fn plan_refusals() {
    let policy = Policy::default();
    let e = plan_json(
        &raw_with(&tarfs_verity()),
        &policy,
        device("/dev/vdb", 4096),
    )
    .unwrap_err();
    assert!(
        e.starts_with("Device /dev/vdb is 4096 bytes, too small"),
        "{e}"
    );
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","options":["rw"],"dm_verity":{}}}"#,
        verity("sha256", H256, 16384, 512, 4096, 8_388_608)
    );
    let e = plan_json(&json, &policy, device("/dev/vdb", 16 << 20)).unwrap_err();
    assert_eq!(e, PolicyError::MountOption("rw".into()).to_string());
    for t in [
        VolumeType::ImageNydusBlock,
        VolumeType::LayerNydusBlock,
        VolumeType::ImageNydusFs,
        VolumeType::LayerNydusFs,
    ] {
        let json = format!(
            r#"{{"volume_type":"{t}","source":"/d","nydus_image":{{"config":"c"}},"image_pull":{{"metadata":{{"a":"b"}}}}}}"#
        );
        let e = plan_json(&json, &policy, device("/d", 1 << 20)).unwrap_err();
        assert_eq!(e, RequestError::Unsupported(t).to_string());
        assert_names(&e, &["Unsupported volume_type", t.as_str()]);
    }
}

/// An overlay's `lowerdir`/`upperdir`/`workdir` data must fit the kernel's one page with its
/// NUL: 4095 bytes are planned, 4096 refused naming the size; the plan keeps as trees (removed
/// with their contents) only the upper and work directories it creates, never ones that were
/// there; its key names its mount point.
#[test]
fn overlay_plans_bound_their_data_and_own_only_what_they_create() {
    use kata_volume::plan::plan_overlay;
    use kata_volume::policy::AuthorizedOverlay;
    use kata_volume::resolve::ResolvedOverlay;
    use std::path::PathBuf;
    let root = PathBuf::from("/run/kata-containers");
    let rootfs = root.join("c1/rootfs");
    let (upper, work) = (root.join("c1/fs"), root.join("c1/work"));
    let auth = |len: usize| AuthorizedOverlay {
        lowers: vec![root.join("l")],
        lower_devices: vec![None],
        upper: Some((upper.clone(), work.clone())),
        create: vec![upper.clone()],
        mount_point: rootfs.clone(),
        mount_root: root.clone(),
        mount: kata_volume::system::MountSpec {
            fs_type: "overlay".into(),
            flags: MountFlags::default(),
            data: "x".repeat(len),
        },
    };
    let target = |p: &PathBuf, missing: bool| Target {
        path: p.clone(),
        missing_dirs: if missing { vec![p.clone()] } else { Vec::new() },
    };
    // The upper is made here, the work directory was there.
    let resolved = || ResolvedOverlay {
        target: target(&rootfs, false),
        dirs: vec![target(&upper, true), target(&work, false)],
    };
    let p = plan_overlay(&auth(4095), resolved()).unwrap();
    assert_eq!(p.trees, vec![upper.clone()]);
    assert_eq!(p.writable(), vec![upper.clone(), work.clone()]);
    assert_eq!(p.key(), "overlay:/run/kata-containers/c1/rootfs");
    assert_eq!(p.missing_dirs(), vec![upper.clone()]);
    for len in [4096, 5000] {
        let e = plan_overlay(&auth(len), resolved()).unwrap_err();
        assert_eq!(e, PlanError::OverlayTooLong(len));
        assert!(e.to_string().contains(&format!("are {len} bytes")), "{e}");
    }
}
