//! What the host may ask for. The host is not trusted: [`Policy::authorize`] checks a parsed
//! request against every rule, once, before anything on the system is looked at — volume
//! verification, who vouches for the root hash (the allowlist and the root-hash signature,
//! `trust.rs`), filesystem types and options, allowed sources, the mount root — and returns
//! what was [`Authorized`], with the mount flags it allows. Pure once loaded: the trust files
//! are read at start ([`Policy::load_trust`]); the system-facing checks (what the source and
//! the mount point really are) belong to `resolve`.

mod config;
mod mount_options;
mod overlay;
mod pattern;
mod trust;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use config::{PolicyFileError, PolicyParseError};
pub use mount_options::{DEFAULT_FS_OPTIONS, NEVER_ALLOWED, mount_spec};
pub use overlay::{AuthorizedOverlay, Layer};
pub use pattern::matches as pattern_matches;
pub use trust::{INITDATA_PREFIX, InitdataDigest, Trust, TrustFileError, Vouched};

use crate::address::GuestAddress;
use crate::request::{Limits, VolumeRequest, is_normal_absolute};
use crate::system::MountSpec;
use crate::trust::{AllowlistError, RootHashSignature, SignatureError};
use crate::verity::{VerityOption, VerityParams};
use crate::volume::{VolumeType, truncate_for_error};

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
    /// When set, only these root hashes are mounted: `<alg>:<hex>`, or bare hex of the
    /// algorithm its length names (40 digits sha1, 64 sha256, 128 sha512), any case. Part of
    /// the allowlist, which it makes required (an empty list refuses every volume).
    pub trusted_root_hashes: Option<BTreeSet<String>>,
    /// A `verified-layers.toml` file: more trusted `(algorithm, root hash)` pairs, and its
    /// own `require_verified_layers`.
    pub verified_layers: Option<PathBuf>,
    /// A Kata initdata document (the TOML the agent writes): its `verified-layers.toml` key
    /// joins the allowlist; `trusted_signers` may name its keys (`initdata:<key>`).
    pub initdata: Option<PathBuf>,
    /// Verified layers are required: the allowlist fails closed (empty, it refuses every
    /// volume).
    pub require_verified_layers: bool,
    /// Trusted signer certificates: PEM files, or `initdata:<key>` (a PEM text in the
    /// initdata document).
    pub trusted_signers: Vec<String>,
    /// Every verified volume must carry a root-hash signature.
    pub require_signatures: bool,
    /// The kernel checks each volume's signature too: loaded as a `user` key of its own,
    /// named in that volume's table (`root_hash_sig_key_desc`).
    pub kernel_signatures: bool,
    /// What dm-verity does on corruption.
    pub corruption_mode: CorruptionMode,
    /// dm-verity `check_at_most_once`.
    pub check_at_most_once: bool,
    /// dm-verity `ignore_zero_blocks`.
    pub ignore_zero_blocks: bool,
    /// Filesystem types a volume may be mounted as.
    pub allowed_fs_types: Vec<String>,
    /// Filesystem options the host may pass.
    pub allowed_fs_options: Vec<String>,
    /// Longest volume option accepted (bytes).
    pub max_option_bytes: usize,
    /// Largest request accepted (bytes, all strings together).
    pub max_request_bytes: usize,
    /// Most options and driver options in one request.
    pub max_options: usize,
    /// Most volumes mounted at once.
    pub max_volumes: usize,
    /// How long to wait for a hot-plugged disk named by its guest address (`"10s"`,
    /// `"500ms"`).
    #[serde(with = "duration_text")]
    pub device_timeout: Duration,
    /// The trust material [`Policy::load_trust`] read (not a policy key). Until it matches
    /// the trust keys above, [`Policy::authorize`] refuses every volume.
    #[serde(skip)]
    pub trust: Trust,
}

/// A duration as the CLI writes it (`10`, `10s`, `500ms`), in policy files.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::address::parse_timeout(&text).map_err(serde::de::Error::custom)
    }
}

impl Default for Policy {
    fn default() -> Self {
        let limits = Limits::default();
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
            verified_layers: None,
            initdata: None,
            require_verified_layers: false,
            trusted_signers: Vec::new(),
            require_signatures: false,
            kernel_signatures: false,
            corruption_mode: CorruptionMode::Eio,
            check_at_most_once: false,
            ignore_zero_blocks: false,
            // erofs is built for untrusted images; crafted ext4 or xfs images are outside those
            // filesystems' threat model, so they need the policy's explicit consent.
            allowed_fs_types: vec!["erofs".to_owned()],
            allowed_fs_options: DEFAULT_FS_OPTIONS.iter().map(|s| (*s).to_owned()).collect(),
            max_option_bytes: limits.max_option_bytes,
            max_request_bytes: limits.max_request_bytes,
            max_options: limits.max_options,
            max_volumes: 1024,
            device_timeout: crate::address::DEFAULT_TIMEOUT,
            trust: Trust::default(),
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
    /// A volume without dm_verity, and unverified volumes are not allowed.
    #[error("Volume {0} without dm_verity is not allowed: unverified volumes are refused")]
    Unverified(VolumeType),
    /// A filesystem type the policy does not allow.
    #[error("Filesystem type {0:?} is not allowed")]
    FsType(String),
    /// The allowlist refuses the root hash (or a volume without dm_verity).
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// The root-hash signature is missing, does not verify, or no one is trusted to sign.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The policy's trust keys name files that were not loaded (or changed since).
    #[error(
        "The policy's trust material is not loaded (or its keys changed since): every volume is refused until Policy::load_trust reads it"
    )]
    TrustNotLoaded,
    /// A path an overlay's options would split or escape.
    #[error(
        "Overlay directory {0} contains ':', ',' or '\\', which overlay options split on or escape"
    )]
    OverlayPath(String),
    /// An overlay's lower layer is not one of our volumes.
    #[error(
        "Lower layer {0} is not a volume mounted here: a rootfs is built only from verified volumes (unverified ones need the policy's allow_unverified)"
    )]
    UnknownLayer(String),
    /// An overlay's lower layer is an unverified volume.
    #[error(
        "Lower layer {0} is an unverified volume: not allowed in a rootfs (policy allow_unverified)"
    )]
    UnverifiedLayer(String),
    /// A mount option the host may not pass.
    #[error("Invalid mount option {0:?}: not allowed")]
    MountOption(String),
}

