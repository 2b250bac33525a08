//! The typed volume: what a [`KataVirtualVolume`] means once every rule has been checked.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::VolumeError;
use super::wire::{
    DirectAssignedVolume, DmVerityInfo, ImagePullVolume, KataVirtualVolume, NydusImageVolume,
};
use crate::verity::{RawVerity, Salt, VerityFormat, VerityParams, VerityVersion};

/// Longest source path accepted (Linux `PATH_MAX`).
const MAX_PATH: usize = 4096;
/// Longest filesystem type name accepted.
const MAX_FS_TYPE: usize = 64;
/// Longest single mount option accepted.
const MAX_MOUNT_OPTION: usize = 4096;

/// The eight volume types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumeType {
    /// `direct_block`: a block device mounted as is.
    DirectBlock,
    /// `image_raw_block`: a whole image as a raw (erofs) block device.
    ImageRawBlock,
    /// `layer_raw_block`: one layer as a raw (erofs) block device.
    LayerRawBlock,
    /// `image_nydus_block`.
    ImageNydusBlock,
    /// `layer_nydus_block`.
    LayerNydusBlock,
    /// `image_nydus_fs`.
    ImageNydusFs,
    /// `layer_nydus_fs`.
    LayerNydusFs,
    /// `image_guest_pull`: the guest pulls the image itself.
    ImageGuestPull,
}

impl VolumeType {
    /// All types, in contract order.
    pub const ALL: [VolumeType; 8] = [
        Self::DirectBlock,
        Self::ImageRawBlock,
        Self::LayerRawBlock,
        Self::ImageNydusBlock,
        Self::LayerNydusBlock,
        Self::ImageNydusFs,
        Self::LayerNydusFs,
        Self::ImageGuestPull,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DirectBlock => "direct_block",
            Self::ImageRawBlock => "image_raw_block",
            Self::LayerRawBlock => "layer_raw_block",
            Self::ImageNydusBlock => "image_nydus_block",
            Self::LayerNydusBlock => "layer_nydus_block",
            Self::ImageNydusFs => "image_nydus_fs",
            Self::LayerNydusFs => "layer_nydus_fs",
            Self::ImageGuestPull => "image_guest_pull",
        }
    }
}

impl fmt::Display for VolumeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VolumeType {
    type Err = VolumeError;

    /// Exact, case-sensitive: the host writes these constants verbatim.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| VolumeError::UnknownType(truncate(s)))
    }
}

impl serde::Serialize for VolumeType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for VolumeType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a volume is a whole image or one layer of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A whole image.
    Image,
    /// One layer.
    Layer,
}

/// A raw (erofs) block device, with or without dm-verity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    /// Image or layer.
    pub scope: Scope,
    /// The block device or file (non-empty, no NUL).
    pub source: String,
    /// Filesystem type; `erofs` when the volume names none.
    pub fs_type: String,
    /// Mount options from the volume (checked syntactically; filtered by policy later).
    pub options: Vec<String>,
    /// dm-verity parameters, if the volume is verified.
    pub verity: Option<VerityParams>,
    /// `dm_verity.root_hash_sig` as sent (base64 of a detached signature or of a
    /// `.verity.sig` envelope), `None` when absent or empty: decoded by `request`, verified
    /// by `policy`.
    pub root_hash_sig: Option<String>,
}

/// A block device mounted directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBlock {
    /// The block device.
    pub source: String,
    /// Filesystem type (may be empty: the kernel's choice is not made for the host).
    pub fs_type: String,
    /// Mount options.
    pub options: Vec<String>,
    /// `direct_volume.metadata`.
    pub metadata: BTreeMap<String, String>,
    /// dm-verity parameters, if given.
    pub verity: Option<VerityParams>,
    /// `dm_verity.root_hash_sig` as sent (base64 of a detached signature or of a
    /// `.verity.sig` envelope), `None` when absent or empty: decoded by `request`, verified
    /// by `policy`.
    pub root_hash_sig: Option<String>,
}

