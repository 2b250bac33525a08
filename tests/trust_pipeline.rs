#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The trust material in the pipeline, over the fake: the allowlist (policy list,
//! `verified-layers.toml`, initdata; algorithm-keyed, any case, fail closed when required)
//! and root-hash signatures (from the volume, the driver option, or both; made by `openssl`
//! at test time) are checked by `authorize` — refused with `PERMISSION_DENIED` naming the
//! reason before any device is touched — and the policy's trust files are loaded with errors
//! naming the file. Kernel signatures and the table read back: `trust_kernel.rs`.

#[path = "common/openssl.rs"]
mod openssl;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::manager::{ErrorKind, Storage, VolumeManager};
use kata_volume::policy::{Policy, PolicyError, PolicyParseError};
use kata_volume::system::{FakeSystem, Op, Snapshot};
use openssl::{KeyAlg, SignOpts, Signer, self_signed, sign};
use pipeline::{ROOT, SIG, manager, policy, request, system, verity, volume_option};
use sha2::{Digest as _, Sha256};

const ROOT_A: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
const ROOT_B: &str = "0f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3b";
const ROOT_C: &str = "1f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3c";

/// Base64 of a detached signature by `by` over `content`.
fn sig(dir: &Path, by: &Signer, content: &str) -> String {
    STANDARD.encode(sign(dir, content.as_bytes(), by, &SignOpts::default()))
}

