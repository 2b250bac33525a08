//! Planning: from a typed [`Volume`] and a resolved device to exactly what will be built — the
//! device-mapper name, the verity table, the mount. Pure: performs no syscall, so every rule
//! here is unit-tested without root.

use std::fmt::{self, Write as _};

use sha2::{Digest as _, Sha256};

use crate::verity::units::{BlockSize, Bytes};
use crate::verity::{VerityError, VerityOption, VerityParams, VerityTable, VerityTarget};
use crate::volume::{Volume, VolumeType};

/// Prefix of every device-mapper name this crate creates (how its devices are recognised).
pub const DM_NAME_PREFIX: &str = "kata-volume-";

/// Longest device-mapper name the kernel accepts, in bytes (`DM_NAME_LEN` - 1).
pub const DM_NAME_MAX: usize = 127;

/// A device-mapper device name: no `/`, no whitespace, shorter than 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DmName(String);

impl DmName {
    /// Checks a name against the kernel's rules.
    pub fn new(name: &str) -> Result<Self, PlanError> {
        let ok = !name.is_empty()
            && name.len() <= DM_NAME_MAX
            && name != "."
            && name != ".."
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'#' | b':')
            });
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(PlanError::DmName(name.chars().take(160).collect()))
        }
    }

    /// The deterministic name of a verity device: the root hash's first 16 hex digits (to
    /// recognise it) and 16 hex digits of a SHA-256 over the device's identity, every verity
    /// parameter and the optional arguments. Distinct devices or parameters never share a
    /// name; the same volume on the same device always gets the same one (whatever path,
    /// e.g. which loop device, it is reached by).
    pub fn for_verity(
        device_identity: &str,
        params: &VerityParams,
        options: &[VerityOption],
    ) -> Self {
        let mut h = Sha256::new();
        h.update(device_identity.as_bytes());
        h.update([0]);
        // Hashed as text, written straight into the hasher (no intermediate strings):
        // "<alg> <root> <salt> <data bs> <hash bs> <blocks> <offset> <options, space-separated>".
        let mut w = HashText(&mut h);
        let _ = write!(
            w,
            "{} {} {} {} {} {} {} ",
            params.algorithm(),
            params.root_hash(),
            params.salt(),
            params.data_block_size(),
            params.hash_block_size(),
            params.data_blocks(),
            params.hash_offset(),
        );
        for (i, o) in options.iter().enumerate() {
            let _ = write!(w, "{}{o}", if i == 0 { "" } else { " " });
        }
        // Issue 12: the hash type and the superblock are parameters too. Hashed only when not
        // the default, so every name given before they existed stays the same.
        if params.version() != crate::verity::VerityVersion::V1 {
            let _ = write!(w, " hash_type={}", params.version());
        }
        if params.has_superblock() {
            let _ = write!(w, " superblock");
        }
        let digest = h.finalize();
        let root = params.root_hash().as_bytes();
        let mut name = String::with_capacity(DM_NAME_PREFIX.len() + 33);
        name.push_str(DM_NAME_PREFIX);
        push_hex(&mut name, root.get(..8).unwrap_or(root));
        name.push('-');
        push_hex(&mut name, digest.get(..8).unwrap_or(&digest));
        Self(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `/dev/mapper/<name>`.
    pub fn node_path(&self) -> String {
        format!("/dev/mapper/{}", self.0)
    }

    /// Whether this crate made the name.
    pub fn is_ours(&self) -> bool {
        self.0.starts_with(DM_NAME_PREFIX)
    }
}

/// Feeds formatted text to a hasher.
struct HashText<'a>(&'a mut Sha256);

impl fmt::Write for HashText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// Appends lower-case hex of `bytes`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

impl fmt::Display for DmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A block device as resolved on the system (the facts planning checks against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Path to the block device node.
    pub path: String,
    /// Stable identity (e.g. `major:minor`, or the backing file's identity for a loop).
    pub identity: String,
    /// Size in bytes.
    pub size: Bytes,
    /// Logical block size.
    pub logical_block_size: Bytes,
}

/// Mount flags this crate sets (a safe subset of `MS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MountFlags {
    /// `ro`.
    pub read_only: bool,
    /// `nodev`.
    pub nodev: bool,
    /// `nosuid`.
    pub nosuid: bool,
    /// `noexec`.
    pub noexec: bool,
    /// `noatime`.
    pub noatime: bool,
    /// `nodiratime`.
    pub nodiratime: bool,
}

impl MountFlags {
    /// `ro,nodev,nosuid`: always set for verity volumes.
    pub const VERITY: MountFlags = MountFlags {
        read_only: true,
        nodev: true,
        nosuid: true,
        noexec: false,
        noatime: false,
        nodiratime: false,
    };
}

impl fmt::Display for MountFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.read_only, "ro"),
            (!self.read_only, "rw"),
            (self.nodev, "nodev"),
            (self.nosuid, "nosuid"),
            (self.noexec, "noexec"),
            (self.noatime, "noatime"),
            (self.nodiratime, "nodiratime"),
        ];
        let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
        f.write_str(&on.join(","))
    }
}

pub use crate::policy::DEFAULT_FS_OPTIONS;

