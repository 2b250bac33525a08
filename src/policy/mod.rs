//! What the host may ask for. The host is not trusted: every request is checked against this
//! policy before any device is touched — mount root, allowed sources, unverified volumes,
//! trusted root hashes, filesystem options, sizes. Checks here are pure (lexical); the
//! symlink-safe walk of the mount point happens in `apply`, which can look at the system.

mod config;
mod pattern;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

pub use config::PolicyFileError;
pub use pattern::matches as pattern_matches;

use crate::verity::VerityOption;
use crate::volume::{Volume, truncate_for_error};

/// Filesystem-specific options a host may pass (everything else is refused).
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

/// What dm-verity does when it finds a corrupted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptionMode {
    /// Return `EIO` to the reader (the default).
    #[default]
    Eio,
    /// Restart the machine.
    Restart,
    /// Panic the kernel.
    Panic,
}

/// The guest's policy for host requests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Every mount point must resolve inside this directory.
    pub mount_root: PathBuf,
    /// Source path patterns (`*` matches within one path component, `?` one character).
    pub allowed_sources: Vec<String>,
    /// Whether a regular file may be a source (through a read-only loop device).
    pub allow_files: bool,
    /// Whether volumes without `dm_verity` (raw or direct block) may be mounted.
    pub allow_unverified: bool,
    /// When set, only these root hashes (hex, any case) are mounted.
    pub trusted_root_hashes: Option<BTreeSet<String>>,
    /// What dm-verity does on corruption.
    pub corruption_mode: CorruptionMode,
    /// dm-verity `check_at_most_once`.
    pub check_at_most_once: bool,
    /// dm-verity `ignore_zero_blocks`.
    pub ignore_zero_blocks: bool,
    /// dm-verity `root_hash_sig_key_desc <key>`: the root hash must be signed by this key.
    pub root_hash_sig_key_desc: Option<String>,
    /// Filesystem types a volume may be mounted as.
    pub allowed_fs_types: Vec<String>,
    /// Filesystem options the host may pass.
    pub allowed_fs_options: Vec<String>,
    /// Longest volume option accepted (bytes).
    pub max_option_bytes: usize,
    /// Largest request accepted (bytes, all strings together).
    pub max_request_bytes: usize,
    /// Most volumes mounted at once.
    pub max_volumes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mount_root: PathBuf::from("/run/kata-containers"),
            allowed_sources: [
                "/dev/vd*",
                "/dev/sd*",
                "/dev/pmem*",
                "/dev/nvme*",
                "/dev/xvd*",
            ]
            .map(String::from)
            .to_vec(),
            allow_files: false,
            allow_unverified: false,
            trusted_root_hashes: None,
            corruption_mode: CorruptionMode::Eio,
            check_at_most_once: false,
            ignore_zero_blocks: false,
            root_hash_sig_key_desc: None,
            allowed_fs_types: ["erofs", "ext4", "xfs"].map(String::from).to_vec(),
            allowed_fs_options: DEFAULT_FS_OPTIONS.iter().map(|s| (*s).to_owned()).collect(),
            max_option_bytes: 64 * 1024,
            max_request_bytes: 256 * 1024,
            max_volumes: 1024,
        }
    }
}

