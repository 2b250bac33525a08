//! The kernel's vocabulary as types: device numbers, device-mapper names (with the kernel's
//! rules), and the mount flags this crate may set. Pure data; no syscalls.

use std::fmt;

/// Prefix of every device-mapper name this crate creates (how its devices are recognised).
pub const DM_NAME_PREFIX: &str = "kata-volume-";

/// Longest device-mapper name the kernel accepts, in bytes (`DM_NAME_LEN` - 1).
pub const DM_NAME_MAX: usize = 127;

/// A device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl std::str::FromStr for DevNum {
    type Err = std::num::ParseIntError;

    /// `<major>:<minor>`, as the kernel writes device numbers in tables and `dev` files.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s.split_once(':').unwrap_or((s, ""));
        Ok(Self {
            major: major.parse()?,
            minor: minor.parse()?,
        })
    }
}

impl serde::Serialize for DevNum {
    /// `major:minor`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DevNum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not <major>:<minor>")))
    }
}

/// A device-mapper device name: no `/`, no whitespace, shorter than 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DmName(String);

/// A name the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid device-mapper name {0:?}: must be 1 to 127 letters, digits or -_.+#:")]
pub struct DmNameError(pub String);

impl DmName {
    /// Checks a name against the kernel's rules.
    pub fn new(name: &str) -> Result<Self, DmNameError> {
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
            Err(DmNameError(name.chars().take(160).collect()))
        }
    }

    /// A name this crate built from its prefix, hex digits and `-` only (always valid).
    pub(crate) fn generated(name: String) -> Self {
        debug_assert!(Self::new(&name).is_ok(), "{name}");
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

impl fmt::Display for DmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for DmName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DmName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
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
    /// `ro,nodev,nosuid`: always set for volumes.
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

/// What to mount, how: the filesystem type, the flags and the filesystem's own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Filesystem type.
    pub fs_type: String,
    /// Flags.
    pub flags: MountFlags,
    /// Filesystem data options, comma-joined (allowlisted).
    pub data: String,
}
