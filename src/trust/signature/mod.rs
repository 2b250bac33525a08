//! Root-hash signatures verified in userspace: a detached PKCS#7/CMS `SignedData` (DER) whose
//! content is the volume's root hash as lower-case ASCII hex, no newline — what systemd and
//! `veritysetup --root-hash-signature` use, and what the kernel's `root_hash_sig_key_desc`
//! checks.
//!
//! Input forms ([`RootHashSignature::parse`]): base64 of the DER, or base64 of the systemd
//! `.verity.sig` JSON envelope (whose `rootHash` must equal the volume's and whose
//! `certificateFingerprint`, when present, must be the signer's). Raw DER (a `.roothash.p7s`
//! file) through [`RootHashSignature::from_der`].
//!
//! Trust rule (decided here, see `docs/trust.md`): the signer certificate is one of the
//! trusted certificates itself, or — one level only — a certificate embedded in the signature
//! and issued directly by a trusted CA certificate. No longer chains (no intermediates), no
//! revocation lists. Exactly one `SignerInfo`; the content must be detached; digests SHA-256,
//! SHA-384 or SHA-512; signers RSA (PKCS#1 v1.5) or ECDSA P-256; signed attributes present
//! (then `contentType` must be `id-data` and `messageDigest` the content's digest) or absent.
//! Certificate rules are in `cert`.
//!
//! Crates: RustCrypto (`cms`, `x509-cert`, `der`, `rsa`, `p256`, `sha2`) rather than
//! `openssl`: pure Rust, so the static guest binary needs no C library or vendored OpenSSL
//! build, decoding is strict DER with typed errors, and nothing panics on hostile input.
//! RustCrypto's `cms` only parses; the verification steps of RFC 5652 §5.4–5.6 are here.

mod cert;
mod crypto;
mod envelope;
mod verify;

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::MaterialDigest;
use crate::verity::Digest;
use cert::Cert;
use envelope::Envelope;

/// Largest signature accepted (bytes of DER): the kernel's limit for a `user` key payload,
/// so that any signature we accept can also be handed to the kernel.
pub const MAX_SIGNATURE_BYTES: usize = 32767;

/// Why a root-hash signature was refused, or signer certificates could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature, and the policy requires one.
    #[error("Root hash {root_hash} is not signed: the policy requires a root-hash signature")]
    Unsigned {
        /// The volume's root hash.
        root_hash: String,
    },
    /// Not a signature at all: bad base64, garbage, truncated DER, wrong structure.
    #[error("Malformed root-hash signature: {why}")]
    Malformed {
        /// What is wrong.
        why: String,
    },
    /// Well formed, but uses something this check does not support.
    #[error("Unsupported {what} {value} in the root-hash signature")]
    Unsupported {
        /// What kind of thing.
        what: &'static str,
        /// Which one.
        value: String,
    },
    /// Larger than [`MAX_SIGNATURE_BYTES`].
    #[error("Root-hash signature of {len} bytes is larger than the limit of 32767 bytes")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// The signature was made over other content (its `messageDigest` differs).
    #[error("Root-hash signature was made for other data, not for root hash {root_hash}")]
    WrongHash {
        /// The volume's root hash.
        root_hash: String,
    },
    /// The signature value does not verify with the signer's key.
    #[error(
        "Root-hash signature does not verify for root hash {root_hash} with the key of {subject}: it was made over other data or is corrupted"
    )]
    BadSignature {
        /// The volume's root hash.
        root_hash: String,
        /// The signer certificate's subject.
        subject: String,
    },
    /// No signer certificates are configured, so no signature can be trusted.
    #[error("Root-hash signature cannot be trusted: no trusted signer certificates are configured")]
    NoTrustedSigners,
    /// The signer is neither trusted nor issued by a trusted CA.
    #[error("Root-hash signature signer {signer} is not trusted")]
    UntrustedSigner {
        /// Who the signature names as signer.
        signer: String,
    },
    /// The signer (or its issuer) is outside its validity period.
    #[error(
        "Certificate {subject} is not valid at {now}: it is valid from {not_before} to {not_after}"
    )]
    CertificateNotValid {
        /// The certificate's subject.
        subject: String,
        /// Its `notBefore`.
        not_before: String,
        /// Its `notAfter`.
        not_after: String,
        /// The time of the check.
        now: String,
    },
    /// The signer (or its issuer) may not be used this way.
    #[error("Certificate {subject} may not vouch for root hashes: {why}")]
    NotASigningCertificate {
        /// The certificate's subject.
        subject: String,
        /// Which rule it breaks.
        why: String,
    },
    /// The `.verity.sig` envelope names another root hash or certificate.
    #[error("The .verity.sig {field} {value} does not match {expected}")]
    EnvelopeMismatch {
        /// `rootHash` or `certificateFingerprint`.
        field: &'static str,
        /// The envelope's value.
        value: String,
        /// What it had to be.
        expected: String,
    },
    /// A trusted-signer PEM text that does not hold certificates.
    #[error("Invalid trusted signer PEM {source_name}: {why}")]
    Pem {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        why: String,
    },
}

/// A root-hash signature as a volume carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootHashSignature {
    der: Vec<u8>,
    envelope: Option<Envelope>,
}

