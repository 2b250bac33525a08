//! Builders for the Storage shapes a Kata runtime sends, over a fake system with four disks
//! at PCI slots 05..08: shared by the runtime tests and the review findings.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use kata_volume::manager::{ManagerOptions, MemStore, Storage, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::request::CREATE_DIRECTORY;
use kata_volume::system::{DevNum, FakeSystem, System};

pub const ROOT: &str = "/run/kata-containers";
pub const VV: &str = "/run/kata-containers/virtual-volumes";

/// Root hash of layer `i`.
pub fn root(i: u8) -> String {
    format!("{:02x}", 0xa0 + i).repeat(32)
}

/// The `verity_info=` JSON of layer `i` (tarfs layout: 512-byte blocks, 4 KiB hash blocks).
pub fn verity_info(i: u8) -> String {
    format!(
        r#"{{"hashtype":"sha256","hash":"{}","blocknum":16384,"blocksize":512,"hashsize":4096,"offset":8388608}}"#,
        root(i)
    )
}

/// A system with four disks hot-plugged at PCI slots 05..08 (`/dev/vdb`..`/dev/vde`).
pub fn system() -> Arc<FakeSystem> {
    let f = FakeSystem::new();
    for d in ["/run", ROOT] {
        f.add_dir(d);
    }
    for (i, name) in ["vdb", "vdc", "vdd", "vde"].iter().enumerate() {
        let node = format!("/dev/{name}");
        let minor = u32::try_from(16 * (i + 1)).unwrap();
        f.add_block_device(&node, DevNum { major: 254, minor }, 16 << 20);
        f.plug_disk(&format!("{:02x}", 5 + i), &node);
    }
    Arc::new(f)
}

/// Partitions 1..=3 of the disk at slot 05 (`/dev/vdb1`..`/dev/vdb3`), 16 MiB each.
pub fn partitioned(sys: &FakeSystem) {
    for n in 1..=3u32 {
        sys.add_block_device(
            &format!("/dev/vdb{n}"),
            DevNum {
                major: 254,
                minor: 16 + n,
            },
            16 << 20,
        );
    }
}

pub fn manager(sys: &Arc<FakeSystem>, policy: Policy) -> (VolumeManager, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    let m = VolumeManager::new(sys.clone(), store.clone(), ManagerOptions { policy })
        .unwrap()
        .0;
    (m, store)
}

/// The CCv0 runtime's Storage for layer `i` on the disk at PCI slot `slot`.
pub fn dmverity(i: u8, slot: &str) -> Storage {
    Storage {
        driver: "dmverity".into(),
        driver_options: vec![
            format!("verity_info={}", verity_info(i)),
            "source_type=virtio_pci".into(),
        ],
        source: slot.into(),
        fstype: "erofs".into(),
        options: vec!["ro".into()],
        mount_point: layer_mp(i),
    }
}

pub fn layer_mp(i: u8) -> String {
    format!("{VV}/verity/{}", root(i))
}

/// The CCv0 runtime's overlay Storage for container `cid` over `layers` (top first).
pub fn overlay(cid: &str, layers: &[u8]) -> Storage {
    let upper = format!("{VV}/containers/{cid}/fs");
    let work = format!("{VV}/containers/{cid}/work");
    let mut options: Vec<String> = layers
        .iter()
        .map(|i| format!("lowerdir={}", layer_mp(*i)))
        .collect();
    options.push(format!("upperdir={upper}"));
    options.push(format!("workdir={work}"));
    Storage {
        driver: "overlayfs".into(),
        driver_options: vec![
            format!("{CREATE_DIRECTORY}={upper}"),
            format!("{CREATE_DIRECTORY}={work}"),
        ],
        source: "overlay".into(),
        fstype: "overlay".into(),
        options,
        mount_point: format!("{ROOT}/{cid}/rootfs"),
    }
}

pub fn mounts_at(sys: &FakeSystem, target: &str) -> Vec<kata_volume::system::MountEntry> {
    sys.mounts()
        .unwrap()
        .into_iter()
        .filter(|m| m.target == Path::new(target))
        .collect()
}

/// Kata main's multi-layer storage for GPT partition `n` of the disk at PCI slot 05, with its
/// dm-verity parameters (no superblock).
pub fn multi_layer(n: u8, cid: &str) -> Storage {
    Storage {
        driver: "blk".into(),
        source: "05".into(),
        fstype: "erofs".into(),
        options: vec![
            "ro".into(),
            "X-kata.overlay-lower".into(),
            "X-kata.multi-layer=true".into(),
            "X-kata.gpt-partitioned=true".into(),
            format!("X-kata.partition-number={n}"),
            "X-kata.dmverity-enabled=true".into(),
            format!("X-kata.dmverity.roothash={}", root(n)),
            "X-kata.dmverity.hashoffset=8388608".into(),
            "X-kata.dmverity.no-superblock=true".into(),
        ],
        mount_point: format!("{ROOT}/passthrough/{cid}/rootfs"),
        ..Storage::default()
    }
}

/// A raw block volume without dm-verity on `/dev/vdb` at `mp` (a policy must allow
/// unverified volumes).
pub fn unverified(mp: &str) -> Storage {
    use kata_volume::volume::{KataVirtualVolume, Volume, encode_option};
    let json = r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#;
    let wire: KataVirtualVolume = Volume::parse(json).unwrap().to_wire();
    Storage {
        source: "/dev/vdb".into(),
        options: vec![encode_option(&wire)],
        mount_point: mp.into(),
        ..Storage::default()
    }
}
