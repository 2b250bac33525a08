//! RFC 5652 `SignedData` verification of a detached signature over known content: parse,
//! find the signer among the trusted certificates (or one level below them), check the
//! certificates' rules, check the signed attributes, check the signature value.

use std::time::SystemTime;

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::{Decode as _, Encode as _};

use super::SignatureError;
use super::cert::Cert;
use super::crypto::{Hash, signature_hash, verify as verify_value};

const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");

/// The signer that verified, and the trusted CA that issued it when it is not trusted itself.
pub(super) struct Signer {
    pub(super) cert: Cert,
    pub(super) issuer: Option<Cert>,
}

fn malformed(why: impl Into<String>) -> SignatureError {
    SignatureError::Malformed { why: why.into() }
}

/// Verifies the DER `SignedData` in `der` as a detached signature over `content`.
pub(super) fn verify(
    der: &[u8],
    content: &[u8],
    trusted: &[Cert],
    now: SystemTime,
) -> Result<Signer, SignatureError> {
    let ci = ContentInfo::from_der(der)
        .map_err(|e| malformed(format!("not a DER CMS ContentInfo: {e}")))?;
    if ci.content_type != SIGNED_DATA {
        return Err(malformed(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| malformed(format!("not a DER SignedData: {e}")))?;
    if sd.encap_content_info.econtent_type != DATA {
        return Err(SignatureError::Unsupported {
            what: "encapsulated content type",
            value: sd.encap_content_info.econtent_type.to_string(),
        });
    }
    if sd.encap_content_info.econtent.is_some() {
        return Err(malformed(
            "it carries its content: expected a detached signature",
        ));
    }
    let mut infos = sd.signer_infos.0.iter();
    let (Some(si), None) = (infos.next(), infos.next()) else {
        return Err(malformed(format!(
            "it has {} signers: expected exactly one",
            sd.signer_infos.0.len()
        )));
    };
    let digest = Hash::from_oid(&si.digest_alg.oid)?;
    let sig_hash = signature_hash(&si.signature_algorithm.oid, Some(digest))?;
    let embedded: Vec<Cert> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .map(Cert::from_parsed)
        .collect::<Result<_, _>>()
        .map_err(|e| malformed(format!("an embedded certificate does not re-encode: {e}")))?;
    let signer = find_signer(&si.sid, trusted, &embedded)?;
    signer.cert.check_signer(now)?;
    if let Some(issuer) = &signer.issuer {
        issuer.check_issuer(now)?;
    }
    let message = match &si.signed_attrs {
        Some(attrs) => {
            check_signed_attributes(si, digest, content)?;
            attrs
                .to_der()
                .map_err(|e| malformed(format!("signed attributes do not re-encode: {e}")))?
        }
        None => content.to_vec(),
    };
    let spki = &signer.cert.cert.tbs_certificate.subject_public_key_info;
    let ok = verify_value(
        spki,
        &si.signature_algorithm.oid,
        sig_hash,
        &message,
        si.signature.as_bytes(),
    )?;
    if !ok {
        return Err(SignatureError::BadSignature {
            root_hash: String::from_utf8_lossy(content).into_owned(),
            subject: signer.cert.subject(),
        });
    }
    Ok(signer)
}

/// `contentType` must be `id-data` and `messageDigest` the digest of `content`.
fn check_signed_attributes(
    si: &SignerInfo,
    digest: Hash,
    content: &[u8],
) -> Result<(), SignatureError> {
    let attrs = si.signed_attrs.iter().flat_map(|a| a.iter());
    let single = |oid: Oid, name: &str| {
        let mut found = attrs.clone().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => a
                .values
                .get(0)
                .ok_or_else(|| malformed(format!("signed attribute {name} has no value"))),
            (None, _) => Err(malformed(format!("signed attribute {name} is missing"))),
            _ => Err(malformed(format!(
                "signed attribute {name} must appear once with one value"
            ))),
        }
    };
    let content_type: Oid = single(CONTENT_TYPE, "contentType")?
        .decode_as()
        .map_err(|e| malformed(format!("signed attribute contentType is not an OID: {e}")))?;
    if content_type != DATA {
        return Err(malformed(format!(
            "signed attribute contentType {content_type} is not id-data"
        )));
    }
    let md: OctetString = single(MESSAGE_DIGEST, "messageDigest")?
        .decode_as()
        .map_err(|e| {
            malformed(format!(
                "signed attribute messageDigest is not an OCTET STRING: {e}"
            ))
        })?;
    if md.as_bytes() != digest.digest(content).as_slice() {
        return Err(SignatureError::WrongHash {
            root_hash: String::from_utf8_lossy(content).into_owned(),
        });
    }
    Ok(())
}

/// The trusted certificate `sid` names, or an embedded certificate it names that a trusted
/// CA certificate issued.
fn find_signer(
    sid: &SignerIdentifier,
    trusted: &[Cert],
    embedded: &[Cert],
) -> Result<Signer, SignatureError> {
    let names = |c: &Cert| match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            c.cert.tbs_certificate.issuer == isn.issuer
                && c.cert.tbs_certificate.serial_number == isn.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            c.subject_key_id().as_deref() == Some(ski.0.as_bytes())
        }
    };
    if let Some(c) = trusted.iter().find(|c| names(c)) {
        return Ok(Signer {
            cert: c.clone(),
            issuer: None,
        });
    }
    let Some(leaf) = embedded.iter().find(|c| names(c)) else {
        return Err(SignatureError::UntrustedSigner {
            signer: describe(sid),
        });
    };
    for ca in trusted {
        if ca.issued(leaf)? {
            return Ok(Signer {
                cert: leaf.clone(),
                issuer: Some(ca.clone()),
            });
        }
    }
    Err(SignatureError::UntrustedSigner {
        signer: format!("{} (not issued by a trusted certificate)", leaf.subject()),
    })
}

/// The signer as the signature names it, when no certificate for it is at hand.
fn describe(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => crate::trust::quote(&format!(
            "with issuer {} and serial {}",
            isn.issuer,
            hex::encode(isn.serial_number.as_bytes())
        )),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("with subject key id {}", hex::encode(ski.0.as_bytes()))
        }
    }
}