/// A nydus volume (block or fs flavour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NydusVolume {
    /// Which of the four nydus types.
    pub volume_type: VolumeType,
    /// Source.
    pub source: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount options.
    pub options: Vec<String>,
    /// `nydus_image.config`.
    pub config: String,
    /// `nydus_image.snapshot_dir`.
    pub snapshot_dir: String,
    /// dm-verity parameters, if given.
    pub verity: Option<VerityParams>,
    /// `dm_verity.root_hash_sig` as sent (base64 of a detached signature or of a
    /// `.verity.sig` envelope), `None` when absent or empty: decoded by `request`, verified
    /// by `policy`.
    pub root_hash_sig: Option<String>,
}

/// An image the guest pulls itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPull {
    /// `image_pull.metadata` (present; may be empty, as the host allows).
    pub metadata: BTreeMap<String, String>,
}

/// A validated volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// `direct_block`.
    DirectBlock(DirectBlock),
    /// `image_raw_block` / `layer_raw_block`.
    RawBlock(RawBlock),
    /// The four nydus types.
    Nydus(NydusVolume),
    /// `image_guest_pull`.
    GuestPull(GuestPull),
}

impl Volume {
    /// Decodes (option, base64 or JSON) and validates in one step.
    pub fn parse(input: &str) -> Result<Self, VolumeError> {
        Self::validate(super::decode(input)?)
    }

    /// Validates a wire volume.
    pub fn from_wire(w: &KataVirtualVolume) -> Result<Self, VolumeError> {
        Self::validate(w.clone())
    }

    /// Validates a wire volume, moving its strings into the typed one (no copies).
    fn validate(mut w: KataVirtualVolume) -> Result<Self, VolumeError> {
        let volume_type: VolumeType = w.volume_type.parse()?;
        let verity = w.dm_verity.as_ref().map(verity_params).transpose()?;
        let root_hash_sig = w
            .dm_verity
            .as_mut()
            .map(|d| std::mem::take(&mut d.root_hash_sig))
            .filter(|s| !s.is_empty());
        check_fs_type(&w.fs_type)?;
        check_options(&w.options)?;
        let KataVirtualVolume {
            source,
            fs_type,
            options,
            direct_volume,
            image_pull,
            nydus_image,
            ..
        } = w;
        let source = || need_source(volume_type, source);
        let missing = |field| VolumeError::Missing { volume_type, field };
        Ok(match volume_type {
            VolumeType::DirectBlock => Volume::DirectBlock(DirectBlock {
                source: source()?,
                fs_type,
                options,
                // As the host's validation: a nil map (absent, or null) is invalid, `{}` is
                // valid.
                metadata: direct_volume
                    .ok_or(missing("direct_volume"))?
                    .metadata
                    .ok_or(missing("direct_volume.metadata"))?,
                verity,
                root_hash_sig,
            }),
            VolumeType::ImageRawBlock | VolumeType::LayerRawBlock => Volume::RawBlock(RawBlock {
                scope: if volume_type == VolumeType::ImageRawBlock {
                    Scope::Image
                } else {
                    Scope::Layer
                },
                source: source()?,
                fs_type: if fs_type.is_empty() {
                    "erofs".to_owned()
                } else {
                    fs_type
                },
                options,
                verity,
                root_hash_sig,
            }),
            VolumeType::ImageNydusBlock
            | VolumeType::LayerNydusBlock
            | VolumeType::ImageNydusFs
            | VolumeType::LayerNydusFs => {
                let source = source()?;
                let nydus = nydus_image
                    .filter(|n| !n.config.is_empty() || !n.snapshot_dir.is_empty())
                    .ok_or(missing("nydus_image.config or nydus_image.snapshot_dir"))?;
                Volume::Nydus(NydusVolume {
                    volume_type,
                    source,
                    fs_type,
                    options,
                    config: nydus.config,
                    snapshot_dir: nydus.snapshot_dir,
                    verity,
                    root_hash_sig,
                })
            }
            VolumeType::ImageGuestPull => Volume::GuestPull(GuestPull {
                metadata: image_pull
                    .and_then(|p| p.metadata)
                    .ok_or(missing("image_pull.metadata"))?,
            }),
        })
    }

