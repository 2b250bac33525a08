//! Shared helpers of the trust pipeline tests: a fake system with one disk, a manager over it
//! with an in-memory state, and requests for a layer on that disk, signed or not.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
pub use kata_volume::manager::MemStore;
use kata_volume::manager::{ManagerOptions, Storage, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem};

/// The mount root.
pub const ROOT: &str = "/run/kata-containers";
/// The driver option that carries a signature.
pub const SIG: &str = "io.katacontainers.volume.root_hash_sig";

/// A fake system with the mount root and one 64 MiB disk, `/dev/vdb`.
pub fn system() -> Arc<FakeSystem> {
    let f = FakeSystem::new();
    f.add_dir("/run");
    f.add_dir(ROOT);
    f.add_block_device(
        "/dev/vdb",
        DevNum {
            major: 254,
            minor: 16,
        },
        64 << 20,
    );
    Arc::new(f)
}

/// A manager over `sys` with `policy` (whose trust the caller loaded).
pub fn manager(sys: &Arc<FakeSystem>, policy: Policy) -> VolumeManager {
    VolumeManager::new(
        sys.clone(),
        Arc::new(MemStore::default()),
        ManagerOptions { policy },
    )
    .unwrap()
    .0
}

/// The default policy with `f` applied, its trust loaded.
pub fn policy(f: impl FnOnce(&mut Policy)) -> Policy {
    let mut p = Policy::default();
    f(&mut p);
    p.load_trust().unwrap();
    p
}

/// A `dm_verity` object for `hash` of `alg` (4096 blocks of 4 KiB, tree at 16 MiB), with
/// `extra` JSON members appended (e.g. `,"root_hash_sig":"…"`).
pub fn verity(alg: &str, hash: &str, extra: &str) -> String {
    format!(
        r#"{{"hashtype":"{alg}","hash":"{hash}","blocknum":4096,"blocksize":4096,"hashsize":4096,"offset":16777216{extra}}}"#
    )
}

/// The volume option of a layer on `/dev/vdb` with the `dm_verity` object `verity`.
pub fn volume_option(verity: &str) -> String {
    let json =
        format!(r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{verity}}}"#);
    format!("io.katacontainers.volume={}", STANDARD.encode(json))
}

/// A request for the sha256 layer `hash` at `ROOT/<name>`, with `sig` (base64) as the
/// driver option when given.
pub fn request(hash: &str, sig: Option<&str>, name: &str) -> Storage {
    Storage {
        source: "/dev/vdb".into(),
        options: vec![volume_option(&verity("sha256", hash, ""))],
        driver_options: sig.map(|s| format!("{SIG}={s}")).into_iter().collect(),
        mount_point: format!("{ROOT}/{name}"),
        ..Storage::default()
    }
}
