//! Why a request was refused as malformed. Every message names the field and the value.

use crate::volume::{VolumeError, VolumeType};

/// A malformed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Larger than the limit.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More options than the limit.
    #[error("The request has {count} options and driver_options, more than the limit of {limit}")]
    TooManyOptions {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Two different volumes in one request.
    #[error(
        "Found different io.katacontainers.volume options in options and driver_options: one request mounts one volume"
    )]
    TwoVolumes,
    /// The request's filesystem type is not the volume's.
    #[error("Invalid fstype {fstype:?}: the volume's fs_type is {volume:?}")]
    FsTypeMismatch {
        /// The request's `fstype`.
        fstype: String,
        /// The volume's.
        volume: String,
    },
    /// The request carries no volume option.
    #[error("No io.katacontainers.volume option in options or driver_options")]
    NoVolumeOption,
    /// The volume is malformed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// A volume type this crate does not mount.
    #[error(
        "Unsupported volume_type {0}: only direct_block, image_raw_block and layer_raw_block are mounted here"
    )]
    Unsupported(VolumeType),
    /// The volume names no filesystem type and none can be assumed.
    #[error("Missing fs_type for volume_type {0}")]
    NoFsType(VolumeType),
    /// Another field is malformed (the value is truncated; `{:?}` escapes what is not
    /// printable).
    #[error("Invalid {field} {value:?}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value (truncated when long).
        value: String,
        /// Why.
        why: &'static str,
    },
}