    /// The volume's type.
    pub fn volume_type(&self) -> VolumeType {
        match self {
            Volume::DirectBlock(_) => VolumeType::DirectBlock,
            Volume::RawBlock(r) => match r.scope {
                Scope::Image => VolumeType::ImageRawBlock,
                Scope::Layer => VolumeType::LayerRawBlock,
            },
            Volume::Nydus(n) => n.volume_type,
            Volume::GuestPull(_) => VolumeType::ImageGuestPull,
        }
    }

    /// The source, if the type has one.
    pub fn source(&self) -> Option<&str> {
        match self {
            Volume::DirectBlock(d) => Some(&d.source),
            Volume::RawBlock(r) => Some(&r.source),
            Volume::Nydus(n) => Some(&n.source),
            Volume::GuestPull(_) => None,
        }
    }

    /// The filesystem type, for the types that name one (may be empty for `direct_block`).
    pub fn fs_type(&self) -> Option<&str> {
        match self {
            Volume::DirectBlock(d) => Some(&d.fs_type),
            Volume::RawBlock(r) => Some(&r.fs_type),
            Volume::Nydus(n) => Some(&n.fs_type),
            Volume::GuestPull(_) => None,
        }
    }

    /// The volume's own mount options.
    pub fn options(&self) -> &[String] {
        match self {
            Volume::DirectBlock(d) => &d.options,
            Volume::RawBlock(r) => &r.options,
            Volume::Nydus(n) => &n.options,
            Volume::GuestPull(_) => &[],
        }
    }

    /// The dm-verity parameters, if any.
    pub fn verity(&self) -> Option<&VerityParams> {
        match self {
            Volume::DirectBlock(d) => d.verity.as_ref(),
            Volume::RawBlock(r) => r.verity.as_ref(),
            Volume::Nydus(n) => n.verity.as_ref(),
            Volume::GuestPull(_) => None,
        }
    }

    /// The root hash's signature as sent (`dm_verity.root_hash_sig`), if any.
    pub fn root_hash_sig(&self) -> Option<&str> {
        match self {
            Volume::DirectBlock(d) => d.root_hash_sig.as_deref(),
            Volume::RawBlock(r) => r.root_hash_sig.as_deref(),
            Volume::Nydus(n) => n.root_hash_sig.as_deref(),
            Volume::GuestPull(_) => None,
        }
    }

    /// Back to the wire struct (what the host would have sent for this volume).
    pub fn to_wire(&self) -> KataVirtualVolume {
        let mut w = KataVirtualVolume {
            volume_type: self.volume_type().as_str().to_owned(),
            dm_verity: self.verity().map(|p| DmVerityInfo {
                root_hash_sig: self.root_hash_sig().unwrap_or_default().to_owned(),
                ..verity_info(p)
            }),
            ..Default::default()
        };
        match self {
            Volume::DirectBlock(d) => {
                (w.source, w.fs_type, w.options) =
                    (d.source.clone(), d.fs_type.clone(), d.options.clone());
                w.direct_volume = Some(DirectAssignedVolume {
                    metadata: Some(d.metadata.clone()),
                });
            }
            Volume::RawBlock(r) => {
                (w.source, w.fs_type, w.options) =
                    (r.source.clone(), r.fs_type.clone(), r.options.clone());
            }
            Volume::Nydus(n) => {
                (w.source, w.fs_type, w.options) =
                    (n.source.clone(), n.fs_type.clone(), n.options.clone());
                w.nydus_image = Some(NydusImageVolume {
                    config: n.config.clone(),
                    snapshot_dir: n.snapshot_dir.clone(),
                });
            }
            Volume::GuestPull(g) => {
                w.image_pull = Some(ImagePullVolume {
                    metadata: Some(g.metadata.clone()),
                });
            }
        }
        w
    }
}

