//! Shared helpers of the signature tests: root hashes, a trust set from openssl-made
//! certificates, and our verdict next to `openssl smime -verify`'s.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::trust::{RootHashSignature, SignatureError, TrustedSigners};
use kata_volume::verity::{Digest, HashAlgorithm};

use super::openssl::{Signer, VerifyOpts, openssl_accepts};

pub const ROOT_A: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
pub const ROOT_B: &str = "0000000000000000000000000000000000000000000000000000000000000001";

pub fn root(hex: &str) -> Digest {
    Digest::from_hex(HashAlgorithm::Sha256, hex).unwrap()
}

pub fn trusting(signers: &[&Signer]) -> TrustedSigners {
    let mut t = TrustedSigners::new();
    for s in signers {
        t.add_pem(&s.pem(), &s.cert.display().to_string()).unwrap();
    }
    t
}

pub fn ours(trusted: &TrustedSigners, sig: &[u8], hex: &str) -> Result<(), SignatureError> {
    let parsed = RootHashSignature::parse(&STANDARD.encode(sig))?;
    trusted
        .verify(&parsed, &root(hex), SystemTime::now())
        .map(|_| ())
}

pub fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Ours and openssl's verdicts on `sig` over `hex` with `trust` as the only trust anchor.
pub fn both(
    dir: &Path,
    trusted: &TrustedSigners,
    trust: &Signer,
    sig: &[u8],
    hex: &str,
) -> (Result<(), SignatureError>, bool) {
    let reference = openssl_accepts(
        dir,
        sig,
        hex.as_bytes(),
        &trust.cert,
        &VerifyOpts {
            // Where to find a signer the signature does not embed: the trusted certificate,
            // as our lookup does.
            certfile: Some(trust.cert.clone()),
            ..VerifyOpts::default()
        },
    );
    (ours(trusted, sig, hex), reference)
}
