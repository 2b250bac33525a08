//! Why a request was refused as malformed. Every message names the field and the value.

use crate::trust::SignatureError;
use crate::volume::{VolumeError, VolumeType};

/// A malformed request.
#[derive(Debug, thiserror::Error)]
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
    /// A root-hash signature that does not decode (refused as a trust failure:
    /// `PERMISSION_DENIED`).
    #[error("Invalid root-hash signature in {field}")]
    Signature {
        /// Where it was: `dm_verity.root_hash_sig` or the driver option.
        field: &'static str,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// Two different signatures in one request.
    #[error(
        "Found different root-hash signatures in dm_verity.root_hash_sig and driver_options io.katacontainers.volume.root_hash_sig: one request carries one signature"
    )]
    TwoSignatures,
    /// A signature for a volume without dm_verity.
    #[error(
        "Found a root-hash signature for a volume without dm_verity: there is no root hash to sign"
    )]
    SignatureWithoutVerity,
    /// The request's filesystem type is not the volume's.
    #[error("Invalid fstype {fstype:?}: the volume's fs_type is {volume:?}")]
    FsTypeMismatch {
        /// The request's `fstype`.
        fstype: String,
        /// The volume's.
        volume: String,
    },
    /// A driver this crate does not know.
    #[error(
        "Unknown driver {0:?}: expected one of \"\" (a virtual volume), blk, mmioblk, scsi, nvdimm, blk-ccw, dmverity, overlayfs"
    )]
    UnknownDriver(String),
    /// A Storage that mixes conventions.
    #[error("Driver {driver:?} does not take {field}: the request mixes conventions")]
    MixedShape {
        /// The driver.
        driver: String,
        /// What it does not take.
        field: &'static str,
    },
    /// A convention this crate does not mount.
    #[error("Unsupported storage for driver {driver:?}: {why}")]
    UnsupportedShape {
        /// The driver.
        driver: String,
        /// Why.
        why: &'static str,
    },
    /// An option the driver does not know.
    #[error("Unknown {field} item {value:?} for driver {driver}")]
    UnknownOption {
        /// The driver.
        driver: &'static str,
        /// `options` or `driver_options`.
        field: &'static str,
        /// The item (shortened).
        value: String,
    },
    /// A required field of the driver is missing.
    #[error("Missing {field} for driver {driver}")]
    Missing {
        /// The driver.
        driver: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A key given twice.
    #[error("Duplicate {key}= in {field}: refused as ambiguous")]
    Duplicate {
        /// `options` or `driver_options`.
        field: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A guest address that does not parse.
    #[error(transparent)]
    Address(#[from] crate::address::AddressError),
    /// An image the guest pulls itself: the agent's image pull handles it, not kata-volume.
    #[error(
        "image_guest_pull is handled by the agent's image pull, not by kata-volume: nothing was mounted"
    )]
    GuestPull,
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
