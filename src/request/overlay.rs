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
/// overlay option separators `:` and `,` and the escape `\` (the kernel would split or join
/// the list elsewhere than where the host's paths were checked).
fn overlay_path(field: &'static str, value: &str) -> Result<PathBuf, RequestError> {
    checked_path(field, value)?;
    if value.contains([':', ',', '\\']) {
        return Err(bad(
            field,
            value,
            "contains ':', ',' or '\\', which overlay options split on or escape",
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
    let Dirs {
        lowers,
        upper,
        work,
    } = directories(&storage.options)?;
    let create = directories_to_create(&storage.driver_options)?;
    if lowers.is_empty() {
        return Err(RequestError::Missing {
            driver: "overlayfs",
            field: "options lowerdir=",
        });
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

/// The directories an overlay's options name.
struct Dirs {
    lowers: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
}

/// The lower layers (every `lowerdir=`, in order, each possibly a `:`-joined list), the upper
/// and the work directory.
fn directories(options: &[String]) -> Result<Dirs, RequestError> {
    let (mut lowers, mut upper, mut work) = (Vec::new(), None, None);
    for o in options {
        match o.split_once('=') {
            Some(("lowerdir", list)) => {
                for l in list.split(':') {
                    lowers.push(overlay_path("options lowerdir", l)?);
                }
            }
            Some((key @ ("upperdir" | "workdir"), d)) => {
                let slot = if key == "upperdir" {
                    &mut upper
                } else {
                    &mut work
                };
                if slot.is_some() {
                    return Err(RequestError::Duplicate {
                        field: "options",
                        key: if key == "upperdir" {
                            "upperdir"
                        } else {
                            "workdir"
                        },
                    });
                }
                *slot = Some(overlay_path(
                    if key == "upperdir" {
                        "options upperdir"
                    } else {
                        "options workdir"
                    },
                    d,
                )?);
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
    Ok(Dirs {
        lowers,
        upper,
        work,
    })
}

/// The `create_directory=` driver options (nothing else is taken).
fn directories_to_create(driver_options: &[String]) -> Result<Vec<PathBuf>, RequestError> {
    driver_options
        .iter()
        .map(|o| {
            match o
                .strip_prefix(CREATE_DIRECTORY)
                .and_then(|r| r.strip_prefix('='))
            {
                Some(dir) => overlay_path("driver_options create_directory", dir),
                None => Err(RequestError::UnknownOption {
                    driver: "overlayfs",
                    field: "driver_options",
                    value: truncate_for_error(o),
                }),
            }
        })
        .collect()
}
