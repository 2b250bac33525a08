//! Kata virtual volumes: the wire struct (Go field names), its decoding from a mount option,
//! and validation into a typed [`Volume`] — parse, don't validate: nothing downstream sees an
//! unchecked field. Pure: touches no system resource.

mod decode;
mod json;
mod model;
mod wire;

pub use decode::{
    MAX_OPTION_BYTES, VOLUME_OPTION_PREFIX, decode, decode_base64, encode_option,
    find_volume_option,
};
pub(crate) use model::verity_params;
pub use model::{DirectBlock, GuestPull, NydusVolume, RawBlock, Scope, Volume, VolumeType};
pub use model::{shown, truncate as truncate_for_error, verity_info};
pub use wire::{
    DirectAssignedVolume, DmVerityInfo, ImagePullVolume, KataVirtualVolume, NydusImageVolume,
};

use crate::verity::VerityError;

/// Why a volume was refused. Every message names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// Input larger than the hard ceiling.
    #[error("Volume option is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not standard padded base64.
    #[error("Invalid base64 in io.katacontainers.volume: {0}")]
    Base64(String),
    /// Not JSON, or not UTF-8.
    #[error("Invalid volume JSON: {0}")]
    Json(String),
    /// A field of the wrong JSON type.
    #[error("Invalid field {field}: expected {expected}, found {found}")]
    FieldType {
        /// Dotted path of the field.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// What was there.
        found: &'static str,
    },
    /// A number that is not an unsigned 64-bit integer.
    #[error("Invalid field {field}: {value} is not an unsigned 64-bit integer")]
    Number {
        /// Dotted path of the field.
        field: String,
        /// The number as written.
        value: String,
    },
    /// A field given twice (in any spelling).
    #[error("Duplicate field {0}: refused as ambiguous")]
    DuplicateField(String),
    /// More than one volume option in one mount request.
    #[error("Found {0} io.katacontainers.volume options in one request: expected one")]
    SeveralOptions(usize),
    /// No volume option where one was required.
    #[error("No io.katacontainers.volume option in the mount options")]
    NoOption,
    /// Unknown or empty `volume_type`.
    #[error("Unknown volume_type {0:?}")]
    UnknownType(String),
    /// A field this volume type needs is missing or empty.
    #[error("Missing {field} for volume_type {volume_type}")]
    Missing {
        /// The volume type.
        volume_type: VolumeType,
        /// The missing field.
        field: &'static str,
    },
    /// A string field with a value we refuse.
    #[error("Invalid {field} {value:?}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The value (truncated when long).
        value: String,
        /// Why.
        why: &'static str,
    },
    /// Bad `dm_verity` parameters.
    #[error(transparent)]
    Verity(#[from] VerityError),
}
