//! Who vouches for a root hash. dm-verity proves that a device holds what its root hash
//! describes, but the root hash comes from the host, which a confidential guest does not
//! trust. This module owns the three answers to "why should the guest mount *this* root hash":
//!
//! - [`allowlist`]: a measured list of `(algorithm, root hash)` pairs — from the policy file,
//!   a `verified-layers.toml` file, or the same file carried inside a Kata initdata document
//!   ([`initdata`]); `require_verified_layers` fails closed.
//! - [`signature`]: a detached PKCS#7/CMS signature over the lower-case hex root hash (the
//!   systemd convention), verified in userspace against trusted signer certificates.
//! - [`keyring`]: the kernel's own check — the signature loaded as a `user` key in the thread
//!   keyring under a per-volume description, for the table's `root_hash_sig_key_desc`.
//!
//! Every loaded file is recorded as a [`MaterialDigest`] (SHA-256 of its bytes) so the daemon
//! can log exactly what it trusts and an operator can match it with what was attested.
//!
//! This module decides nothing about requests by itself and touches no device: the policy and
//! the request pipeline call it before any device is created. `docs/trust.md` describes the
//! trust model and the formats.

pub mod allowlist;
pub mod initdata;
pub mod keyring;
pub mod signature;

use std::fmt;

use sha2::{Digest as _, Sha256};

pub use allowlist::{Allowlist, AllowlistError, Listing};
pub use initdata::{Initdata, InitdataAlgorithm, InitdataError};
pub use keyring::{
    KernelSignatureError, KeyDescription, KeyringError, SignatureKey, kernel_signature_error,
};
pub use signature::{RootHashSignature, SignatureError, TrustedSigners, VerifiedSigner};

/// The SHA-256 digest of one piece of trust material (a file's bytes), with where it came
/// from: what the daemon logs so an operator can match it with what was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialDigest {
    /// Where the bytes came from (a path, or `initdata:<key>`).
    pub source: String,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

impl MaterialDigest {
    /// Digests `bytes` loaded from `source`.
    pub fn of(source: &str, bytes: &[u8]) -> Self {
        Self {
            source: source.to_owned(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Lower-case hex of the digest.
    pub fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

impl fmt::Display for MaterialDigest {
    /// `<source> sha256:<hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sha256:{}", self.source, self.hex())
    }
}

/// A (possibly hostile, possibly huge) value shortened for an error message.
fn quote(s: &str) -> String {
    crate::volume::truncate_for_error(s)
}

/// A parser message on one line: toml's source diagrams (`1 | a =`, `  |   ^`) are dropped.
fn one_line(s: &str) -> String {
    let diagram = |l: &str| {
        let rest = l
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        rest.starts_with('|')
    };
    let kept: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !diagram(l))
        .collect();
    kept.join(": ")
}
