//! The systemd `.verity.sig` envelope: a JSON object
//! `{"rootHash": "<hex>", "signature": "<base64 of the PKCS#7 DER>",
//! "certificateFingerprint": "<hex SHA-256 of the signer's DER certificate>"}`, as written to a
//! Discoverable Disk Image's verity signature partition (padded with NUL bytes to 4 KiB).
//!
//! Parsing is strict: exactly those keys (`certificateFingerprint` optional), strings only,
//! hex and base64 well formed; trailing NUL bytes and whitespace are allowed. Whether the
//! root hash and fingerprint match the volume and the signer is checked by the caller.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::SignatureError;
use crate::trust::quote;

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Envelope {
    /// `rootHash`, lower-cased.
    pub(super) root_hash: String,
    /// `signature`, decoded.
    pub(super) der: Vec<u8>,
    /// `certificateFingerprint`, decoded (32 bytes), if present.
    pub(super) fingerprint: Option<[u8; 32]>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    root_hash: String,
    signature: String,
    certificate_fingerprint: Option<String>,
}

impl Envelope {
    /// Parses the JSON bytes.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, SignatureError> {
        let end = bytes
            .iter()
            .rposition(|b| *b != 0 && !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let bad = |why: String| SignatureError::Malformed {
            why: format!("invalid .verity.sig JSON: {why}"),
        };
        let wire: Wire = serde_json::from_slice(&bytes[..end]).map_err(|e| bad(e.to_string()))?;
        if wire.root_hash.is_empty() || !wire.root_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "rootHash {:?} is not hex",
                quote(&wire.root_hash)
            )));
        }
        let der = STANDARD
            .decode(wire.signature.as_bytes())
            .map_err(|e| bad(format!("signature is not base64: {e}")))?;
        let fingerprint = wire
            .certificate_fingerprint
            .as_deref()
            .map(|f| {
                parse_fingerprint(f).ok_or_else(|| {
                    bad(format!(
                        "certificateFingerprint {:?} is not 64 hex digits (SHA-256)",
                        quote(f)
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            root_hash: wire.root_hash.to_ascii_lowercase(),
            der,
            fingerprint,
        })
    }
}

/// 64 hex digits, either case, optionally in `:`-separated pairs (as `openssl x509
/// -fingerprint` prints them).
fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}
