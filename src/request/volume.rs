//! The shapes that mount one block volume: a virtual volume (the `io.katacontainers.volume=`
//! option) and the CCv0 runtime's `dmverity` driver (`verity_info=<DmVerityInfo JSON>`). Both
//! give a [`VolumeRequest`].

use std::path::PathBuf;

use super::signature::{ROOT_HASH_SIG_OPTION, signature};
use super::{Limits, RequestError, Storage, driver_option};
use crate::address::{GuestAddress, SourceType};
use crate::trust::RootHashSignature;
use crate::verity::VerityParams;
use crate::volume::{self, DmVerityInfo, Volume, VolumeType, truncate_for_error};

/// One block volume to mount: everything downstream needs, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The volume's type (`direct_block`, `image_raw_block` or `layer_raw_block`).
    pub volume_type: VolumeType,
    /// The disk: a path (checked by the policy), or a guest address on a bus.
    pub source: GuestAddress,
    /// Filesystem type (never empty).
    pub fs_type: String,
    /// Mount options asked for: the volume's, then the request's own (without the volume
    /// option). Not yet checked against any allowlist.
    pub options: Vec<String>,
    /// dm-verity parameters; `None` for an unverified volume.
    pub verity: Option<VerityParams>,
    /// The root hash's signature (decoded, not verified: that is `policy`'s), from the
    /// volume's `dm_verity.root_hash_sig` or the driver option
    /// `io.katacontainers.volume.root_hash_sig=`; only with `verity`.
    pub root_hash_sig: Option<RootHashSignature>,
    /// Where to mount: absolute, without `.`, `..` or empty components.
    pub mount_point: PathBuf,
    /// A partition of the disk (its number) instead of the whole disk.
    pub partition: Option<u32>,
}

/// The `source_type=` driver option, else the bus the Kata block driver implies.
fn source_type(storage: &Storage) -> Result<Option<String>, RequestError> {
    Ok(match driver_option(storage, "source_type")? {
        Some(t) => Some(t.to_owned()),
        None => SourceType::from_driver(&storage.driver).map(|t| t.as_str().to_owned()),
    })
}

/// Where the disk is: `source` under `source_type` (a plain path stays as given: the policy
/// judges it).
fn address(source_type: Option<&str>, source: &str) -> Result<GuestAddress, RequestError> {
    match source_type {
        None => Ok(GuestAddress::Path(PathBuf::from(source))),
        Some(t) => Ok(GuestAddress::parse(Some(t), source)?),
    }
}

/// The volume's mount options, then the request's own (tightening or allowlisted: `policy`).
fn options(volume_options: Vec<String>, storage: &Storage) -> Vec<String> {
    let mut options = volume_options;
    options.extend(
        storage
            .options
            .iter()
            .filter(|o| !o.starts_with(volume::VOLUME_OPTION_PREFIX))
            .cloned(),
    );
    options
}

/// Shape 1: the `io.katacontainers.volume=` option.
pub(super) fn virtual_volume(
    storage: &Storage,
    limits: &Limits,
    mount_point: PathBuf,
) -> Result<VolumeRequest, RequestError> {
    let option = volume_option(storage)?;
    if option.len() > limits.max_option_bytes {
        return Err(RequestError::TooLarge {
            what: "The volume option",
            size: option.len(),
            limit: limits.max_option_bytes,
        });
    }
    let volume = Volume::parse(option)?;
    if !storage.fstype.is_empty() && volume.fs_type() != Some(storage.fstype.as_str()) {
        return Err(RequestError::FsTypeMismatch {
            fstype: truncate_for_error(&storage.fstype),
            volume: volume.fs_type().unwrap_or_default().to_owned(),
        });
    }
    let volume_type = volume.volume_type();
    let (source, fs_type, volume_options, verity, sig) = match volume {
        Volume::RawBlock(r) => (r.source, r.fs_type, r.options, r.verity, r.root_hash_sig),
        Volume::DirectBlock(d) if d.fs_type.is_empty() => {
            return Err(RequestError::NoFsType(volume_type));
        }
        Volume::DirectBlock(d) => (d.source, d.fs_type, d.options, d.verity, d.root_hash_sig),
        Volume::GuestPull(_) => return Err(RequestError::GuestPull),
        Volume::Nydus(_) => return Err(RequestError::Unsupported(volume_type)),
    };
    let root_hash_sig = signature(storage, sig.as_deref(), verity.is_some())?;
    // The request's own source (a hot-plugged disk's address) wins over the volume's (the
    // image's path on the host).
    let source_type = source_type(storage)?;
    let source = if storage.source.is_empty() {
        address(None, &source)?
    } else {
        address(source_type.as_deref(), &storage.source)?
    };
    Ok(VolumeRequest {
        volume_type,
        source,
        fs_type,
        options: options(volume_options, storage),
        verity,
        root_hash_sig,
        mount_point,
        partition: None,
    })
}

/// The one volume: in `options` or in `driver_options`, or in both byte for byte (two
/// different volumes in one request would leave it to chance which one is mounted).
fn volume_option(storage: &Storage) -> Result<&str, RequestError> {
    let in_options = volume::find_volume_option(&storage.options)?;
    let in_driver_options = volume::find_volume_option(&storage.driver_options)?;
    match (in_options, in_driver_options) {
        (Some(a), Some(b)) if a != b => Err(RequestError::TwoVolumes),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(RequestError::NoVolumeOption),
    }
}

/// Driver options the `dmverity` shape knows.
const DM_VERITY_DRIVER_OPTIONS: &[&str] = &["verity_info", "source_type", ROOT_HASH_SIG_OPTION];

/// Shape 2: the CCv0 runtime's `dmverity` driver — `verity_info=<DmVerityInfo JSON>`,
/// `source_type=<bus>`, optionally `io.katacontainers.volume.root_hash_sig=<signature>`, the
/// disk's guest address as `source`.
pub(super) fn dm_verity(
    storage: &Storage,
    mount_point: PathBuf,
) -> Result<VolumeRequest, RequestError> {
    for o in &storage.driver_options {
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
        if !DM_VERITY_DRIVER_OPTIONS.contains(&key) {
            return Err(RequestError::UnknownOption {
                driver: "dmverity",
                field: "driver_options",
                value: truncate_for_error(o),
            });
        }
    }
    let info = driver_option(storage, "verity_info")?.ok_or(RequestError::Missing {
        driver: "dmverity",
        field: "driver_options verity_info=",
    })?;
    let info = DmVerityInfo::from_json_str(info)?;
    let verity = volume::verity_params(&info)?;
    let in_info = Some(info.root_hash_sig.as_str()).filter(|s| !s.is_empty());
    let root_hash_sig = signature(storage, in_info, true)?;
    if storage.source.is_empty() {
        return Err(RequestError::Missing {
            driver: "dmverity",
            field: "source",
        });
    }
    let source = address(source_type(storage)?.as_deref(), &storage.source)?;
    let fs_type = if storage.fstype.is_empty() {
        "erofs".to_owned()
    } else {
        storage.fstype.clone()
    };
    Ok(VolumeRequest {
        volume_type: VolumeType::LayerRawBlock,
        source,
        fs_type,
        options: options(Vec::new(), storage),
        verity: Some(verity),
        root_hash_sig,
        mount_point,
        partition: None,
    })
}