/// Why policy refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The mount point is not strictly inside the mount root.
    #[error("Mount point {mount_point:?} must lie strictly inside the mount root {root:?}")]
    OutsideRoot {
        /// The mount point.
        mount_point: String,
        /// The root.
        root: PathBuf,
    },
    /// The source is not a normal absolute path, or matches no allowed pattern.
    #[error("Source {value:?} is not allowed: {why}")]
    Source {
        /// The source.
        value: String,
        /// Why.
        why: String,
    },
    /// Unverified raw block volume.
    #[error("Volume {0} without dm_verity is not allowed")]
    Unverified(String),
    /// A filesystem type the policy does not allow.
    #[error("Filesystem type {0:?} is not allowed")]
    FsType(String),
    /// Root hash not in the trusted set.
    #[error("Root hash {0} is not trusted")]
    UntrustedRootHash(String),
    /// Too large.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl Policy {
    /// The optional dm-verity arguments this policy asks for.
    pub fn verity_options(&self) -> Vec<VerityOption> {
        let mut o = Vec::new();
        match self.corruption_mode {
            CorruptionMode::Eio => {}
            CorruptionMode::Restart => o.push(VerityOption::RestartOnCorruption),
            CorruptionMode::Panic => o.push(VerityOption::PanicOnCorruption),
        }
        if self.ignore_zero_blocks {
            o.push(VerityOption::IgnoreZeroBlocks);
        }
        if self.check_at_most_once {
            o.push(VerityOption::CheckAtMostOnce);
        }
        if let Some(k) = &self.root_hash_sig_key_desc {
            o.push(VerityOption::RootHashSigKeyDesc(k.clone()));
        }
        o
    }

    /// Checks sizes of a request's strings.
    pub fn check_sizes(
        &self,
        option_bytes: usize,
        request_bytes: usize,
    ) -> Result<(), PolicyError> {
        if option_bytes > self.max_option_bytes {
            return Err(PolicyError::TooLarge {
                what: "The volume option",
                size: option_bytes,
                limit: self.max_option_bytes,
            });
        }
        if request_bytes > self.max_request_bytes {
            return Err(PolicyError::TooLarge {
                what: "The request",
                size: request_bytes,
                limit: self.max_request_bytes,
            });
        }
        Ok(())
    }

    /// Checks a volume against the policy (verification, trusted hashes).
    pub fn check_volume(&self, volume: &Volume) -> Result<(), PolicyError> {
        let verity = volume.verity();
        // Without dm_verity nothing checks what the host's disk holds: refused for raw and
        // direct block volumes alike unless the policy allows unverified volumes.
        let mountable = matches!(volume, Volume::RawBlock(_) | Volume::DirectBlock(_));
        let fs_type = match volume {
            Volume::RawBlock(r) => Some(&r.fs_type),
            Volume::DirectBlock(d) if !d.fs_type.is_empty() => Some(&d.fs_type),
            _ => None,
        };
        if let Some(t) = fs_type
            && !self.allowed_fs_types.iter().any(|a| a == t)
        {
            return Err(PolicyError::FsType(truncate_for_error(t)));
        }
        if verity.is_none() && mountable && !self.allow_unverified {
            return Err(PolicyError::Unverified(volume.volume_type().to_string()));
        }
        if let (Some(trusted), Some(p)) = (&self.trusted_root_hashes, verity) {
            let hash = p.root_hash().to_hex();
            if !trusted.iter().any(|t| t.eq_ignore_ascii_case(&hash)) {
                return Err(PolicyError::UntrustedRootHash(hash));
            }
        }
        if let (Some(trusted), None) = (&self.trusted_root_hashes, verity)
            && !trusted.is_empty()
            && !self.allow_unverified
        {
            return Err(PolicyError::Unverified(volume.volume_type().to_string()));
        }
        Ok(())
    }

    /// Checks a source path lexically: absolute, normal, matching an allowed pattern.
    pub fn check_source(&self, source: &str) -> Result<(), PolicyError> {
        let bad = |why: String| PolicyError::Source {
            value: truncate_for_error(source),
            why,
        };
        if !is_normal_absolute(Path::new(source)) {
            return Err(bad(
                "it must be an absolute path without '.', '..' or repeated '/'".into(),
            ));
        }
        if self
            .allowed_sources
            .iter()
            .any(|p| pattern::matches(p, source))
        {
            Ok(())
        } else {
            let patterns = truncate_for_error(&self.allowed_sources.join(" "));
            Err(bad(format!(
                "it matches none of the allowed sources ({patterns}; policy allowed_sources, --allowed-source)"
            )))
        }
    }

    /// Checks a mount point lexically: absolute, normal, strictly inside the mount root.
    pub fn check_mount_point(&self, mount_point: &Path) -> Result<(), PolicyError> {
        let inside = is_normal_absolute(mount_point)
            && mount_point.starts_with(&self.mount_root)
            && mount_point != self.mount_root;
        if inside {
            Ok(())
        } else {
            Err(PolicyError::OutsideRoot {
                mount_point: truncate_for_error(&mount_point.to_string_lossy()),
                root: self.mount_root.clone(),
            })
        }
    }
}

/// Absolute, and made only of normal components (no `.`, `..`, repeated or trailing `/`).
pub fn is_normal_absolute(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
        && !s.contains('\0')
        && p.components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)))
        && !s.split('/').any(|c| c == "." || c == "..")
}