/// A request the policy allows, with what the policy decided for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The volume's type.
    pub volume_type: VolumeType,
    /// The source: a path that matches an allowed pattern, or a guest address whose disk
    /// must match one once found ([`Policy::check_resolved_source`]).
    pub source: GuestAddress,
    /// The source patterns a disk found at a guest address must match.
    pub allowed_sources: Vec<String>,
    /// How long to wait for a disk at a guest address.
    pub device_timeout: Duration,
    /// A partition of the disk (its number) instead of the whole disk.
    pub partition: Option<u32>,
    /// Whether the source may be a regular file (through a loop device).
    pub allow_file: bool,
    /// The mount point (lexically inside the mount root).
    pub mount_point: PathBuf,
    /// The mount root the mount point must be reached from without symlinks.
    pub mount_root: PathBuf,
    /// dm-verity parameters (`None` only when unverified volumes are allowed).
    pub verity: Option<VerityParams>,
    /// Optional dm-verity arguments for the table.
    pub verity_options: Vec<VerityOption>,
    /// Why the root hash is trusted.
    pub vouched: Vouched,
    /// The signature the kernel checks when the table is loaded (`kernel_signatures`).
    pub kernel_signature: Option<RootHashSignature>,
    /// How to mount it: type, flags, allowlisted data options.
    pub mount: MountSpec,
}

impl Policy {
    /// The size limits a request is parsed with.
    pub fn limits(&self) -> Limits {
        Limits {
            max_option_bytes: self.max_option_bytes,
            max_request_bytes: self.max_request_bytes,
            max_options: self.max_options,
        }
    }

    /// Checks a volume request against every rule, with the time now for certificates.
    pub fn authorize(&self, req: &VolumeRequest) -> Result<Authorized, PolicyError> {
        self.authorize_at(req, SystemTime::now())
    }

    /// Checks a volume request against every rule; certificates are judged at `now`.
    pub fn authorize_at(
        &self,
        req: &VolumeRequest,
        now: SystemTime,
    ) -> Result<Authorized, PolicyError> {
        if !self.allowed_fs_types.contains(&req.fs_type) {
            return Err(PolicyError::FsType(truncate_for_error(&req.fs_type)));
        }
        if req.verity.is_none() && !self.allow_unverified {
            return Err(PolicyError::Unverified(req.volume_type));
        }
        let vouched = self.check_trust(req, now)?;
        if let GuestAddress::Path(p) = &req.source {
            self.check_source(&p.to_string_lossy())?;
        }
        self.check_mount_point(&req.mount_point)?;
        let allowed: Vec<&str> = self.allowed_fs_options.iter().map(String::as_str).collect();
        let mount = mount_spec(&req.fs_type, &req.options, &allowed)?;
        Ok(Authorized {
            volume_type: req.volume_type,
            source: req.source.clone(),
            allowed_sources: self.allowed_sources.clone(),
            device_timeout: self.device_timeout,
            partition: req.partition,
            allow_file: self.allow_files && matches!(req.source, GuestAddress::Path(_)),
            mount_point: req.mount_point.clone(),
            mount_root: self.mount_root.clone(),
            verity: req.verity.clone(),
            verity_options: self.verity_options(),
            kernel_signature: self.kernel_signature(req),
            vouched,
            mount,
        })
    }

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
        o
    }

    /// The source patterns applied to a disk found at a guest address (its `/dev` node).
    pub fn check_resolved_source(allowed: &[String], node: &str) -> Result<(), PolicyError> {
        if allowed.iter().any(|p| pattern::matches(p, node)) {
            return Ok(());
        }
        Err(PolicyError::Source {
            value: truncate_for_error(node),
            why: format!(
                "the disk found at its guest address matches none of the allowed sources ({}; policy allowed_sources, --allowed-source)",
                truncate_for_error(&allowed.join(" "))
            ),
        })
    }

    /// Checks a source path lexically: absolute, normal, matching an allowed pattern.
    pub fn check_source(&self, source: &str) -> Result<(), PolicyError> {
        let bad = |why: String| PolicyError::Source {
            value: truncate_for_error(source),
            why,
        };
        if !is_normal_absolute(std::path::Path::new(source)) {
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

    /// Checks a mount point lexically: strictly inside the mount root.
    pub fn check_mount_point(&self, mount_point: &std::path::Path) -> Result<(), PolicyError> {
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