impl RootHashSignature {
    /// Parses base64 of the DER signature, or base64 of a `.verity.sig` JSON envelope.
    pub fn parse(base64_text: &str) -> Result<Self, SignatureError> {
        let bytes = STANDARD
            .decode(base64_text.trim().as_bytes())
            .map_err(|e| SignatureError::Malformed {
                why: format!("not base64: {e}"),
            })?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {
                let envelope = Envelope::parse(&bytes)?;
                let mut sig = Self::from_der(envelope.der.clone())?;
                sig.envelope = Some(envelope);
                Ok(sig)
            }
            Some(0x30) => Self::from_der(bytes),
            _ => Err(SignatureError::Malformed {
                why: "neither DER (a SEQUENCE) nor a .verity.sig JSON object".to_owned(),
            }),
        }
    }

    /// Wraps DER bytes (as in a `.roothash.p7s` file); only the size is checked here.
    pub fn from_der(der: Vec<u8>) -> Result<Self, SignatureError> {
        if der.len() > MAX_SIGNATURE_BYTES {
            return Err(SignatureError::TooLarge { len: der.len() });
        }
        Ok(Self {
            der,
            envelope: None,
        })
    }

    /// The DER bytes (what the kernel gets as the key payload).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether it came in a `.verity.sig` envelope.
    pub fn is_envelope(&self) -> bool {
        self.envelope.is_some()
    }
}

/// Who signed a root hash that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// The signer certificate's subject.
    pub subject: String,
    /// SHA-256 of the signer certificate's DER, lower-case hex.
    pub fingerprint: String,
    /// The trusted CA that issued the signer, when the signer itself is not trusted directly.
    pub issuer: Option<String>,
}

/// The trusted signer certificates.
#[derive(Debug, Clone, Default)]
pub struct TrustedSigners {
    certs: Vec<Cert>,
    material: Vec<MaterialDigest>,
}

impl TrustedSigners {
    /// No trusted signers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every certificate of a PEM text read from `source_name` (a file, or an
    /// initdata key) and records its digest; returns how many were added. Blocks other
    /// than `CERTIFICATE` and a text without any are refused.
    pub fn add_pem(&mut self, text: &str, source_name: &str) -> Result<usize, SignatureError> {
        let bad = |why: String| SignatureError::Pem {
            source_name: source_name.to_owned(),
            why,
        };
        let mut added = Vec::new();
        for block in pem_blocks(text) {
            let (label, der) = der::pem::decode_vec(block.as_bytes())
                .map_err(|e| bad(format!("block {} does not decode: {e}", added.len() + 1)))?;
            if label != "CERTIFICATE" {
                return Err(bad(format!(
                    "unexpected block {label:?}: expected CERTIFICATE"
                )));
            }
            let cert = Cert::from_der(&der).map_err(|e| {
                bad(format!(
                    "certificate {} is not X.509 DER: {e}",
                    added.len() + 1
                ))
            })?;
            added.push(cert);
        }
        if added.is_empty() {
            return Err(bad("no CERTIFICATE block".to_owned()));
        }
        let n = added.len();
        self.certs.extend(added);
        self.material
            .push(MaterialDigest::of(source_name, text.as_bytes()));
        Ok(n)
    }

    /// How many certificates are trusted.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The digests of the PEM texts loaded.
    pub fn material(&self) -> &[MaterialDigest] {
        &self.material
    }

    /// Verifies `signature` for the volume's `root` at time `now`.
    pub fn verify(
        &self,
        signature: &RootHashSignature,
        root: &Digest,
        now: SystemTime,
    ) -> Result<VerifiedSigner, SignatureError> {
        let hex = root.to_hex();
        if let Some(env) = &signature.envelope
            && env.root_hash != hex
        {
            return Err(SignatureError::EnvelopeMismatch {
                field: "rootHash",
                value: crate::trust::quote(&env.root_hash),
                expected: format!("the volume's root hash {hex}"),
            });
        }
        if self.certs.is_empty() {
            return Err(SignatureError::NoTrustedSigners);
        }
        let signer = verify::verify(&signature.der, hex.as_bytes(), &self.certs, now)?;
        if let Some(fp) = signature.envelope.as_ref().and_then(|e| e.fingerprint)
            && fp != signer.cert.fingerprint
        {
            return Err(SignatureError::EnvelopeMismatch {
                field: "certificateFingerprint",
                value: hex::encode(fp),
                expected: format!(
                    "the signer certificate's SHA-256 {}",
                    hex::encode(signer.cert.fingerprint)
                ),
            });
        }
        Ok(VerifiedSigner {
            subject: signer.cert.subject(),
            fingerprint: hex::encode(signer.cert.fingerprint),
            issuer: signer.issuer.as_ref().map(Cert::subject),
        })
    }

    /// The policy's check: `None` is refused when `required`, else admitted unverified
    /// (`Ok(None)`); a signature that is present is always verified.
    pub fn check(
        &self,
        signature: Option<&RootHashSignature>,
        root: &Digest,
        required: bool,
        now: SystemTime,
    ) -> Result<Option<VerifiedSigner>, SignatureError> {
        match signature {
            Some(s) => self.verify(s, root, now).map(Some),
            None if required => Err(SignatureError::Unsigned {
                root_hash: root.to_hex(),
            }),
            None => Ok(None),
        }
    }
}

/// The `-----BEGIN …-----` … `-----END …-----` blocks of a PEM text (explanatory text
/// between blocks is skipped, as RFC 7468 allows).
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    // An unterminated block is still handed to the decoder, which explains what is wrong.
    blocks.extend(current);
    blocks
}
