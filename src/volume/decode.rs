//! From a mount option (or a list of them) to the wire struct: find
//! `io.katacontainers.volume=`, strip it, base64-decode (standard alphabet, with padding, as
//! Go's `base64.StdEncoding` writes it) and parse the JSON.

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeSliceError, Engine as _};

use super::VolumeError;
use super::wire::KataVirtualVolume;

/// The mount option that carries a volume.
pub const VOLUME_OPTION_PREFIX: &str = "io.katacontainers.volume=";

/// Hard ceiling on an encoded option, whatever the policy says (bytes).
pub const MAX_OPTION_BYTES: usize = 1 << 20;

/// Decodes a volume given as the full option, as bare base64, or as the JSON itself.
pub fn decode(input: &str) -> Result<KataVirtualVolume, VolumeError> {
    if input.len() > MAX_OPTION_BYTES {
        return Err(VolumeError::TooLarge {
            size: input.len(),
            limit: MAX_OPTION_BYTES,
        });
    }
    if input.trim().is_empty() {
        return Err(empty());
    }
    if let Some(b64) = input.strip_prefix(VOLUME_OPTION_PREFIX) {
        return decode_base64(b64);
    }
    if input.trim_start().starts_with('{') {
        return KataVirtualVolume::from_json_str(input);
    }
    decode_base64(input)
}

/// Decoded options up to this size are decoded on the stack (bytes).
const STACK_DECODE: usize = 2048;

/// An empty option or payload.
fn empty() -> VolumeError {
    VolumeError::Json(
        "the option is empty (expected io.katacontainers.volume=<base64 JSON>)".into(),
    )
}

/// Decodes the base64 payload of the option (without the prefix).
pub fn decode_base64(b64: &str) -> Result<KataVirtualVolume, VolumeError> {
    if b64.is_empty() {
        return Err(empty());
    }
    // Most options are well under a kilobyte: decode those without a heap buffer.
    if base64::decoded_len_estimate(b64.len()) <= STACK_DECODE {
        let mut buf = [0u8; STACK_DECODE];
        let n = STANDARD.decode_slice(b64, &mut buf).map_err(|e| match e {
            DecodeSliceError::DecodeError(e) => VolumeError::Base64(e.to_string()),
            other => VolumeError::Base64(other.to_string()),
        })?;
        return from_json_bytes(buf.get(..n).unwrap_or_default());
    }
    let bytes = STANDARD
        .decode(b64)
        .map_err(|e| VolumeError::Base64(e.to_string()))?;
    from_json_bytes(&bytes)
}

fn from_json_bytes(bytes: &[u8]) -> Result<KataVirtualVolume, VolumeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| VolumeError::Json(e.to_string()))?;
    KataVirtualVolume::from_json_str(text)
}

/// Encodes a volume as the full mount option (`io.katacontainers.volume=<base64>`).
pub fn encode_option(volume: &KataVirtualVolume) -> String {
    format!(
        "{VOLUME_OPTION_PREFIX}{}",
        STANDARD.encode(volume.to_json().as_bytes())
    )
}

/// Finds the one volume option in a list of mount options. `Ok(None)` when there is none;
/// an error when there are several (which one would be meant is ambiguous).
pub fn find_volume_option<S: AsRef<str>>(options: &[S]) -> Result<Option<&str>, VolumeError> {
    let mut found = options
        .iter()
        .map(AsRef::as_ref)
        .filter(|o| o.starts_with(VOLUME_OPTION_PREFIX));
    let first = found.next();
    let extra = found.count();
    if extra > 0 {
        return Err(VolumeError::SeveralOptions(extra + 1));
    }
    Ok(first)
}
