#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Root-hash signature inputs: garbage and truncated DER, attached content, the `.verity.sig`
//! envelope, unsigned volumes, unsupported keys, and trusted-signer PEM — with openssl's
//! verdict alongside where it has one.

#[path = "common/openssl.rs"]
mod openssl;
#[path = "common/signing.rs"]
mod signing;

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::trust::{RootHashSignature, SignatureError, TrustedSigners};
use openssl::{KeyAlg, SignOpts, VerifyOpts, openssl_accepts, self_signed, sign};
use signing::{ROOT_A, ROOT_B, both, ours, root, trusting};

#[test]
fn garbage_and_truncated_signatures_are_malformed_and_openssl_agrees() {
    let dir = openssl::scratch("garbage");
    let signer = self_signed(&dir, "g", KeyAlg::Rsa, 1, &[]);
    let trusted = trusting(&[&signer]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let mut cases: Vec<Vec<u8>> = vec![
        b"\x30\x03garbage".to_vec(),
        vec![0x30; 64],
        sig[..sig.len() / 2].to_vec(),
        sig[..sig.len() - 1].to_vec(),
    ];
    // A flipped byte inside the DER length fields or in the middle.
    let mut flipped = sig.clone();
    flipped[1] ^= 0x01;
    cases.push(flipped);
    for (i, bad) in cases.iter().enumerate() {
        let (ours, reference) = both(&dir, &trusted, &signer, bad, ROOT_A);
        assert!(!reference, "case {i}");
        assert!(
            matches!(ours, Err(SignatureError::Malformed { .. })),
            "case {i}: {ours:?}"
        );
    }
    // Bytes after the DER: openssl ignores them and accepts; we refuse anything but exactly
    // one DER structure (a deliberate difference: the signature must mean one thing).
    let trailing = [&sig[..], b"\0"].concat();
    let (ours, reference) = both(&dir, &trusted, &signer, &trailing, ROOT_A);
    assert!(reference);
    assert!(
        matches!(&ours, Err(SignatureError::Malformed { why }) if why.contains("trailing")),
        "{ours:?}"
    );
    // Not base64, and base64 of neither DER nor JSON.
    assert!(matches!(
        RootHashSignature::parse("not base64!"),
        Err(SignatureError::Malformed { why }) if why.contains("base64")
    ));
    assert!(matches!(
        RootHashSignature::parse(&STANDARD.encode("hello")),
        Err(SignatureError::Malformed { .. })
    ));
    // Too large for the kernel's key payload, so refused for userspace too.
    assert_eq!(
        RootHashSignature::from_der(vec![0x30; 40000]),
        Err(SignatureError::TooLarge { len: 40000 })
    );
}

#[test]
fn an_attached_signature_is_refused() {
    let dir = openssl::scratch("attached");
    let signer = self_signed(&dir, "att", KeyAlg::Rsa, 1, &[]);
    let opts = SignOpts {
        nodetach: true,
        ..SignOpts::default()
    };
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &opts);
    assert!(matches!(
        ours(&trusting(&[&signer]), &sig, ROOT_A),
        Err(SignatureError::Malformed { why }) if why.contains("detached")
    ));
}

