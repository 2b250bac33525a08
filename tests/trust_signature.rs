#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Root-hash signatures made at test time by `openssl cms -sign` / `openssl smime -sign`, each
//! verdict of ours cross-checked with `openssl smime -verify` (the reference): both must agree,
//! except where a comment names a deliberate difference of rule and asserts it. This file:
//! valid signatures, wrong hash, wrong signer, certificate rules and the trust rule.

#[path = "common/openssl.rs"]
mod openssl;
#[path = "common/signing.rs"]
mod signing;

use std::time::{Duration, SystemTime};

use kata_volume::trust::{RootHashSignature, SignatureError, TrustedSigners};
use kata_volume::verity::{Digest, HashAlgorithm};
use openssl::{KeyAlg, SignOpts, Signer, VerifyOpts, issued, openssl_accepts, self_signed, sign};
use signing::{ROOT_A, ROOT_B, both, epoch, ours, root, trusting};

#[test]
fn valid_signatures_of_every_form_verify_and_openssl_agrees() {
    let dir = openssl::scratch("valid");
    for alg in [KeyAlg::Rsa, KeyAlg::P256] {
        let signer = self_signed(&dir, &format!("signer-{alg:?}"), alg, 1, &[]);
        let trusted = trusting(&[&signer]);
        for smime in [false, true] {
            for noattr in [false, true] {
                for nocerts in [false, true] {
                    let opts = SignOpts {
                        smime,
                        noattr,
                        nocerts,
                        ..SignOpts::default()
                    };
                    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &opts);
                    let (ours, reference) = both(&dir, &trusted, &signer, &sig, ROOT_A);
                    assert!(reference, "openssl refused a valid {alg:?} {opts:?}");
                    assert_eq!(ours, Ok(()), "{alg:?} {opts:?}");
                }
            }
        }
        for md in ["sha384", "sha512"] {
            for noattr in [false, true] {
                let opts = SignOpts {
                    md: Some(md),
                    noattr,
                    ..SignOpts::default()
                };
                let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &opts);
                let (ours, reference) = both(&dir, &trusted, &signer, &sig, ROOT_A);
                assert!(reference, "{alg:?} {opts:?}");
                assert_eq!(ours, Ok(()), "{alg:?} {opts:?}");
            }
        }
        // The signer named by subject key identifier instead of issuer and serial (CMS only:
        // PKCS#7, and so `openssl smime`, cannot express it).
        for nocerts in [false, true] {
            let opts = SignOpts {
                keyid: true,
                nocerts,
                ..SignOpts::default()
            };
            let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &opts);
            let reference = openssl_accepts(
                &dir,
                &sig,
                ROOT_A.as_bytes(),
                &signer.cert,
                &VerifyOpts {
                    certfile: Some(signer.cert.clone()),
                    cms: true,
                    ..VerifyOpts::default()
                },
            );
            assert!(reference, "{alg:?} {opts:?}");
            assert_eq!(ours(&trusted, &sig, ROOT_A), Ok(()), "{alg:?} {opts:?}");
        }
    }
}

