//! The daemon's test fixtures, shared by the service and service-limits suites: a fake
//! system with `layers` disks `/dev/vd0`… and the Storage of a verified layer on each.

use std::sync::Arc;

use kata_volume::service::proto::kata_volume as pb;
use kata_volume::system::{DevNum, FakeSystem};
use kata_volume::volume::{KataVirtualVolume, Volume, encode_option};

pub const ROOT: &str = "/run/kata-containers";

/// The root hash of layer `i`.
pub fn root_hash(i: usize) -> String {
    format!("{:064x}", 0x5eed_u64 + i as u64)
}

/// The volume option of layer `i` (on `/dev/vd<i>`).
pub fn option(i: usize) -> String {
    let json = format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vd{i}","dm_verity":{{"hashtype":"sha256","hash":"{}","blocknum":2048,"blocksize":4096,"hashsize":4096,"offset":8388608}}}}"#,
        root_hash(i)
    );
    let w: KataVirtualVolume = Volume::parse(&json).unwrap().to_wire();
    encode_option(&w)
}

/// The Storage of layer `i` at `mp`.
pub fn storage(layer: usize, mp: &str) -> pb::Storage {
    pb::Storage {
        source: format!("/dev/vd{layer}"),
        options: vec!["ro".into(), option(layer)],
        mount_point: mp.into(),
        ..Default::default()
    }
}

/// A fake system with the mount root and `layers` 16 MiB disks.
pub fn fake(layers: u32) -> Arc<FakeSystem> {
    let f = FakeSystem::new();
    f.add_dir("/run");
    f.add_dir(ROOT);
    for i in 0..layers {
        let dev = DevNum {
            major: 254,
            minor: i * 16,
        };
        f.add_block_device(&format!("/dev/vd{i}"), dev, 16 << 20);
    }
    Arc::new(f)
}
