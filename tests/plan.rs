//! Planning: device-mapper names, the verity plan, device checks, mount options, whole plans.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashSet;

use kata_volume::plan::{
    BlockDevice, DEFAULT_FS_OPTIONS, DM_NAME_MAX, DM_NAME_PREFIX, DmName, MountFlags, PlanError,
    check_device, mount_options, plan, verity_plan,
};
use kata_volume::verity::units::Bytes;
use kata_volume::verity::{VerityOption, VerityParams, parse_tarfs};
use kata_volume::volume::{Volume, VolumeType};
use support::{H1, H256, assert_names, raw_with, tarfs_verity, verity};

fn tarfs() -> VerityParams {
    parse_tarfs(&format!("16384,8388608,sha256:{H256}")).unwrap()
}

fn device(path: &str, size: u64) -> BlockDevice {
    BlockDevice {
        path: path.into(),
        identity: format!("id:{path}"),
        size: Bytes(size),
        logical_block_size: Bytes(512),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
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
        assert!(matches!(e, PlanError::DmName(_)), "{bad:?}");
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
    let name = DmName::for_verity("254:16", &p, &[]);
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
    assert_eq!(DmName::for_verity("254:16", &tarfs(), &[]), name);
    let a = verity_plan(&p, "/dev/vdb", "254:16", Vec::new()).unwrap();
    let b = verity_plan(&p, "/dev/block/254:16", "254:16", Vec::new()).unwrap();
    assert_eq!(a.name, b.name);
    assert_eq!(a.name, name);
    // Distinct device identity, root hash, parameters or options: distinct names.
    let other_hash = parse_tarfs(&format!("16384,8388608,sha256:{}", "0".repeat(64))).unwrap();
    let other_offset = parse_tarfs(&format!("16384,8392704,sha256:{H256}")).unwrap();
    let other_count = parse_tarfs(&format!("16383,8388608,sha256:{H256}")).unwrap();
    let others = [
        DmName::for_verity("254:32", &p, &[]),
        DmName::for_verity("254:1", &p, &[]),
        DmName::for_verity("254:16", &other_hash, &[]),
        DmName::for_verity("254:16", &other_offset, &[]),
        DmName::for_verity("254:16", &other_count, &[]),
        DmName::for_verity("254:16", &p, &[VerityOption::CheckAtMostOnce]),
        DmName::for_verity("254:16", &p, &[VerityOption::IgnoreZeroBlocks]),
    ];
    let mut all: HashSet<DmName> = others.iter().cloned().collect();
    all.insert(name.clone());
    assert_eq!(all.len(), others.len() + 1, "{all:?}");
    // The identity is delimited: moving a byte from it into the parameters changes the name.
    assert_ne!(
        DmName::for_verity("a", &p, &[]),
        DmName::for_verity("a\u{0}", &p, &[])
    );
}

#[test]
fn verity_names_are_stable() {
    // Names are recorded in state files and found again after a restart: they must not change
    // from one build to the next. (Golden values, from before the allocation-free rewrite.)
    let p = tarfs();
    assert_eq!(
        DmName::for_verity("254:16", &p, &[]).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-592320147cd14222"
    );
    assert_eq!(
        DmName::for_verity("/dev/vdb", &p, &[]).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-686f6115db436dea"
    );
    let options = [
        VerityOption::CheckAtMostOnce,
        VerityOption::RootHashSigKeyDesc("k".into()),
    ];
    assert_eq!(
        DmName::for_verity("254:16", &p, &options).as_str(),
        "kata-volume-9f2a6c4e0b1d3f5a-3d696b8b5d8ed16b"
    );
}

#[test]
fn many_names_never_collide_and_stay_valid() {
    let mut seen = HashSet::new();
    for i in 0..2000u64 {
        let p = parse_tarfs(&format!("16384,8388608,sha256:{i:064x}")).unwrap();
        for dev in ["254:16", "254:32"] {
            let n = DmName::for_verity(dev, &p, &[]);
            assert!(DmName::new(n.as_str()).is_ok());
            assert!(seen.insert(n), "collision at {i} {dev}");
        }
    }
}

#[test]
fn verity_plan_gives_the_exact_table() {
    let vp = verity_plan(&tarfs(), "/dev/vdb", "254:16", Vec::new()).unwrap();
    assert_eq!(
        vp.table.to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    assert_eq!(vp.name, DmName::for_verity("254:16", &tarfs(), &[]));
    // A device path that is not one word cannot make a table.
    let e = verity_plan(&tarfs(), "/dev/v db", "x", Vec::new()).unwrap_err();
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
    let mut dev = device("/dev/nvme0n1", 1 << 30);
    dev.logical_block_size = Bytes(4096);
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
    dev.logical_block_size = Bytes(512);
    assert!(check_device(&q, &dev).is_ok());
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
        let e =
            mount_options(&strings(&[bad]), MountFlags::VERITY, DEFAULT_FS_OPTIONS).unwrap_err();
        assert_eq!(e, PlanError::MountOption(bad.into()));
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
        let e = mount_options(&strings(&[bad]), MountFlags::VERITY, &allowed).unwrap_err();
        assert_eq!(e, PlanError::MountOption(bad.into()), "{bad}");
    }
    assert_eq!(
        mount_options(&strings(&["acl"]), MountFlags::VERITY, &allowed)
            .unwrap()
            .1,
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
        MountFlags::default(),
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
        MountFlags::VERITY,
        DEFAULT_FS_OPTIONS,
    )
    .unwrap();
    assert_eq!(flags, MountFlags::VERITY);
    assert_eq!(flags.to_string(), "ro,nodev,nosuid");
    assert_eq!(data, "user_xattr,cache_strategy=readaround,dax=never");
    // Nothing requested: exactly the base.
    assert_eq!(
        mount_options(&[], MountFlags::VERITY, &[]).unwrap(),
        (MountFlags::VERITY, String::new())
    );
    assert_eq!(MountFlags::default().to_string(), "rw");
    // A data option not in this allowlist is refused.
    assert_eq!(
        mount_options(&strings(&["acl"]), MountFlags::VERITY, &[]),
        Err(PlanError::MountOption("acl".into()))
    );
}

#[test]
fn plan_of_a_verified_raw_block() {
    let v = Volume::parse(&support::option(&raw_with(&tarfs_verity()))).unwrap();
    let dev = device("/dev/vdb", 16 << 20);
    let p = plan(&v, dev.clone(), Vec::new(), DEFAULT_FS_OPTIONS).unwrap();
    assert_eq!(p.volume_type, VolumeType::LayerRawBlock);
    assert_eq!(p.device, dev);
    let vp = p.verity.unwrap();
    assert_eq!(
        vp.table.to_string(),
        format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 2048 sha256 {H256} -")
    );
    assert_eq!(
        vp,
        verity_plan(v.verity().unwrap(), "/dev/vdb", "id:/dev/vdb", Vec::new()).unwrap()
    );
    assert_eq!(p.mount.fs_type, "erofs");
    assert_eq!(p.mount.flags, MountFlags::VERITY);
    assert_eq!(p.mount.data, "");
    // Planned twice: the same plan.
    assert_eq!(
        plan(&v, dev, Vec::new(), DEFAULT_FS_OPTIONS)
            .unwrap()
            .verity
            .unwrap(),
        vp
    );
}

#[test]
fn plan_with_options_and_unverified_volumes() {
    let json = format!(
        r#"{{"volume_type":"image_raw_block","source":"/dev/vdb","fs_type":"erofs","options":["noexec","user_xattr"],"dm_verity":{}}}"#,
        tarfs_verity()
    );
    let v = Volume::parse(&json).unwrap();
    let p = plan(
        &v,
        device("/dev/vdb", 16 << 20),
        vec![VerityOption::CheckAtMostOnce],
        DEFAULT_FS_OPTIONS,
    )
    .unwrap();
    assert!(p.mount.flags.noexec && p.mount.flags.read_only);
    assert_eq!(p.mount.data, "user_xattr");
    assert!(
        p.verity
            .unwrap()
            .table
            .to_string()
            .ends_with(" - 1 check_at_most_once")
    );
    // No dm_verity: no verity device, still read-only.
    let v = Volume::parse(r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#).unwrap();
    let p = plan(&v, device("/dev/vdb", 0), Vec::new(), DEFAULT_FS_OPTIONS).unwrap();
    assert!(p.verity.is_none());
    assert_eq!(p.mount.flags, MountFlags::VERITY);
    // direct_block keeps its fs_type and is read-only too.
    let v = Volume::parse(
        r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","direct_volume":{}}"#,
    )
    .unwrap();
    let p = plan(
        &v,
        device("/dev/vdc", 1 << 20),
        Vec::new(),
        DEFAULT_FS_OPTIONS,
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
    let v = Volume::parse(
        r#"{"volume_type":"direct_block","source":"/dev/vdc","fs_type":"ext4","options":["noexec","noatime"],"direct_volume":{}}"#,
    )
    .unwrap();
    let p = plan(
        &v,
        device("/dev/vdc", 1 << 20),
        Vec::new(),
        DEFAULT_FS_OPTIONS,
    )
    .unwrap();
    assert_eq!(p.mount.flags.to_string(), "ro,nodev,nosuid,noexec,noatime");
}

#[test]
fn plan_refusals() {
    let v = Volume::parse(&raw_with(&tarfs_verity())).unwrap();
    let e = plan(&v, device("/dev/vdb", 4096), Vec::new(), DEFAULT_FS_OPTIONS).unwrap_err();
    assert!(matches!(e, PlanError::DeviceTooSmall { .. }), "{e}");
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","options":["rw"],"dm_verity":{}}}"#,
        verity("sha256", H256, 16384, 512, 4096, 8_388_608)
    );
    let v = Volume::parse(&json).unwrap();
    let e = plan(
        &v,
        device("/dev/vdb", 16 << 20),
        Vec::new(),
        DEFAULT_FS_OPTIONS,
    )
    .unwrap_err();
    assert_eq!(e, PlanError::MountOption("rw".into()));
    for t in [
        VolumeType::ImageNydusBlock,
        VolumeType::LayerNydusBlock,
        VolumeType::ImageNydusFs,
        VolumeType::LayerNydusFs,
    ] {
        let v = Volume::parse(&format!(
            r#"{{"volume_type":"{t}","source":"/d","nydus_image":{{"config":"c"}}}}"#
        ))
        .unwrap();
        let e = plan(&v, device("/d", 1 << 20), Vec::new(), &[]).unwrap_err();
        assert_eq!(e, PlanError::Unsupported(t));
        assert_names(&e.to_string(), &["Unsupported volume_type", t.as_str()]);
    }
    let v =
        Volume::parse(r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"a":"b"}}}"#)
            .unwrap();
    assert_eq!(
        plan(&v, device("/d", 0), Vec::new(), &[]).unwrap_err(),
        PlanError::Unsupported(VolumeType::ImageGuestPull)
    );
}
