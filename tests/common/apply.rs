//! Shared by the apply suites (`apply_fake`, `apply_teardown`): a fake system with two disks
//! and an image file, the rules they run under, and `prepare` + `apply` in one call.
#![allow(dead_code)]

use std::path::PathBuf;

use kata_volume::apply::{self, Applied, ApplyError};
use kata_volume::manager::{self, ManagerError, Storage};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem};
use kata_volume::volume::{Volume, encode_option};

pub const ROOT: &str = "8d5d1a5e2c3f7a4b6c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";
pub const MP: &str = "/run/kata-containers/layer1";

pub fn verity_json(source: &str) -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"{source}","fs_type":"erofs","dm_verity":{{"hashtype":"sha256","hash":"{ROOT}","blocknum":16384,"blocksize":512,"hashsize":4096,"offset":8388608}}}}"#
    )
}

pub fn fake() -> FakeSystem {
    let f = FakeSystem::new();
    f.add_dir("/run");
    f.add_block_device(
        "/dev/vdb",
        DevNum {
            major: 254,
            minor: 16,
        },
        16 << 20,
    );
    f.add_block_device(
        "/dev/vdc",
        DevNum {
            major: 254,
            minor: 32,
        },
        1 << 20,
    );
    f.add_file("/images/layer.img", 16 << 20);
    f.add_char_device("/dev/null");
    f
}

/// The rules these tests run under: files allowed from /images, sources anywhere in /dev.
pub fn policy() -> Policy {
    Policy {
        mount_root: PathBuf::from("/run"),
        allowed_sources: ["/dev/*", "/images/*", "/proc/*", "/run", "/does/not/exist"]
            .map(String::from)
            .to_vec(),
        allow_files: true,
        ..Policy::default()
    }
}

pub fn storage(json: &str, mp: &str) -> Storage {
    Storage {
        options: vec![encode_option(&Volume::parse(json).unwrap().to_wire())],
        mount_point: mp.into(),
        ..Storage::default()
    }
}

pub fn apply_with(
    sys: &FakeSystem,
    policy: &Policy,
    json: &str,
    mp: &str,
) -> Result<Applied, ManagerError> {
    let plan = manager::prepare(sys, policy, &storage(json, mp))?;
    Ok(apply::apply(sys, &plan)?)
}

pub fn apply_json(sys: &FakeSystem, json: &str, mp: &str) -> Result<Applied, ManagerError> {
    apply_with(sys, &policy(), json, mp)
}

/// The apply error inside a manager error.
pub fn apply_err(e: ManagerError) -> ApplyError {
    match e {
        ManagerError::Apply(a) => a,
        other => panic!("not an apply error: {other}"),
    }
}
