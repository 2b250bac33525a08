//! X.509 certificates as signers: loading trusted ones from PEM, and the rules a certificate
//! must meet to vouch for a root hash.
//!
//! Rules (checked at the time the caller passes, normally now):
//! - within its validity period (`notBefore ≤ now ≤ notAfter`);
//! - key usage, when present, includes `digitalSignature` (`nonRepudiation` alone is not
//!   enough);
//! - extended key usage, when present, includes `codeSigning` or `anyExtendedKeyUsage`;
//! - no critical extension this module does not understand (RFC 5280 §4.2).
//!
//! A certificate that *issues* a signer (see `signature` for the one-level rule) must be
//! within its validity period, have basic constraints with `cA` true, and key usage (when
//! present) must include `keyCertSign`.

use std::time::SystemTime;

use der::asn1::ObjectIdentifier as Oid;
use der::{Decode as _, Encode as _};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};

use super::SignatureError;
use super::crypto::{signature_hash, verify};
use crate::trust::quote;

const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");

/// Critical extensions we understand; any other critical one makes a certificate unusable.
const UNDERSTOOD: [Oid; 6] = [
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    EXT_KEY_USAGE,
    SUBJECT_KEY_ID,
    AUTHORITY_KEY_ID,
    SUBJECT_ALT_NAME,
];

/// A parsed certificate with what the checks need.
#[derive(Debug, Clone)]
pub(super) struct Cert {
    pub(super) cert: Certificate,
    /// SHA-256 of the DER encoding (the `.verity.sig` `certificateFingerprint`).
    pub(super) fingerprint: [u8; 32],
}

impl Cert {
    pub(super) fn from_der(der: &[u8]) -> Result<Self, der::Error> {
        let cert = Certificate::from_der(der)?;
        Ok(Self {
            fingerprint: Sha256::digest(der).into(),
            cert,
        })
    }

    pub(super) fn from_parsed(cert: Certificate) -> Result<Self, der::Error> {
        let der = cert.to_der()?;
        Ok(Self {
            fingerprint: Sha256::digest(&der).into(),
            cert,
        })
    }

    /// The subject, RFC 4514 style (for messages).
    pub(super) fn subject(&self) -> String {
        quote(&self.cert.tbs_certificate.subject.to_string())
    }

    /// The subject key identifier, if the certificate has one.
    pub(super) fn subject_key_id(&self) -> Option<Vec<u8>> {
        self.extension::<SubjectKeyIdentifier>(SUBJECT_KEY_ID)
            .ok()
            .flatten()
            .map(|s| s.0.as_bytes().to_vec())
    }

    /// Checks the rules for a signer of root hashes.
    pub(super) fn check_signer(&self, now: SystemTime) -> Result<(), SignatureError> {
        self.check_validity(now)?;
        self.check_critical()?;
        let refuse = |why: String| SignatureError::NotASigningCertificate {
            subject: self.subject(),
            why,
        };
        if let Some(ku) = self.extension::<KeyUsage>(KEY_USAGE).map_err(&refuse)?
            && !ku.digital_signature()
        {
            return Err(refuse("its key usage lacks digitalSignature".into()));
        }
        if let Some(eku) = self
            .extension::<ExtendedKeyUsage>(EXT_KEY_USAGE)
            .map_err(&refuse)?
            && !eku
                .0
                .iter()
                .any(|u| *u == CODE_SIGNING || *u == ANY_EXTENDED_KEY_USAGE)
        {
            return Err(refuse(
                "its extended key usage allows neither codeSigning nor any usage".into(),
            ));
        }
        Ok(())
    }

    /// Checks the rules for a certificate that issues a signer; `Err` explains why not.
    pub(super) fn check_issuer(&self, now: SystemTime) -> Result<(), SignatureError> {
        self.check_validity(now)?;
        self.check_critical()?;
        let refuse = |why: String| SignatureError::NotASigningCertificate {
            subject: self.subject(),
            why,
        };
        let bc = self
            .extension::<BasicConstraints>(BASIC_CONSTRAINTS)
            .map_err(&refuse)?;
        if !bc.is_some_and(|b| b.ca) {
            return Err(refuse(
                "it issued the signer but is not a CA (basic constraints cA)".into(),
            ));
        }
        if let Some(ku) = self.extension::<KeyUsage>(KEY_USAGE).map_err(&refuse)?
            && !ku.key_cert_sign()
        {
            return Err(refuse(
                "it issued the signer but its key usage lacks keyCertSign".into(),
            ));
        }
        Ok(())
    }

    /// Whether `self` issued `child`: same name, and `child`'s signature verifies with
    /// `self`'s key.
    pub(super) fn issued(&self, child: &Cert) -> Result<bool, SignatureError> {
        if child.cert.tbs_certificate.issuer != self.cert.tbs_certificate.subject {
            return Ok(false);
        }
        let alg = &child.cert.signature_algorithm.oid;
        let hash = signature_hash(alg, None)?;
        let tbs = child
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| SignatureError::Malformed {
                why: format!("cannot re-encode an embedded certificate: {e}"),
            })?;
        let Some(sig) = child.cert.signature.as_bytes() else {
            return Ok(false);
        };
        verify(
            &self.cert.tbs_certificate.subject_public_key_info,
            alg,
            hash,
            &tbs,
            sig,
        )
    }

    fn check_validity(&self, now: SystemTime) -> Result<(), SignatureError> {
        let v = &self.cert.tbs_certificate.validity;
        if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
            return Err(SignatureError::CertificateNotValid {
                subject: self.subject(),
                not_before: v.not_before.to_string(),
                not_after: v.not_after.to_string(),
                now: der::DateTime::from_system_time(now)
                    .map_or_else(|_| "(out of range)".to_owned(), |d| d.to_string()),
            });
        }
        Ok(())
    }

    fn check_critical(&self) -> Result<(), SignatureError> {
        let exts = self.cert.tbs_certificate.extensions.iter().flatten();
        if let Some(e) = exts
            .filter(|e| e.critical)
            .find(|e| !UNDERSTOOD.contains(&e.extn_id))
        {
            return Err(SignatureError::NotASigningCertificate {
                subject: self.subject(),
                why: format!(
                    "it has a critical extension {} this check does not know",
                    e.extn_id
                ),
            });
        }
        Ok(())
    }

    /// The extension `oid` decoded as `T`; `Err` (a reason) when it does not decode or
    /// appears twice.
    fn extension<T: for<'a> der::Decode<'a>>(&self, oid: Oid) -> Result<Option<T>, String> {
        let mut found = self
            .cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == oid);
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(format!("it has extension {oid} twice"));
        }
        T::from_der(first.extn_value.as_bytes())
            .map(Some)
            .map_err(|e| format!("its extension {oid} does not decode: {e}"))
    }
}
