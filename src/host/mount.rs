//! The containerd mount as nydus-snapshotter returns it for Kata: type
//! `fuse.nydus-overlayfs`, the host overlay's own options (which stay on the host), and one
//! `io.katacontainers.volume=` option per image or layer, top layer first. This module reads
//! it into its volumes, each decoded by [`Volume::parse`] (the crate's one decoder). It must
//! not decide guest addresses or mount points (that is the translation's).

use super::HostError;
use crate::volume::{RawBlock, VOLUME_OPTION_PREFIX, Volume, truncate_for_error};

/// The mount type nydus-snapshotter gives a mount that carries Kata volumes.
pub const NYDUS_MOUNT_TYPE: &str = "fuse.nydus-overlayfs";

/// Longest mount option accepted (a volume option is bounded again by its decoder).
const MAX_OPTION: usize = 1 << 20;

/// A containerd mount (`type`, `options`; its `source`, always `overlay`, carries nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerdMount {
    /// The mount type: `fuse.nydus-overlayfs`.
    pub mount_type: String,
    /// The mount options, in order.
    pub options: Vec<String>,
}

/// One volume of the mount.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    /// 1-based, top layer first.
    pub index: usize,
    /// The option exactly as the snapshotter wrote it.
    pub option: String,
    /// The decoded, validated volume.
    pub volume: RawBlock,
}

/// Host overlay options a runtime does not forward (the guest's overlay is built from the
/// volumes' mount points instead): these take a value…
const DROPPED_KEYS: [&str; 7] = [
    "index=",
    "redirect_dir=",
    "metacopy=",
    "xino=",
    "nfs_export=",
    "uuid=",
    // nydus-overlayfs' own option (a RAFS instance, not a Kata volume)
    "extraoption=",
];
/// …and these are flags.
const DROPPED_FLAGS: [&str; 4] = ["userxattr", "volatile", "ro", "rw"];

/// Reads the mount's volumes, in order; every other option is checked and dropped.
pub(super) fn layers(mount: &ContainerdMount) -> Result<Vec<Layer>, HostError> {
    if mount.mount_type != NYDUS_MOUNT_TYPE {
        return Err(HostError::UnknownMountType(truncate_for_error(
            &mount.mount_type,
        )));
    }
    let mut layers = Vec::new();
    let (mut upper, mut work) = (false, false);
    for option in &mount.options {
        check_form(option)?;
        if option.starts_with(VOLUME_OPTION_PREFIX) {
            let index = layers.len() + 1;
            layers.push(layer(index, option)?);
        } else if let Some(v) = option.strip_prefix("lowerdir=") {
            host_dirs(option, v.split(':'))?;
        } else if let Some(v) = option.strip_prefix("upperdir=") {
            once(option, &mut upper)?;
            host_dirs(option, [v])?;
        } else if let Some(v) = option.strip_prefix("workdir=") {
            once(option, &mut work)?;
            host_dirs(option, [v])?;
        } else if !is_dropped(option) {
            return Err(HostError::UnknownOption(truncate_for_error(option)));
        }
    }
    if layers.is_empty() {
        return Err(HostError::NoVolume);
    }
    Ok(layers)
}

fn layer(index: usize, option: &str) -> Result<Layer, HostError> {
    let volume = Volume::parse(option).map_err(|source| HostError::Volume { index, source })?;
    let volume = match volume {
        Volume::RawBlock(r) => r,
        Volume::GuestPull(_) => return Err(HostError::GuestPull { index }),
        other => {
            return Err(HostError::NotALayer {
                index,
                volume_type: other.volume_type(),
            });
        }
    };
    Ok(Layer {
        index,
        option: option.to_owned(),
        volume,
    })
}

fn is_dropped(option: &str) -> bool {
    DROPPED_FLAGS.contains(&option) || DROPPED_KEYS.iter().any(|k| option.starts_with(k))
}

fn check_form(option: &str) -> Result<(), HostError> {
    let why = if option.is_empty() {
        "is empty"
    } else if option.len() > MAX_OPTION {
        "longer than 1 MiB"
    } else if option.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(HostError::InvalidOption {
        option: truncate_for_error(option),
        why,
    })
}

fn once(option: &str, seen: &mut bool) -> Result<(), HostError> {
    if std::mem::replace(seen, true) {
        return Err(HostError::InvalidOption {
            option: truncate_for_error(option),
            why: "given twice",
        });
    }
    Ok(())
}

/// The host overlay's directories: absolute paths (they are not used, but a mount that
/// names them otherwise is not a snapshotter's).
fn host_dirs<'a>(option: &str, dirs: impl IntoIterator<Item = &'a str>) -> Result<(), HostError> {
    if dirs.into_iter().all(|d| d.starts_with('/')) {
        return Ok(());
    }
    Err(HostError::InvalidOption {
        option: truncate_for_error(option),
        why: "every directory must be an absolute host path",
    })
}
