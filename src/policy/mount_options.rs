//! Mount options from the host: flags may only tighten the mount, and filesystem options
//! must be allowlisted. Pure.

use super::PolicyError;
use crate::system::{MountFlags, MountSpec};
use crate::volume::truncate_for_error;

/// Filesystem-specific options a host may pass by default (everything else is refused).
pub const DEFAULT_FS_OPTIONS: &[&str] = &[
    "acl",
    "noacl",
    "user_xattr",
    "nouser_xattr",
    "cache_strategy=disabled",
    "cache_strategy=readahead",
    "cache_strategy=readaround",
    "dax",
    "dax=always",
    "dax=never",
    "errors=continue",
    "errors=remount-ro",
];

/// Options that loosen or re-target a mount: refused whatever an allowlist says, because as
/// mount data the kernel's generic parser would act on some of them (`rw` clears `SB_RDONLY`).
pub const NEVER_ALLOWED: &[&str] = &[
    "rw", "dev", "exec", "suid", "async", "remount", "bind", "rbind", "move",
];

/// The mount of `fs_type` with `requested` options: always `ro,nodev,nosuid`; the flags
/// `ro`, `nodev`, `nosuid`, `noexec`, `noatime`, `nodiratime` may be added; any other option
/// must be in `allowed` (and never in [`NEVER_ALLOWED`]).
pub fn mount_spec(
    fs_type: &str,
    requested: &[String],
    allowed: &[&str],
) -> Result<MountSpec, PolicyError> {
    let mut flags = MountFlags::VERITY;
    let mut data: Vec<&str> = Vec::new();
    for o in requested {
        match o.as_str() {
            "ro" => flags.read_only = true,
            "nodev" => flags.nodev = true,
            "nosuid" => flags.nosuid = true,
            "noexec" => flags.noexec = true,
            "noatime" => flags.noatime = true,
            "nodiratime" => flags.nodiratime = true,
            "" | "defaults" => {}
            other if allowed.contains(&other) && !NEVER_ALLOWED.contains(&other) => {
                if !data.contains(&other) {
                    data.push(other);
                }
            }
            other => return Err(PolicyError::MountOption(truncate_for_error(other))),
        }
    }
    Ok(MountSpec {
        fs_type: fs_type.to_owned(),
        flags,
        data: data.join(","),
    })
}
