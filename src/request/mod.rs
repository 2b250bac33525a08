//! A storage request as the agent receives it ([`Storage`], mirroring the Kata agent's
//! `Storage` message) and what it asks for, parsed once into a typed [`Request`]: the shape is
//! recognised by its `driver` ([`Shape`]: a virtual volume, the CCv0 runtime's `dmverity` and
//! `overlayfs` drivers — see `docs/kata-runtime.md`), the volume decoded and validated, the
//! fields checked for form (sizes, paths). Each shape is one small function of its own file.
//! Pure: no policy (that is `policy`), no system.

mod error;
mod multilayer;
mod overlay;
mod shape;
mod signature;
mod volume;

use std::path::PathBuf;

pub use error::RequestError;
pub use multilayer::MultiLayerRequest;
pub use overlay::{CREATE_DIRECTORY, OverlayRequest};
pub use shape::Shape;
pub use signature::ROOT_HASH_SIG_OPTION;
pub use volume::VolumeRequest;

use crate::volume::truncate_for_error;

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
    /// Mount an overlay over volumes mounted before: a container's rootfs.
    Overlay(OverlayRequest),
    /// One layer of a rootfs the manager assembles (Kata main's multi-layer erofs).
    MultiLayer(MultiLayerRequest),
}

impl Request {
    /// The mount point the request names.
    pub fn mount_point(&self) -> &std::path::Path {
        match self {
            Request::Volume(v) => &v.mount_point,
            Request::Overlay(o) => &o.mount_point,
            Request::MultiLayer(m) => &m.rootfs,
        }
    }
}

/// Parses a storage request: sizes first (nothing large is decoded), then its shape (by
/// `driver`, see [`Shape`]), then that shape's fields.
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
    let mount_point = mount_point(&storage.mount_point)?;
    checked_path("source", &storage.source)?;
    match Shape::of(storage)? {
        Shape::VirtualVolume => {
            volume::virtual_volume(storage, limits, mount_point).map(Request::Volume)
        }
        Shape::DmVerity => volume::dm_verity(storage, mount_point).map(Request::Volume),
        Shape::Overlay => overlay::parse(storage, mount_point).map(Request::Overlay),
        Shape::MultiLayer => multilayer::parse(storage, mount_point).map(Request::MultiLayer),
        Shape::GuestPull => Err(RequestError::GuestPull),
    }
}

/// The value of the one `key=` driver option, if present (twice is ambiguous: refused).
fn driver_option<'s>(
    storage: &'s Storage,
    key: &'static str,
) -> Result<Option<&'s str>, RequestError> {
    let mut found = storage
        .driver_options
        .iter()
        .filter_map(|o| o.strip_prefix(key)?.strip_prefix('='));
    let first = found.next();
    if found.next().is_some() {
        return Err(RequestError::Duplicate {
            field: "driver_options",
            key,
        });
    }
    Ok(first)
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