/// Checks a `dm_verity` block: the six numbers, plus the format — `hash_type` (absent: 1),
/// `salt` (`""`/`-`: none) and `no_superblock` (absent: true, the seed producers' meaning).
pub(crate) fn verity_params(info: &DmVerityInfo) -> Result<VerityParams, VolumeError> {
    // The contract (the host's own check) knows sha256 and sha1 only; the engine's sha512
    // is for images made with `kata-volume format`, not for volumes.
    if !info.hashtype.eq_ignore_ascii_case("sha256") && !info.hashtype.eq_ignore_ascii_case("sha1")
    {
        return Err(crate::verity::VerityError::HashType(truncate(&info.hashtype)).into());
    }
    let format = VerityFormat {
        version: VerityVersion::from_number(info.hash_type.map_or(1, u64::from))?,
        salt: Salt::parse(&info.salt)?,
        superblock: !info.no_superblock.unwrap_or(true),
    };
    Ok(VerityParams::with_format(
        &RawVerity {
            hashtype: &info.hashtype,
            hash: &info.hash,
            blocknum: info.blocknum,
            blocksize: info.blocksize,
            hashsize: info.hashsize,
            offset: info.offset,
        },
        format,
    )?)
}

/// The wire form of checked parameters (hash type, hash and salt in lower case). Fields at
/// their defaults — no salt, version 1, no superblock — are left absent, so a volume of the
/// seed producers' kind gives their six-field JSON.
pub fn verity_info(p: &VerityParams) -> DmVerityInfo {
    DmVerityInfo {
        hashtype: p.algorithm().name().to_owned(),
        hash: p.root_hash().to_hex(),
        blocknum: p.data_blocks(),
        blocksize: p.data_block_size().bytes(),
        hashsize: p.hash_block_size().bytes(),
        offset: p.hash_offset().0,
        salt: if p.salt().is_empty() {
            String::new()
        } else {
            p.salt().to_string()
        },
        hash_type: (p.version() != VerityVersion::V1).then(|| p.version().number()),
        no_superblock: p.has_superblock().then_some(false),
        root_hash_sig: String::new(),
    }
}

/// A path for an error message: shortened, quoted, anything unprintable escaped.
pub fn shown(path: &std::path::Path) -> String {
    format!("{:?}", truncate(&path.to_string_lossy()))
}

/// Shortens a (possibly hostile, possibly huge) value for an error message.
pub fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A source the type requires: present and well-formed.
fn need_source(volume_type: VolumeType, source: String) -> Result<String, VolumeError> {
    check_source(&source)?;
    if source.is_empty() {
        return Err(VolumeError::Missing {
            volume_type,
            field: "source",
        });
    }
    Ok(source)
}

fn check_source(source: &str) -> Result<(), VolumeError> {
    let why = if source.len() > MAX_PATH {
        "longer than 4096 bytes"
    } else if source.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(VolumeError::Invalid {
        field: "source",
        value: truncate(source),
        why,
    })
}

fn check_fs_type(fs_type: &str) -> Result<(), VolumeError> {
    let ok = fs_type.len() <= MAX_FS_TYPE
        && fs_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        return Ok(());
    }
    Err(VolumeError::Invalid {
        field: "fs_type",
        value: truncate(fs_type),
        why: "must be at most 64 letters, digits, '.', '_' or '-'",
    })
}

fn check_options(options: &[String]) -> Result<(), VolumeError> {
    for o in options {
        let why = if o.len() > MAX_MOUNT_OPTION {
            "longer than 4096 bytes"
        } else if o.contains('\0') {
            "contains a NUL byte"
        } else if o.contains(',') {
            "contains ',': give each mount option as its own list item"
        } else {
            continue;
        };
        return Err(VolumeError::Invalid {
            field: "options",
            value: truncate(o),
            why,
        });
    }
    Ok(())
}