/// Options that loosen or re-target a mount: refused whatever an allowlist says, because as
/// mount data the kernel's generic parser would act on some of them (`rw` clears `SB_RDONLY`).
const NEVER_ALLOWED: &[&str] = &[
    "rw", "dev", "exec", "suid", "async", "remount", "bind", "rbind", "move",
];

/// What to mount, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Filesystem type (`erofs` unless the volume says otherwise).
    pub fs_type: String,
    /// Flags.
    pub flags: MountFlags,
    /// Filesystem data options, comma-joined (allowlisted).
    pub data: String,
}

/// The verity device to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityPlan {
    /// Device-mapper name.
    pub name: DmName,
    /// The one-target table.
    pub table: VerityTable,
}

/// A full plan for one volume on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The volume's type.
    pub volume_type: VolumeType,
    /// The resolved device.
    pub device: BlockDevice,
    /// The verity device, when the volume has `dm_verity`.
    pub verity: Option<VerityPlan>,
    /// The mount.
    pub mount: MountSpec,
}

/// Why a volume cannot be planned on a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The type is not mounted by this crate.
    #[error(
        "Unsupported volume_type {0}: only direct_block, image_raw_block and layer_raw_block are mounted here"
    )]
    Unsupported(VolumeType),
    /// The device is smaller than the table or tree needs.
    #[error(
        "Device {device} is {size} bytes, too small: dm_verity needs {required} bytes (data and hash tree)"
    )]
    DeviceTooSmall {
        /// Device path.
        device: String,
        /// Its size.
        size: u64,
        /// What the parameters need.
        required: u64,
    },
    /// A block size below the device's logical block size.
    #[error(
        "Invalid dm_verity.{field} {size}: smaller than the logical block size {logical} of {device}"
    )]
    BelowLogicalBlock {
        /// `blocksize` or `hashsize`.
        field: &'static str,
        /// The block size.
        size: BlockSize,
        /// The device's logical block size.
        logical: u64,
        /// Device path.
        device: String,
    },
    /// A mount option the host may not pass.
    #[error("Invalid mount option {0:?}: not allowed")]
    MountOption(String),
    /// A name the kernel would refuse.
    #[error("Invalid device-mapper name {0:?}: must be 1 to 127 letters, digits or -_.+#:")]
    DmName(String),
    /// Table construction failed.
    #[error(transparent)]
    Verity(#[from] VerityError),
}

/// The verity table for `params` with data and hash on `device_path` (used by `inspect`,
/// which may have no device to check against).
pub fn verity_plan(
    params: &VerityParams,
    device_path: &str,
    device_identity: &str,
    options: Vec<VerityOption>,
) -> Result<VerityPlan, PlanError> {
    let name = DmName::for_verity(device_identity, params, &options);
    let target = VerityTarget::new(params, device_path, options)?;
    Ok(VerityPlan {
        name,
        table: VerityTable::new(target)?,
    })
}

/// Checks that `device` can hold what `params` describe.
pub fn check_device(params: &VerityParams, device: &BlockDevice) -> Result<(), PlanError> {
    for (field, size) in [
        ("blocksize", params.data_block_size()),
        ("hashsize", params.hash_block_size()),
    ] {
        if size.bytes() < device.logical_block_size.0 {
            return Err(PlanError::BelowLogicalBlock {
                field,
                size,
                logical: device.logical_block_size.0,
                device: device.path.clone(),
            });
        }
    }
    let required = params.required_device_size();
    if device.size < required {
        return Err(PlanError::DeviceTooSmall {
            device: device.path.clone(),
            size: device.size.0,
            required: required.0,
        });
    }
    Ok(())
}

/// Mount flags and data from the volume's options: flags may only tighten; data options
/// must be in `allowed`.
pub fn mount_options(
    requested: &[String],
    base: MountFlags,
    allowed: &[&str],
) -> Result<(MountFlags, String), PlanError> {
    let mut flags = base;
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
            other => {
                return Err(PlanError::MountOption(crate::volume::truncate_for_error(
                    other,
                )));
            }
        }
    }
    Ok((flags, data.join(",")))
}

/// Plans a volume on a resolved device.
pub fn plan(
    volume: &Volume,
    device: BlockDevice,
    verity_options: Vec<VerityOption>,
    allowed_fs_options: &[&str],
) -> Result<Plan, PlanError> {
    let volume_type = volume.volume_type();
    let (fs_type, options) = match volume {
        Volume::RawBlock(r) => (r.fs_type.clone(), &r.options),
        Volume::DirectBlock(d) => (d.fs_type.clone(), &d.options),
        Volume::Nydus(_) | Volume::GuestPull(_) => return Err(PlanError::Unsupported(volume_type)),
    };
    let verity = match volume.verity() {
        Some(params) => {
            check_device(params, &device)?;
            Some(verity_plan(
                params,
                &device.path,
                &device.identity,
                verity_options,
            )?)
        }
        None => None,
    };
    // Verified volumes are always ro,nodev,nosuid; a direct block device is mounted
    // read-only and nodev,nosuid too unless the host asked for nothing else — it may not
    // loosen them in either case.
    let (flags, data) = mount_options(options, MountFlags::VERITY, allowed_fs_options)?;
    Ok(Plan {
        volume_type,
        device,
        verity,
        mount: MountSpec {
            fs_type,
            flags,
            data,
        },
    })
}