#[test]
fn the_verified_signer_is_reported_with_its_fingerprint() {
    let dir = openssl::scratch("report");
    let signer = self_signed(&dir, "reported", KeyAlg::P256, 1, &[]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let v = trusting(&[&signer])
        .verify(
            &RootHashSignature::from_der(sig).unwrap(),
            &root(ROOT_A),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(v.subject, "CN=reported");
    assert_eq!(v.issuer, None);
    use sha2::Digest as _;
    assert_eq!(
        v.fingerprint,
        hex::encode(sha2::Sha256::digest(signer.der()))
    );
}

#[test]
fn a_signature_over_another_root_hash_is_refused_and_openssl_agrees() {
    let dir = openssl::scratch("wrong-hash");
    for alg in [KeyAlg::Rsa, KeyAlg::P256] {
        let signer = self_signed(&dir, &format!("s-{alg:?}"), alg, 1, &[]);
        let trusted = trusting(&[&signer]);
        for (noattr, smime) in [(false, false), (true, false), (false, true), (true, true)] {
            let opts = SignOpts {
                noattr,
                smime,
                ..SignOpts::default()
            };
            let sig = sign(&dir, ROOT_B.as_bytes(), &signer, &opts);
            let (ours, reference) = both(&dir, &trusted, &signer, &sig, ROOT_A);
            assert!(!reference, "openssl accepted a signature over another hash");
            match ours {
                // With signed attributes the messageDigest tells: other data was signed.
                Err(SignatureError::WrongHash { root_hash }) if !noattr => {
                    assert_eq!(root_hash, ROOT_A)
                }
                // Without, only the signature value can fail.
                Err(SignatureError::BadSignature { root_hash, subject }) if noattr => {
                    assert_eq!(root_hash, ROOT_A);
                    assert_eq!(subject, format!("CN=s-{alg:?}"));
                }
                other => panic!("{alg:?} {opts:?}: {other:?}"),
            }
        }
        // The upper-case hex of the same root hash is other data too: systemd signs lower case.
        let sig = sign(
            &dir,
            ROOT_A.to_uppercase().as_bytes(),
            &signer,
            &SignOpts::default(),
        );
        assert!(matches!(
            ours(&trusted, &sig, ROOT_A),
            Err(SignatureError::WrongHash { .. })
        ));
    }
}

#[test]
fn a_signature_cannot_move_to_another_layer_or_another_algorithms_hash() {
    // The hostile host replays layer B's valid signature for layer A, or presents a sha256
    // signature for a sha512 or sha1 volume whose hex shares its leading digits.
    let dir = openssl::scratch("replay");
    let signer = self_signed(&dir, "replay", KeyAlg::Rsa, 1, &[]);
    let trusted = trusting(&[&signer]);
    let sig_b = sign(&dir, ROOT_B.as_bytes(), &signer, &SignOpts::default());
    assert!(matches!(
        ours(&trusted, &sig_b, ROOT_A),
        Err(SignatureError::WrongHash { .. })
    ));
    assert_eq!(ours(&trusted, &sig_b, ROOT_B), Ok(()));
    let sig_a = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let longer = Digest::from_hex(HashAlgorithm::Sha512, &format!("{ROOT_A}{ROOT_A}")).unwrap();
    let shorter = Digest::from_hex(HashAlgorithm::Sha1, &ROOT_A[..40]).unwrap();
    let parsed = RootHashSignature::from_der(sig_a).unwrap();
    for other in [longer, shorter] {
        assert!(matches!(
            trusted.verify(&parsed, &other, SystemTime::now()),
            Err(SignatureError::WrongHash { root_hash }) if root_hash == other.to_hex()
        ));
    }
}

#[test]
fn a_signature_by_another_signer_is_refused_and_openssl_agrees() {
    let dir = openssl::scratch("wrong-signer");
    let trusted_signer = self_signed(&dir, "trusted", KeyAlg::Rsa, 1, &[]);
    let other = self_signed(&dir, "other", KeyAlg::Rsa, 1, &[]);
    let trusted = trusting(&[&trusted_signer]);
    for nocerts in [false, true] {
        let opts = SignOpts {
            nocerts,
            ..SignOpts::default()
        };
        let sig = sign(&dir, ROOT_A.as_bytes(), &other, &opts);
        let (ours, reference) = both(&dir, &trusted, &trusted_signer, &sig, ROOT_A);
        assert!(!reference);
        match ours {
            Err(SignatureError::UntrustedSigner { signer }) => {
                assert!(signer.contains("CN=other"), "{signer}")
            }
            other => panic!("{opts:?}: {other:?}"),
        }
    }
    // No trusted signers at all: nothing can be trusted.
    let sig = sign(&dir, ROOT_A.as_bytes(), &other, &SignOpts::default());
    assert_eq!(
        ours(&TrustedSigners::new(), &sig, ROOT_A),
        Err(SignatureError::NoTrustedSigners)
    );
}

#[test]
fn a_forged_signer_identity_does_not_verify() {
    // A signature by `other` whose certificate claims the trusted signer's issuer and serial:
    // found as the trusted certificate, but its key does not verify the value.
    let dir = openssl::scratch("forged");
    let trusted_signer = self_signed(&dir, "victim", KeyAlg::P256, 1, &[]);
    let forger_key = self_signed(&dir, "forger", KeyAlg::P256, 1, &[]);
    let forged = Signer {
        key: forger_key.key.clone(),
        cert: dir.join("forged.crt"),
    };
    // Same subject (and so issuer) and serial as the victim, the forger's key.
    let serial = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&trusted_signer.cert)
        .output()
        .unwrap();
    let serial = String::from_utf8(serial.stdout).unwrap();
    let serial = serial.trim().trim_start_matches("serial=");
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-key"])
        .arg(&forged.key)
        .args(["-subj", "/CN=victim", "-days", "1", "-set_serial"])
        .arg(format!("0x{serial}"))
        .arg("-out")
        .arg(&forged.cert)
        .status()
        .unwrap();
    assert!(ok.success());
    let sig = sign(&dir, ROOT_A.as_bytes(), &forged, &SignOpts::default());
    let trusted = trusting(&[&trusted_signer]);
    let (ours, reference) = both(&dir, &trusted, &trusted_signer, &sig, ROOT_A);
    assert!(!reference);
    assert!(
        matches!(ours, Err(SignatureError::BadSignature { .. })),
        "{ours:?}"
    );
}

#[test]
fn an_expired_or_not_yet_valid_certificate_is_refused_and_openssl_agrees() {
    let dir = openssl::scratch("expired");
    let signer = self_signed(&dir, "shortlived", KeyAlg::Rsa, 1, &[]);
    let trusted = trusting(&[&signer]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let parsed = RootHashSignature::from_der(sig.clone()).unwrap();
    let now = SystemTime::now();
    let day = Duration::from_secs(86400);
    for (at, valid) in [(now, true), (now + 3 * day, false), (now - 3 * day, false)] {
        let reference = openssl_accepts(
            &dir,
            &sig,
            ROOT_A.as_bytes(),
            &signer.cert,
            &VerifyOpts {
                attime: Some(epoch(at)),
                ..VerifyOpts::default()
            },
        );
        let ours = trusted.verify(&parsed, &root(ROOT_A), at);
        assert_eq!(reference, valid, "openssl at {at:?}");
        if valid {
            assert!(ours.is_ok(), "{ours:?}");
        } else {
            match ours {
                Err(SignatureError::CertificateNotValid { subject, .. }) => {
                    assert_eq!(subject, "CN=shortlived")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn a_certificate_without_digital_signature_usage_is_refused() {
    let dir = openssl::scratch("keyusage");
    let enc_only = self_signed(&dir, "enc", KeyAlg::Rsa, 1, &["keyUsage=keyEncipherment"]);
    let trusted = trusting(&[&enc_only]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &enc_only, &SignOpts::default());
    let err = ours(&trusted, &sig, ROOT_A).unwrap_err();
    assert!(
        matches!(&err, SignatureError::NotASigningCertificate { why, .. } if why.contains("digitalSignature")),
        "{err:?}"
    );
    // openssl agrees once asked to check a signing purpose: `smimesign` refuses a key usage
    // without digitalSignature or nonRepudiation. (`-purpose any` checks no key usage at all:
    // there openssl accepts, which is the difference of rule this test pins down.)
    let with = |purpose| {
        openssl_accepts(
            &dir,
            &sig,
            ROOT_A.as_bytes(),
            &enc_only.cert,
            &VerifyOpts {
                purpose: Some(purpose),
                ..VerifyOpts::default()
            },
        )
    };
    assert!(!with("smimesign"));
    assert!(with("any"));

    let signing = self_signed(&dir, "sig", KeyAlg::Rsa, 1, &["keyUsage=digitalSignature"]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signing, &SignOpts::default());
    let (ours, reference) = both(&dir, &trusting(&[&signing]), &signing, &sig, ROOT_A);
    assert!(reference);
    assert_eq!(ours, Ok(()));
}

#[test]
fn extended_key_usage_must_allow_code_signing_or_any() {
    let dir = openssl::scratch("eku");
    for (eku, allowed) in [
        ("extendedKeyUsage=codeSigning", true),
        ("extendedKeyUsage=anyExtendedKeyUsage", true),
        ("extendedKeyUsage=serverAuth", false),
        ("extendedKeyUsage=emailProtection", false),
    ] {
        let cn = eku.trim_start_matches("extendedKeyUsage=");
        let signer = self_signed(&dir, cn, KeyAlg::P256, 1, &[eku]);
        let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
        let (ours, reference) = both(&dir, &trusting(&[&signer]), &signer, &sig, ROOT_A);
        // `-purpose any` checks no extended key usage: openssl accepts all four; ours is
        // the stricter rule of docs/trust.md.
        assert!(reference, "{eku}");
        if allowed {
            assert_eq!(ours, Ok(()), "{eku}");
        } else {
            assert!(
                matches!(&ours, Err(SignatureError::NotASigningCertificate { why, .. }) if why.contains("codeSigning")),
                "{eku}: {ours:?}"
            );
        }
    }
}

#[test]
fn an_unknown_critical_extension_is_refused_and_openssl_agrees() {
    let dir = openssl::scratch("critical");
    let signer = self_signed(
        &dir,
        "critical",
        KeyAlg::Rsa,
        1,
        &["1.3.6.1.4.1.99999.1=critical,ASN1:UTF8String:hello"],
    );
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let (ours, reference) = both(&dir, &trusting(&[&signer]), &signer, &sig, ROOT_A);
    assert!(!reference);
    assert!(
        matches!(&ours, Err(SignatureError::NotASigningCertificate { why, .. }) if why.contains("1.3.6.1.4.1.99999.1")),
        "{ours:?}"
    );
}

#[test]
fn a_signer_issued_by_a_trusted_ca_verifies_one_level_only() {
    let dir = openssl::scratch("ca");
    let ca = self_signed(
        &dir,
        "root-ca",
        KeyAlg::Rsa,
        2,
        &["keyUsage=keyCertSign,cRLSign"],
    );
    let leaf_ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n";
    let leaf = issued(&dir, "leaf", KeyAlg::P256, &ca, leaf_ext);
    let trusted = trusting(&[&ca]);

    // Embedded leaf, issued by the trusted CA: accepted by both.
    let sig = sign(&dir, ROOT_A.as_bytes(), &leaf, &SignOpts::default());
    assert!(openssl_accepts(
        &dir,
        &sig,
        ROOT_A.as_bytes(),
        &ca.cert,
        &VerifyOpts::default()
    ));
    let v = trusted
        .verify(
            &RootHashSignature::from_der(sig).unwrap(),
            &root(ROOT_A),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(v.subject, "CN=leaf");
    assert_eq!(v.issuer.as_deref(), Some("CN=root-ca"));

    // The leaf not embedded: nobody can find it.
    let opts = SignOpts {
        nocerts: true,
        ..SignOpts::default()
    };
    let sig = sign(&dir, ROOT_A.as_bytes(), &leaf, &opts);
    assert!(!openssl_accepts(
        &dir,
        &sig,
        ROOT_A.as_bytes(),
        &ca.cert,
        &VerifyOpts::default()
    ));
    assert!(matches!(
        ours(&trusted, &sig, ROOT_A),
        Err(SignatureError::UntrustedSigner { .. })
    ));

    // A CA without the CA flag (a plain signing certificate) does not issue signers.
    let not_ca = self_signed(
        &dir,
        "not-a-ca",
        KeyAlg::Rsa,
        2,
        &["basicConstraints=critical,CA:FALSE"],
    );
    let leaf2 = issued(&dir, "leaf2", KeyAlg::Rsa, &not_ca, leaf_ext);
    let sig = sign(&dir, ROOT_A.as_bytes(), &leaf2, &SignOpts::default());
    assert!(!openssl_accepts(
        &dir,
        &sig,
        ROOT_A.as_bytes(),
        &not_ca.cert,
        &VerifyOpts::default()
    ));
    let err = ours(&trusting(&[&not_ca]), &sig, ROOT_A).unwrap_err();
    assert!(
        matches!(&err, SignatureError::NotASigningCertificate { subject, why } if subject == "CN=not-a-ca" && why.contains("not a CA")),
        "{err:?}"
    );

    // root CA → intermediate → leaf, intermediate embedded: openssl builds the chain and
    // accepts; our rule is one level, so we refuse (the difference is deliberate).
    let inter = issued(
        &dir,
        "intermediate",
        KeyAlg::Rsa,
        &ca,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign\n",
    );
    let deep = issued(&dir, "deep-leaf", KeyAlg::Rsa, &inter, leaf_ext);
    let opts = SignOpts {
        certfile: Some(inter.cert.clone()),
        ..SignOpts::default()
    };
    let sig = sign(&dir, ROOT_A.as_bytes(), &deep, &opts);
    assert!(openssl_accepts(
        &dir,
        &sig,
        ROOT_A.as_bytes(),
        &ca.cert,
        &VerifyOpts::default()
    ));
    assert!(matches!(
        ours(&trusted, &sig, ROOT_A),
        Err(SignatureError::UntrustedSigner { signer }) if signer.contains("CN=deep-leaf")
    ));
}