#[test]
fn the_verity_sig_envelope_is_accepted_and_checked() {
    use sha2::Digest as _;
    let dir = openssl::scratch("envelope");
    let signer = self_signed(&dir, "env", KeyAlg::P256, 1, &[]);
    let trusted = trusting(&[&signer]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    let fp = hex::encode(sha2::Sha256::digest(signer.der()));
    let envelope = |root: &str, fp: Option<&str>| {
        let mut j = serde_json::json!({"rootHash": root, "signature": STANDARD.encode(&sig)});
        if let Some(f) = fp {
            j["certificateFingerprint"] = f.into();
        }
        j.to_string()
    };
    let check = |json: &[u8]| {
        let s = RootHashSignature::parse(&STANDARD.encode(json))?;
        assert!(s.is_envelope());
        trusted
            .verify(&s, &root(ROOT_A), SystemTime::now())
            .map(|_| ())
    };
    assert_eq!(check(envelope(ROOT_A, None).as_bytes()), Ok(()));
    assert_eq!(check(envelope(ROOT_A, Some(&fp)).as_bytes()), Ok(()));
    // Upper-case root hash, colon-separated upper-case fingerprint, NUL padding as systemd
    // writes to the verity signature partition.
    let colons = fp
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let mut padded = envelope(&ROOT_A.to_uppercase(), Some(&colons)).into_bytes();
    padded.resize(4096, 0);
    assert_eq!(check(&padded), Ok(()));

    // The envelope names another root hash: refused before any cryptography. The signature
    // inside is for the envelope's hash, so openssl refuses it for the volume's hash too.
    let sig_b = sign(&dir, ROOT_B.as_bytes(), &signer, &SignOpts::default());
    let json_b = serde_json::json!({"rootHash": ROOT_B, "signature": STANDARD.encode(&sig_b)});
    let s = RootHashSignature::parse(&STANDARD.encode(json_b.to_string())).unwrap();
    assert!(matches!(
        trusted.verify(&s, &root(ROOT_A), SystemTime::now()),
        Err(SignatureError::EnvelopeMismatch { field: "rootHash", value, .. }) if value == ROOT_B
    ));
    assert!(!openssl_accepts(
        &dir,
        &sig_b,
        ROOT_A.as_bytes(),
        &signer.cert,
        &VerifyOpts::default()
    ));

    // A fingerprint of another certificate.
    let other = "ab".repeat(32);
    assert!(matches!(
        check(envelope(ROOT_A, Some(&other)).as_bytes()),
        Err(SignatureError::EnvelopeMismatch {
            field: "certificateFingerprint",
            ..
        })
    ));

    // Malformed envelopes.
    for bad in [
        r#"{"rootHash": 5, "signature": ""}"#.to_owned(),
        r#"{"signature": "MAA="}"#.to_owned(),
        format!(r#"{{"rootHash": "{ROOT_A}", "signature": "%%%"}}"#),
        format!(
            r#"{{"rootHash": "xyz", "signature": "{}"}}"#,
            STANDARD.encode(&sig)
        ),
        format!(
            r#"{{"rootHash": "{ROOT_A}", "signature": "{}", "certificateFingerprint": "abc"}}"#,
            STANDARD.encode(&sig)
        ),
        format!(
            r#"{{"rootHash": "{ROOT_A}", "signature": "{}", "extra": 1}}"#,
            STANDARD.encode(&sig)
        ),
        r#"{"rootHash": "#.to_owned(),
    ] {
        assert!(
            matches!(
                RootHashSignature::parse(&STANDARD.encode(&bad)),
                Err(SignatureError::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn an_unsigned_volume_is_refused_only_when_signatures_are_required() {
    let t = TrustedSigners::new();
    let now = SystemTime::now();
    assert_eq!(t.check(None, &root(ROOT_A), false, now), Ok(None));
    assert_eq!(
        t.check(None, &root(ROOT_A), true, now),
        Err(SignatureError::Unsigned {
            root_hash: ROOT_A.to_owned()
        })
    );
    // A signature that is present is verified even when none is required.
    let s = RootHashSignature::from_der(b"\x30\x00".to_vec()).unwrap();
    assert!(t.check(Some(&s), &root(ROOT_A), false, now).is_err());
}

#[test]
fn unsupported_keys_are_refused_clearly() {
    let dir = openssl::scratch("p384");
    let signer = self_signed(&dir, "p384", KeyAlg::P384, 1, &[]);
    let sig = sign(&dir, ROOT_A.as_bytes(), &signer, &SignOpts::default());
    assert!(matches!(
        ours(&trusting(&[&signer]), &sig, ROOT_A),
        Err(SignatureError::Unsupported { what, .. }) if what.contains("curve")
    ));
}

#[test]
fn trusted_signer_pem_is_loaded_strictly_and_digested() {
    use sha2::Digest as _;
    let dir = openssl::scratch("pem");
    let a = self_signed(&dir, "a", KeyAlg::Rsa, 1, &[]);
    let b = self_signed(&dir, "b", KeyAlg::P256, 1, &[]);
    let bundle = format!("Signers for layers\n{}\n{}", a.pem(), b.pem());
    let mut t = TrustedSigners::new();
    assert_eq!(
        t.add_pem(&bundle, "initdata:verity-signers.pem").unwrap(),
        2
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t.material().len(), 1);
    assert_eq!(
        t.material()[0].sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(bundle.as_bytes()))
    );
    assert_eq!(
        t.material()[0].to_string(),
        format!(
            "initdata:verity-signers.pem sha256:{}",
            hex::encode(sha2::Sha256::digest(bundle.as_bytes()))
        )
    );

    let key = std::fs::read_to_string(&a.key).unwrap();
    let pem = a.pem();
    let body_start = pem.find('\n').unwrap() + 1;
    let mut corrupt = pem.clone();
    corrupt.replace_range(body_start..body_start + 4, "!!!!");
    let not_x509 = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(b"\x30\x03\x02\x01\x01")
    );
    let cases = [
        ("", "no CERTIFICATE"),
        ("just text", "no CERTIFICATE"),
        (key.as_str(), "PRIVATE KEY"),
        (corrupt.as_str(), "does not decode"),
        (&pem[..pem.len() / 2], "does not decode"),
        (not_x509.as_str(), "not X.509"),
    ];
    for (text, why) in cases {
        let mut t = TrustedSigners::new();
        match t.add_pem(text, "signers.pem") {
            Err(e @ SignatureError::Pem { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("Invalid trusted signer PEM signers.pem: "),
                    "{msg}"
                );
                assert!(msg.contains(why), "{msg} lacks {why}");
            }
            other => panic!("{why}: {other:?}"),
        }
        assert!(t.is_empty());
    }
}
