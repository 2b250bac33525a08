//! The cryptographic primitives the signature check needs, and nothing else: hash a message
//! with a digest algorithm named by OID, and check a signature with a certificate's public
//! key (RSA PKCS#1 v1.5, or ECDSA over P-256) given the signature algorithm's OID.
//!
//! Pure RustCrypto (`sha2`, `rsa`, `p256`): no C library, so the static guest binary builds
//! as before. Only public-key operations happen here (no private key is ever handled), so
//! the timing side channel reported against `rsa`'s *decryption* (RUSTSEC-2023-0071) does
//! not apply.

use der::asn1::ObjectIdentifier as Oid;
use der::{Encode as _, oid::AssociatedOid as _};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use rsa::pkcs8::DecodePublicKey as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::SignatureError;

/// `id-sha256`, `id-sha384`, `id-sha512` (NIST).
pub(super) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
/// `rsaEncryption`: an RSA key, or an RSA signature whose hash is the digest algorithm's.
const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
/// `id-ecPublicKey`: an EC key (some signers also use it as the signature algorithm).
const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");

/// A digest algorithm the check supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The digest algorithm an OID names.
    pub(super) fn from_oid(oid: &Oid) -> Result<Self, SignatureError> {
        match *oid {
            SHA256 => Ok(Self::Sha256),
            SHA384 => Ok(Self::Sha384),
            SHA512 => Ok(Self::Sha512),
            _ => Err(SignatureError::Unsupported {
                what: "digest algorithm",
                value: oid.to_string(),
            }),
        }
    }

    /// The digest of `message`.
    pub(super) fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(message).to_vec(),
            Self::Sha384 => Sha384::digest(message).to_vec(),
            Self::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Self::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
            Self::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
            Self::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

/// The kind of key a signature algorithm needs, and the hash it implies (if it names one).
fn signature_kind(alg: &Oid) -> Result<(KeyKind, Option<Hash>), SignatureError> {
    Ok(match *alg {
        RSA_ENCRYPTION => (KeyKind::Rsa, None),
        SHA256_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha256)),
        SHA384_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha384)),
        SHA512_WITH_RSA => (KeyKind::Rsa, Some(Hash::Sha512)),
        EC_PUBLIC_KEY => (KeyKind::Ec, None),
        ECDSA_SHA256 => (KeyKind::Ec, Some(Hash::Sha256)),
        ECDSA_SHA384 => (KeyKind::Ec, Some(Hash::Sha384)),
        ECDSA_SHA512 => (KeyKind::Ec, Some(Hash::Sha512)),
        _ => {
            return Err(SignatureError::Unsupported {
                what: "signature algorithm",
                value: alg.to_string(),
            });
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec,
}

/// The hash a signature algorithm implies: the one it names, else `digest` (which must be
/// given then); a named hash that differs from `digest` is refused.
pub(super) fn signature_hash(alg: &Oid, digest: Option<Hash>) -> Result<Hash, SignatureError> {
    match (signature_kind(alg)?.1, digest) {
        (Some(named), Some(d)) if named != d => Err(SignatureError::Unsupported {
            what: "signature algorithm for its digest algorithm",
            value: alg.to_string(),
        }),
        (Some(h), _) | (None, Some(h)) => Ok(h),
        (None, None) => Err(SignatureError::Unsupported {
            what: "signature algorithm without a hash",
            value: alg.to_string(),
        }),
    }
}

/// Whether `signature` (algorithm `alg`, hash `hash`) is valid over `message` for `key`.
/// `Ok(false)`: a well-formed key and algorithm, but the signature does not verify.
pub(super) fn verify(
    key: &SubjectPublicKeyInfoOwned,
    alg: &Oid,
    hash: Hash,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, SignatureError> {
    let (kind, _) = signature_kind(alg)?;
    let key_der = key.to_der().map_err(|e| SignatureError::Malformed {
        why: format!("cannot re-encode the signer's public key: {e}"),
    })?;
    let hashed = hash.digest(message);
    match (kind, &key.algorithm.oid) {
        (KeyKind::Rsa, &RSA_ENCRYPTION) => {
            let k = rsa::RsaPublicKey::from_public_key_der(&key_der).map_err(|e| {
                SignatureError::Unsupported {
                    what: "RSA public key",
                    value: e.to_string(),
                }
            })?;
            Ok(k.verify(hash.pkcs1v15(), &hashed, signature).is_ok())
        }
        (KeyKind::Ec, &EC_PUBLIC_KEY) => {
            let curve = key
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Oid>().ok());
            if curve != Some(p256::NistP256::OID) {
                return Err(SignatureError::Unsupported {
                    what: "elliptic curve (only P-256)",
                    value: curve.map_or_else(|| "none".to_owned(), |c| c.to_string()),
                });
            }
            let k = p256::ecdsa::VerifyingKey::from_public_key_der(&key_der).map_err(|e| {
                SignatureError::Unsupported {
                    what: "P-256 public key",
                    value: e.to_string(),
                }
            })?;
            // A signature that is not even DER is garbage, not a mismatch.
            let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| {
                SignatureError::Malformed {
                    why: "the ECDSA signature value is not a DER (r, s) pair".to_owned(),
                }
            })?;
            Ok(k.verify_prehash(&hashed, &sig).is_ok())
        }
        (_, key_alg) => Err(SignatureError::Unsupported {
            what: "signature algorithm for the signer's key",
            value: format!("{alg} with key {key_alg}"),
        }),
    }
}
