//! A storage request as the agent receives it ([`Storage`], mirroring the Kata agent's
//! `Storage` message) and what it asks for, parsed once into a typed [`Request`]: the shape is
//! recognised, the volume decoded and validated, the fields checked for form (sizes, paths).
//! Pure: no policy (that is `policy`), no system.

mod error;

use std::path::PathBuf;

pub use error::RequestError;

use crate::verity::VerityParams;
use crate::volume::{self, Volume, VolumeType, truncate_for_error};

/// Longest path accepted in a request (Linux `PATH_MAX`).
const MAX_PATH: usize = 4096;
/// Longest path component (Linux `NAME_MAX`).
const MAX_NAME: usize = 255;

/// A storage request, mirroring the Kata agent's `Storage` message. In JSON (the host side's
/// `kata-volume storages` output and `add --storages` input) it has the agent's field names,
/// each optional and empty by default; an unknown field is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Driver name.
    pub driver: String,
    /// Driver options; may carry the volume option.
    pub driver_options: Vec<String>,
    /// The device; when empty, the volume's own `source`.
    pub source: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options; usually carries `io.katacontainers.volume=…`.
    pub options: Vec<String>,
    /// Where to mount.
    pub mount_point: String,
}

impl Storage {
    /// Bytes of every string in the request.
    pub fn size(&self) -> usize {
        let list = |v: &[String]| v.iter().map(String::len).sum::<usize>();
        self.driver.len()
            + self.source.len()
            + self.fstype.len()
            + self.mount_point.len()
            + list(&self.options)
            + list(&self.driver_options)
    }
}

/// How large a request may be, checked before anything in it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Longest volume option (bytes).
    pub max_option_bytes: usize,
    /// Largest request (bytes, all strings together).
    pub max_request_bytes: usize,
    /// Most options and driver options together (empty ones count too).
    pub max_options: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_option_bytes: 64 * 1024,
            max_request_bytes: 256 * 1024,
            max_options: 64,
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Mount one block volume (verified or not).
    Volume(VolumeRequest),
}

impl Request {
    /// The mount point the request names.
    pub fn mount_point(&self) -> &std::path::Path {
        match self {
            Request::Volume(v) => &v.mount_point,
        }
    }
}

/// One block volume to mount: everything downstream needs, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The volume's type (`direct_block`, `image_raw_block` or `layer_raw_block`).
    pub volume_type: VolumeType,
    /// The source to use: the request's `source`, else the volume's.
    pub source: String,
    /// Filesystem type (never empty).
    pub fs_type: String,
    /// Mount options asked for: the volume's, then the request's own (without the volume
    /// option). Not yet checked against any allowlist.
    pub options: Vec<String>,
    /// dm-verity parameters; `None` for an unverified volume.
    pub verity: Option<VerityParams>,
    /// Where to mount: absolute, without `.`, `..` or empty components.
    pub mount_point: PathBuf,
}

/// Parses a storage request: sizes first (nothing large is decoded), then the volume, then
/// the other fields.
pub fn parse(storage: &Storage, limits: &Limits) -> Result<Request, RequestError> {
    let size = storage.size();
    if size > limits.max_request_bytes {
        return Err(RequestError::TooLarge {
            what: "The request",
            size,
            limit: limits.max_request_bytes,
        });
    }
    let count = storage.options.len() + storage.driver_options.len();
    if count > limits.max_options {
        return Err(RequestError::TooManyOptions {
            count,
            limit: limits.max_options,
        });
    }
    let option = volume_option(storage)?;
    if option.len() > limits.max_option_bytes {
        return Err(RequestError::TooLarge {
            what: "The volume option",
            size: option.len(),
            limit: limits.max_option_bytes,
        });
    }
    let volume = Volume::parse(option)?;
    let mount_point = mount_point(&storage.mount_point)?;
    checked_path("source", &storage.source)?;
    if !storage.fstype.is_empty() && volume.fs_type() != Some(storage.fstype.as_str()) {
        return Err(RequestError::FsTypeMismatch {
            fstype: truncate_for_error(&storage.fstype),
            volume: volume.fs_type().unwrap_or_default().to_owned(),
        });
    }
    let volume_type = volume.volume_type();
    let (source, fs_type, volume_options, verity) = match volume {
        Volume::RawBlock(r) => (r.source, r.fs_type, r.options, r.verity),
        Volume::DirectBlock(d) if d.fs_type.is_empty() => {
            return Err(RequestError::NoFsType(volume_type));
        }
        Volume::DirectBlock(d) => (d.source, d.fs_type, d.options, d.verity),
        Volume::Nydus(_) | Volume::GuestPull(_) => {
            return Err(RequestError::Unsupported(volume_type));
        }
    };
    // The request's source is checked by the policy (allowed patterns) and by `resolve`.
    let source = if storage.source.is_empty() {
        source
    } else {
        storage.source.clone()
    };
    let mut options = volume_options;
    options.extend(
        storage
            .options
            .iter()
            .filter(|o| !o.starts_with(volume::VOLUME_OPTION_PREFIX))
            .cloned(),
    );
    Ok(Request::Volume(VolumeRequest {
        volume_type,
        source,
        fs_type,
        options,
        verity,
        mount_point,
    }))
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

/// A mount point must be an absolute, normal path (no `..`, no `.`, no empty components).
pub fn mount_point(mp: &str) -> Result<PathBuf, RequestError> {
    checked_path("mount_point", mp)?;
    let path = PathBuf::from(mp);
    if !is_normal_absolute(&path) {
        return Err(invalid(
            "mount_point",
            mp,
            "must be an absolute path other than / without '.', '..', empty components or NUL",
        ));
    }
    if mp.split('/').any(|c| c.len() > MAX_NAME) {
        return Err(invalid(
            "mount_point",
            mp,
            "has a component longer than 255 bytes",
        ));
    }
    Ok(path)
}

/// Length, NUL and control characters (which would forge lines in text logs and
/// terminals): refused in any path a request names.
fn checked_path(field: &'static str, value: &str) -> Result<(), RequestError> {
    if value.len() > MAX_PATH {
        return Err(invalid(field, value, "longer than 4096 bytes"));
    }
    if value.contains('\0') {
        return Err(invalid(field, value, "contains a NUL byte"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, value, "contains a control character"));
    }
    Ok(())
}

fn invalid(field: &'static str, value: &str, why: &'static str) -> RequestError {
    RequestError::Invalid {
        field,
        value: truncate_for_error(value),
        why,
    }
}

/// Absolute, and made only of normal components (no `.`, `..`, repeated or trailing `/`).
pub fn is_normal_absolute(p: &std::path::Path) -> bool {
    use std::path::Component;
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