/// Asserts `s` is refused with `kind` and a message containing `says`, and that the refusal
/// touched nothing: no mutating call, the same kernel objects.
fn refused(m: &VolumeManager, sys: &FakeSystem, s: &Storage, kind: ErrorKind, says: &str) {
    let before: Snapshot = sys.snapshot();
    let calls = sys.calls().len();
    let e = m.add_storage(s).unwrap_err();
    let msg = kata_volume::error_chain(&e);
    assert_eq!(e.kind(), kind, "{msg}");
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    assert!(!msg.contains('\n'), "{msg:?}");
    let made: Vec<Op> = sys.calls()[calls..]
        .iter()
        .copied()
        .filter(|c| Op::MUTATING.contains(c))
        .collect();
    assert!(made.is_empty(), "{says}: {made:?}");
    assert_eq!(sys.snapshot(), before);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn layers_toml(required: bool, layers: &[(&str, &str)]) -> String {
    let mut t = format!("require_verified_layers = {required}\n");
    for (alg, hash) in layers {
        t.push_str(&format!(
            "[[layer]]\nalgorithm = \"{alg}\"\nroot_hash = \"{hash}\"\n"
        ));
    }
    t
}

#[test]
fn an_allowlist_file_admits_what_it_lists_in_any_case_and_refuses_the_rest_first() {
    let dir = openssl::scratch("pipe-list");
    let file = write(
        &dir,
        "verified-layers.toml",
        &layers_toml(false, &[("SHA256", &ROOT_A.to_uppercase())]),
    );
    let sys = system();
    let m = manager(&sys, policy(|p| p.verified_layers = Some(file.into())));
    let v = m.add_storage(&request(ROOT_A, None, "a")).unwrap();
    assert_eq!(v.root_hash.unwrap().to_hex(), ROOT_A);
    refused(
        &m,
        &sys,
        &request(ROOT_B, None, "b"),
        ErrorKind::PermissionDenied,
        &format!("Root hash sha256:{ROOT_B} is not in the allowlist of verified layers"),
    );
    // Checked before the source: a listed-only rule refuses even a request whose disk is
    // missing, without looking at it.
    let mut missing = request(ROOT_B, None, "c");
    missing.source = "/dev/vdz".into();
    refused(&m, &sys, &missing, ErrorKind::PermissionDenied, "allowlist");
}

#[test]
fn required_and_empty_refuses_everything() {
    let dir = openssl::scratch("pipe-empty");
    let empty = write(&dir, "empty.toml", &layers_toml(true, &[]));
    let sys = system();
    for p in [
        policy(|p| p.require_verified_layers = true),
        policy(|p| p.verified_layers = Some(empty.clone().into())),
        policy(|p| p.trusted_root_hashes = Some(Default::default())),
    ] {
        assert!(p.trust.allowlist().is_required());
        let m = manager(&sys, p);
        refused(
            &m,
            &sys,
            &request(ROOT_A, None, "a"),
            ErrorKind::PermissionDenied,
            "require_verified_layers is set and the allowlist is empty",
        );
    }
    // Not required and empty: restricts nothing.
    let m = manager(&sys, policy(|_| {}));
    m.add_storage(&request(ROOT_A, None, "a")).unwrap();
}

#[test]
fn the_allowlist_is_keyed_by_algorithm() {
    let sys = system();
    let sha1 = &ROOT_A[..40];
    let m = manager(
        &sys,
        policy(|p| p.trusted_root_hashes = Some([sha1.to_uppercase()].into_iter().collect())),
    );
    // The sha1 hash's digits at the start of a sha256 hash do not make it listed.
    refused(
        &m,
        &sys,
        &request(ROOT_A, None, "a"),
        ErrorKind::PermissionDenied,
        "is not in the allowlist",
    );
    let mut s = request(ROOT_A, None, "b");
    s.options = vec![volume_option(&verity("sha1", sha1, ""))];
    m.add_storage(&s).unwrap();
}

#[test]
fn the_policy_list_and_the_files_are_one_allowlist() {
    let dir = openssl::scratch("pipe-union");
    let file = write(&dir, "l.toml", &layers_toml(false, &[("sha256", ROOT_B)]));
    let sys = system();
    let m = manager(
        &sys,
        policy(|p| {
            p.trusted_root_hashes = Some([format!("sha256:{ROOT_A}")].into_iter().collect());
            p.verified_layers = Some(file.into());
        }),
    );
    m.add_storage(&request(ROOT_A, None, "a")).unwrap();
    m.add_storage(&request(ROOT_B, None, "b")).unwrap();
    refused(
        &m,
        &sys,
        &request(ROOT_C, None, "c"),
        ErrorKind::PermissionDenied,
        "is not in the allowlist",
    );
}

#[test]
fn initdata_carries_the_allowlist_and_the_signers_and_every_file_is_digested() {
    let dir = openssl::scratch("pipe-initdata");
    let signer = self_signed(&dir, "initdata-signer", KeyAlg::P256, 1, &[]);
    let layers = layers_toml(true, &[("sha256", ROOT_A)]);
    let doc = format!(
        "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"verified-layers.toml\" = '''\n{layers}'''\n\"verity-signers.pem\" = '''\n{}'''\n",
        signer.pem()
    );
    let file = write(&dir, "initdata.toml", &doc);
    let p = policy(|p| {
        p.initdata = Some(file.clone().into());
        p.trusted_signers = vec!["initdata:verity-signers.pem".into()];
        p.require_signatures = true;
    });
    assert_eq!(p.trust.signers().len(), 1);
    let d = p.trust.initdata_digest().unwrap();
    assert_eq!(d.source, file);
    assert_eq!(d.algorithm.name(), "sha384");
    assert_eq!(d.digest.len(), 96);
    let material: Vec<(String, String)> = p
        .trust
        .material()
        .iter()
        .map(|m| (m.source.clone(), m.hex()))
        .collect();
    let hex = |text: &str| hex::encode(Sha256::digest(text.as_bytes()));
    assert_eq!(
        material,
        vec![
            (file.clone(), hex(&doc)),
            ("initdata:verified-layers.toml".into(), hex(&layers)),
            ("initdata:verity-signers.pem".into(), hex(&signer.pem())),
        ]
    );
    let sys = system();
    let m = manager(&sys, p);
    m.add_storage(&request(ROOT_A, Some(&sig(&dir, &signer, ROOT_A)), "a"))
        .unwrap();
    refused(
        &m,
        &sys,
        &request(ROOT_A, None, "b"),
        ErrorKind::PermissionDenied,
        &format!("Root hash {ROOT_A} is not signed: the policy requires a root-hash signature"),
    );
    refused(
        &m,
        &sys,
        &request(ROOT_B, Some(&sig(&dir, &signer, ROOT_B)), "c"),
        ErrorKind::PermissionDenied,
        "is not in the allowlist",
    );
}

#[test]
fn trust_files_are_loaded_with_errors_naming_the_file() {
    let dir = openssl::scratch("pipe-load");
    let load = |f: &dyn Fn(&mut Policy)| {
        let mut p = Policy::default();
        f(&mut p);
        kata_volume::error_chain(&p.load_trust().unwrap_err())
    };
    let e = load(&|p| p.verified_layers = Some("/nonexistent/layers.toml".into()));
    assert!(
        e.starts_with("Cannot read verified_layers file \"/nonexistent/layers.toml\": "),
        "{e}"
    );
    let bad = write(&dir, "bad.toml", "[[layer]]\nalgorithm = \"md5\"\n");
    let e = load(&|p| p.verified_layers = Some(bad.clone().into()));
    assert!(e.contains(&bad) && e.contains("\"md5\""), "{e}");
    let not_pem = write(&dir, "signer.pem", "not a certificate\n");
    let e = load(&|p| p.trusted_signers = vec![not_pem.clone()]);
    assert_eq!(
        e,
        format!("Invalid trusted signer PEM {not_pem}: no CERTIFICATE block")
    );
    let e = load(&|p| p.trusted_signers = vec!["initdata:signers.pem".into()]);
    assert!(e.contains("none is configured"), "{e}");
    let doc = write(
        &dir,
        "initdata.toml",
        "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n",
    );
    let e = load(&|p| {
        p.initdata = Some(doc.clone().into());
        p.trusted_signers = vec!["initdata:signers.pem".into()];
    });
    assert!(
        e.contains(&doc) && e.contains("has no key \"signers.pem\""),
        "{e}"
    );
    // A policy file that names initdata keys without initdata is refused as it is read.
    let e = Policy::from_text("trusted_signers = [\"initdata:x.pem\"]", false).unwrap_err();
    assert!(
        matches!(e, PolicyParseError::SignerWithoutInitdata(_)),
        "{e}"
    );
}

#[test]
fn trust_keys_changed_since_loading_refuse_everything() {
    let sys = system();
    let mut p = policy(|_| {});
    p.require_signatures = true; // not a file key: takes effect at once
    p.authorize(&kata_request(ROOT_A, None)).unwrap_err();
    p.trusted_root_hashes = Some([ROOT_A.to_owned()].into_iter().collect());
    assert!(!p.trust_loaded());
    assert_eq!(
        p.authorize(&kata_request(ROOT_A, None)).unwrap_err(),
        PolicyError::TrustNotLoaded
    );
    let m = manager(&sys, p);
    refused(
        &m,
        &sys,
        &request(ROOT_A, None, "a"),
        ErrorKind::PermissionDenied,
        "trust material is not loaded",
    );
}

/// The parsed volume request of [`request`].
fn kata_request(hash: &str, sig: Option<&str>) -> kata_volume::request::VolumeRequest {
    match kata_volume::request::parse(
        &request(hash, sig, "x"),
        &kata_volume::request::Limits::default(),
    )
    .unwrap()
    {
        kata_volume::request::Request::Volume(v) => v,
        other => panic!("{other:?}"),
    }
}

/// A manager that requires signatures by `signer`, and lists nothing.
fn signed_manager(sys: &Arc<FakeSystem>, signer: &Signer) -> VolumeManager {
    manager(
        sys,
        policy(|p| {
            p.trusted_signers = vec![signer.cert.display().to_string()];
            p.require_signatures = true;
        }),
    )
}

#[test]
fn a_valid_signature_mounts_from_the_driver_option_the_volume_or_both() {
    let dir = openssl::scratch("pipe-valid");
    let signer = self_signed(&dir, "pipe-signer", KeyAlg::Rsa, 1, &[]);
    let sys = system();
    let m = signed_manager(&sys, &signer);
    let s = sig(&dir, &signer, ROOT_A);
    m.add_storage(&request(ROOT_A, Some(&s), "option")).unwrap();
    let in_volume = verity("sha256", ROOT_A, &format!(r#","root_hash_sig":"{s}""#));
    let mut r = request(ROOT_A, None, "volume");
    r.options = vec![volume_option(&in_volume)];
    m.add_storage(&r).unwrap();
    r.mount_point = format!("{ROOT}/both");
    r.driver_options = vec![format!("{SIG}={s}")];
    m.add_storage(&r).unwrap();
    // The systemd envelope, with the signer's fingerprint.
    let fingerprint = hex::encode(Sha256::digest(signer.der()));
    let der = STANDARD.decode(&s).unwrap();
    let envelope = STANDARD.encode(format!(
        r#"{{"rootHash":"{ROOT_A}","signature":"{}","certificateFingerprint":"{fingerprint}"}}"#,
        STANDARD.encode(der)
    ));
    m.add_storage(&request(ROOT_A, Some(&envelope), "envelope"))
        .unwrap();
    assert_eq!(m.list().len(), 4);
    assert_eq!(sys.snapshot().dm.len(), 1, "one layer, one device");
}

#[test]
fn unsigned_untrusted_replayed_or_lying_signatures_are_refused_first() {
    let dir = openssl::scratch("pipe-refused");
    let signer = self_signed(&dir, "pipe-signer", KeyAlg::P256, 1, &[]);
    let rogue = self_signed(&dir, "pipe-rogue", KeyAlg::P256, 1, &[]);
    let sys = system();
    let m = signed_manager(&sys, &signer);
    let denied = ErrorKind::PermissionDenied;
    refused(
        &m,
        &sys,
        &request(ROOT_A, None, "a"),
        denied,
        "is not signed",
    );
    refused(
        &m,
        &sys,
        &request(ROOT_A, Some(&sig(&dir, &rogue, ROOT_A)), "a"),
        denied,
        "signer CN=pipe-rogue",
    );
    // Another layer's valid signature replayed, and this layer's signature under another
    // root hash (the host swapped them).
    let for_b = sig(&dir, &signer, ROOT_B);
    refused(
        &m,
        &sys,
        &request(ROOT_A, Some(&for_b), "a"),
        denied,
        &format!("made for other data, not for root hash {ROOT_A}"),
    );
    refused(
        &m,
        &sys,
        &request(ROOT_B, Some(&sig(&dir, &signer, ROOT_A)), "a"),
        denied,
        &format!("made for other data, not for root hash {ROOT_B}"),
    );
    // A signature over another algorithm's hash: the sha1 volume's 40 digits are the start
    // of the signed sha256 hash.
    let mut sha1 = request(ROOT_A, Some(&sig(&dir, &signer, ROOT_A)), "a");
    sha1.options = vec![volume_option(&verity("sha1", &ROOT_A[..40], ""))];
    refused(&m, &sys, &sha1, denied, "made for other data");
    // Over the upper-case hex: the kernel compares the lower-case hex, so do we.
    refused(
        &m,
        &sys,
        &request(
            ROOT_A,
            Some(&sig(&dir, &signer, &ROOT_A.to_uppercase())),
            "a",
        ),
        denied,
        "made for other data",
    );
    // An envelope naming another root hash around a valid signature.
    let lying = STANDARD.encode(format!(
        r#"{{"rootHash":"{ROOT_B}","signature":"{}"}}"#,
        sig(&dir, &signer, ROOT_A)
    ));
    refused(
        &m,
        &sys,
        &request(ROOT_A, Some(&lying), "a"),
        denied,
        &format!("The .verity.sig rootHash {ROOT_B} does not match"),
    );
    // Undecodable: a trust failure too.
    refused(
        &m,
        &sys,
        &request(ROOT_A, Some("bm90IGEgc2lnbmF0dXJl"), "a"),
        denied,
        "Invalid root-hash signature in driver_options io.katacontainers.volume.root_hash_sig: Malformed",
    );
}

#[test]
fn one_request_carries_one_signature() {
    let dir = openssl::scratch("pipe-two");
    let signer = self_signed(&dir, "pipe-signer", KeyAlg::P256, 1, &[]);
    let sys = system();
    let m = signed_manager(&sys, &signer);
    let (a, b) = (sig(&dir, &signer, ROOT_A), sig(&dir, &signer, ROOT_A));
    assert_ne!(a, b, "ECDSA signatures differ each time");
    let mut r = request(ROOT_A, Some(&a), "a");
    r.options = vec![volume_option(&verity(
        "sha256",
        ROOT_A,
        &format!(r#","root_hash_sig":"{b}""#),
    ))];
    refused(
        &m,
        &sys,
        &r,
        ErrorKind::InvalidArgument,
        "Found different root-hash signatures in dm_verity.root_hash_sig and driver_options",
    );
    r.driver_options = vec![format!("{SIG}={a}"), format!("{SIG}={a}")];
    refused(
        &m,
        &sys,
        &r,
        ErrorKind::InvalidArgument,
        "Duplicate io.katacontainers.volume.root_hash_sig=",
    );
}

#[test]
fn without_signers_a_signature_is_checked_only_when_someone_can() {
    let dir = openssl::scratch("pipe-nosigners");
    let unknown = self_signed(&dir, "unknown-signer", KeyAlg::P256, 1, &[]);
    let s = sig(&dir, &unknown, ROOT_A);
    let sys = system();
    // Nothing configured: the guest does not judge signatures (nor needs them).
    let m = manager(&sys, policy(|_| {}));
    m.add_storage(&request(ROOT_A, Some(&s), "a")).unwrap();
    // Required, with nobody to check them (no signers, no kernel): nothing can be trusted.
    let m = manager(&sys, policy(|p| p.require_signatures = true));
    refused(
        &m,
        &sys,
        &request(ROOT_A, Some(&s), "b"),
        ErrorKind::PermissionDenied,
        "no trusted signer certificates are configured",
    );
    refused(
        &m,
        &sys,
        &request(ROOT_A, None, "b"),
        ErrorKind::PermissionDenied,
        "is not signed",
    );
}

#[test]
fn the_ccv0_shape_takes_the_signature_in_verity_info_or_as_a_driver_option() {
    let dir = openssl::scratch("pipe-ccv0");
    let signer = self_signed(&dir, "pipe-signer", KeyAlg::P256, 1, &[]);
    let sys = system();
    let m = signed_manager(&sys, &signer);
    let s = sig(&dir, &signer, ROOT_A);
    let ccv0 = |info: String, extra: Vec<String>, name: &str| {
        let mut driver_options = vec![format!("verity_info={info}")];
        driver_options.extend(extra);
        Storage {
            driver: "dmverity".into(),
            driver_options,
            source: "/dev/vdb".into(),
            fstype: "erofs".into(),
            options: vec!["ro".into()],
            mount_point: format!("{ROOT}/{name}"),
        }
    };
    let plain = verity("sha256", ROOT_A, "");
    let inside = verity("sha256", ROOT_A, &format!(r#","root_hash_sig":"{s}""#));
    m.add_storage(&ccv0(plain.clone(), vec![format!("{SIG}={s}")], "opt"))
        .unwrap();
    m.add_storage(&ccv0(inside.clone(), vec![], "info"))
        .unwrap();
    refused(
        &m,
        &sys,
        &ccv0(plain, vec![], "none"),
        ErrorKind::PermissionDenied,
        "is not signed",
    );
    let other = sig(&dir, &signer, ROOT_A);
    refused(
        &m,
        &sys,
        &ccv0(inside, vec![format!("{SIG}={other}")], "two"),
        ErrorKind::InvalidArgument,
        "Found different root-hash signatures",
    );
}

#[test]
fn authorize_says_who_vouched_and_judges_certificates_at_the_time_given() {
    let dir = openssl::scratch("pipe-vouched");
    let signer = self_signed(&dir, "vouching-signer", KeyAlg::P256, 1, &[]);
    let s = sig(&dir, &signer, ROOT_A);
    let p = policy(|p| {
        p.trusted_root_hashes = Some([ROOT_A.to_owned()].into_iter().collect());
        p.trusted_signers = vec![signer.cert.display().to_string()];
        p.kernel_signatures = true;
    });
    let a = p.authorize(&kata_request(ROOT_A, Some(&s))).unwrap();
    assert!(a.vouched.listed && a.vouched.kernel);
    let by = a.vouched.signer.unwrap();
    assert_eq!(by.subject, "CN=vouching-signer");
    assert_eq!(by.fingerprint, hex::encode(Sha256::digest(signer.der())));
    // The kernel gets the same signature.
    assert_eq!(
        a.kernel_signature.unwrap(),
        kata_request(ROOT_A, Some(&s)).root_hash_sig.unwrap()
    );
    // Unsigned (not required): listed, no signer, nothing for the kernel.
    let a = p.authorize(&kata_request(ROOT_A, None)).unwrap();
    assert!(a.vouched.listed && a.vouched.signer.is_none() && !a.vouched.kernel);
    assert_eq!(a.kernel_signature, None);
    // The certificate is valid for a day: two days on, the same signature is refused.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2 * 86400);
    let e = p
        .authorize_at(&kata_request(ROOT_A, Some(&s)), later)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Certificate CN=vouching-signer is not valid at "),
        "{e}"
    );
}

/// Two policies with the same trust keys (the same file names) but other material in the
/// files differ: what was loaded, not only where from, is compared.
#[test]
fn the_same_trust_keys_over_other_files_make_other_policies() {
    let dir = openssl::scratch("pipe-compare");
    let file = write(
        &dir,
        "layers.toml",
        &layers_toml(true, &[("sha256", ROOT_A)]),
    );
    let load = || {
        policy(|p| {
            p.verified_layers = Some(file.clone().into());
        })
    };
    let a = load();
    write(
        &dir,
        "layers.toml",
        &layers_toml(true, &[("sha256", &"cd".repeat(32))]),
    );
    let b = load();
    assert_eq!(a.verified_layers, b.verified_layers);
    assert_ne!(a.trust, b.trust);
    assert_ne!(a, b);
    assert_eq!(a, a.clone());
}
