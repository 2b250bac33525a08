//! The root-hash signature a volume request carries: `dm_verity.root_hash_sig` inside the
//! volume (the virtual volume's JSON, or the `dmverity` driver's `verity_info`), or the
//! Storage driver option `io.katacontainers.volume.root_hash_sig=`. Both may be given only
//! when they are the same signature (one request, one signature). Decoded here — base64 of
//! the DER or of a `.verity.sig` envelope, at most 32767 bytes of DER; verified by `policy`,
//! never here.

use super::{RequestError, Storage, driver_option};
use crate::trust::RootHashSignature;
use crate::volume::truncate_for_error;

/// The driver option that carries a volume's root-hash signature.
pub const ROOT_HASH_SIG_OPTION: &str = "io.katacontainers.volume.root_hash_sig";

/// Where a signature came from, for messages.
const IN_VOLUME: &str = "dm_verity.root_hash_sig";
const IN_DRIVER_OPTIONS: &str = "driver_options io.katacontainers.volume.root_hash_sig";

/// The request's one signature: from the volume (`in_volume`), the driver option, or both
/// when they decode to the same signature. `verified` says whether the volume has
/// `dm_verity` at all: a signature without a root hash to sign is refused.
pub(super) fn signature(
    storage: &Storage,
    in_volume: Option<&str>,
    verified: bool,
) -> Result<Option<RootHashSignature>, RequestError> {
    if let Some(o) = storage
        .options
        .iter()
        .find(|o| o.starts_with(ROOT_HASH_SIG_OPTION))
    {
        return Err(RequestError::Invalid {
            field: "options",
            value: truncate_for_error(o),
            why: "a root-hash signature goes in driver_options, not among the mount options",
        });
    }
    let from_volume = in_volume.map(|s| decode(IN_VOLUME, s)).transpose()?;
    let from_option = driver_option(storage, ROOT_HASH_SIG_OPTION)?
        .map(|s| decode(IN_DRIVER_OPTIONS, s))
        .transpose()?;
    let sig = match (from_volume, from_option) {
        (Some(a), Some(b)) if a != b => return Err(RequestError::TwoSignatures),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Ok(None),
    };
    if !verified {
        return Err(RequestError::SignatureWithoutVerity);
    }
    Ok(Some(sig))
}

fn decode(field: &'static str, text: &str) -> Result<RootHashSignature, RequestError> {
    RootHashSignature::parse(text).map_err(|source| RequestError::Signature { field, source })
}
