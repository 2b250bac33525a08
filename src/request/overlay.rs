//! Shape 3: the CCv0 runtime's `overlayfs` driver — the container's rootfs, an overlay over
//! layers mounted before. Several `lowerdir=` options are one ordered list, top layer first
//! (passed to the kernel as they come, only the last would count).

use std::path::PathBuf;

use super::{RequestError, Storage, checked_path, is_normal_absolute};
use crate::volume::truncate_for_error;

/// The driver option naming a directory to create for the overlay (upper, then work).
pub const CREATE_DIRECTORY: &str = "io.katacontainers.volume.overlayfs.create_directory";

/// An overlay to mount: a container's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayRequest {
    /// The lower layers' mount points, top layer first.
    pub lowers: Vec<PathBuf>,
    /// The upper (writable) directory and the work directory; `None` for a read-only
    /// overlay (two lowers at least).
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Directories to create in the guest before mounting (upper, work).
    pub create: Vec<PathBuf>,
    /// Where to mount the rootfs.
    pub mount_point: PathBuf,
}

fn bad(field: &'static str, value: &str, why: &'static str) -> RequestError {
    RequestError::Invalid {
        field,
        value: truncate_for_error(value),
        why,
    }
}

/// A directory named in overlay options: absolute, normal, printable, and free of the
/// overlay option separators `:` and `,` (one would split the list where the host chose).
fn overlay_path(field: &'static str, value: &str) -> Result<PathBuf, RequestError> {
    checked_path(field, value)?;
    if value.contains([':', ',']) {
        return Err(bad(
            field,
            value,
            "contains ':' or ',', which overlay options split on",
        ));
    }
    let path = PathBuf::from(value);
    if !is_normal_absolute(&path) {
        return Err(bad(
            field,
            value,
            "must be an absolute path without '.', '..' or empty components",
        ));
    }
    Ok(path)
}

/// The overlay Storage.
pub(super) fn parse(
    storage: &Storage,
    mount_point: PathBuf,
) -> Result<OverlayRequest, RequestError> {
    for (field, value) in [("source", &storage.source), ("fstype", &storage.fstype)] {
        if !value.is_empty() && value != "overlay" {
            return Err(bad(
                field,
                value,
                "must be \"overlay\" for the overlayfs driver",
            ));
        }
    }
    let (mut lowers, mut upper, mut work) = (Vec::new(), None, None);
    for o in &storage.options {
        match o.split_once('=') {
            // Several lowerdir= options, or one with a ':'-joined list: one list, in order.
            Some(("lowerdir", list)) => {
                for l in list.split(':') {
                    lowers.push(overlay_path("options lowerdir", l)?);
                }
            }
            Some(("upperdir", d)) if upper.is_none() => {
                upper = Some(overlay_path("options upperdir", d)?)
            }
            Some(("workdir", d)) if work.is_none() => {
                work = Some(overlay_path("options workdir", d)?)
            }
            Some(("upperdir" | "workdir", _)) => {
                return Err(RequestError::Duplicate {
                    field: "options",
                    key: if o.starts_with("upperdir") {
                        "upperdir"
                    } else {
                        "workdir"
                    },
                });
            }
            _ => {
                return Err(RequestError::UnknownOption {
                    driver: "overlayfs",
                    field: "options",
                    value: truncate_for_error(o),
                });
            }
        }
    }
    let mut create = Vec::new();
    for o in &storage.driver_options {
        match o
            .strip_prefix(CREATE_DIRECTORY)
            .and_then(|r| r.strip_prefix('='))
        {
            Some(dir) => create.push(overlay_path("driver_options create_directory", dir)?),
            None => {
                return Err(RequestError::UnknownOption {
                    driver: "overlayfs",
                    field: "driver_options",
                    value: truncate_for_error(o),
                });
            }
        }
    }
    let upper = match (upper, work) {
        (Some(u), Some(w)) if u == w => {
            return Err(bad(
                "options workdir",
                &w.to_string_lossy(),
                "is the upper directory",
            ));
        }
        (Some(u), Some(w)) => Some((u, w)),
        (None, None) if lowers.len() >= 2 => None,
        (None, None) => {
            return Err(RequestError::Missing {
                driver: "overlayfs",
                field: "options upperdir= and workdir= (or two lowerdir= for a read-only rootfs)",
            });
        }
        _ => {
            return Err(RequestError::Missing {
                driver: "overlayfs",
                field: "options upperdir= and workdir= together",
            });
        }
    };
    if lowers.is_empty() {
        return Err(RequestError::Missing {
            driver: "overlayfs",
            field: "options lowerdir=",
        });
    }
    // Only the overlay's own directories may be created.
    if let Some(dir) = create
        .iter()
        .find(|d| upper.as_ref().is_none_or(|(u, w)| *d != u && *d != w))
    {
        return Err(bad(
            "driver_options create_directory",
            &dir.to_string_lossy(),
            "is neither the upper nor the work directory",
        ));
    }
    Ok(OverlayRequest {
        lowers,
        upper,
        create,
        mount_point,
    })
}
