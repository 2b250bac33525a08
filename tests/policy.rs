#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Policy files and the pure policy checks.

use std::path::Path;

use kata_volume::policy::{CorruptionMode, Policy, PolicyError, PolicyParseError};
use kata_volume::request::{self, Request, RequestError, Storage, VolumeRequest};
use kata_volume::trust::AllowlistError;
use kata_volume::verity::{HashAlgorithm, VerityOption};
use kata_volume::volume::encode_option;

/// A parsed request for the volume JSON `json` at a mount point under the default root.
fn request(json: &str) -> VolumeRequest {
    let w = kata_volume::volume::decode(json).unwrap();
    let storage = Storage {
        options: vec![encode_option(&w)],
        mount_point: "/run/kata-containers/c1/layer".into(),
        ..Storage::default()
    };
    match request::parse(&storage, &Policy::default().limits()).unwrap() {
        Request::Volume(r) => r,
        other => panic!("not a volume request: {other:?}"),
    }
}

#[test]
fn the_example_policy_file_is_the_default() {
    let p = Policy::from_file(Path::new("docs/policy.example.toml")).unwrap();
    assert_eq!(p, Policy::default());
}

#[test]
fn json_and_toml_policies_parse_and_unknown_keys_are_refused() {
    let t = Policy::from_text(
        "mount_root = \"/mnt/k\"\nallow_files = true\ncorruption_mode = \"restart\"\ntrusted_root_hashes = [\"sha1:0123456789abcdef0123456789ABCDEF01234567\"]",
        false,
    )
    .unwrap();
    assert_eq!(t.mount_root, Path::new("/mnt/k"));
    assert!(t.allow_files);
    assert_eq!(t.verity_options(), vec![VerityOption::RestartOnCorruption]);
    let j = Policy::from_text(
        r#"{"corruption_mode":"panic","check_at_most_once":true}"#,
        true,
    )
    .unwrap();
    assert_eq!(j.corruption_mode, CorruptionMode::Panic);
    assert_eq!(
        j.verity_options(),
        vec![
            VerityOption::PanicOnCorruption,
            VerityOption::CheckAtMostOnce
        ]
    );
    for (bad, says) in [
        ("alow_files = true", "unknown field `alow_files`"),
        ("corruption_mode = \"ignore\"", "unknown variant `ignore`"),
        ("max_volumes = -1", "invalid value: integer `-1`"),
    ] {
        match Policy::from_text(bad, false) {
            Err(PolicyParseError::Toml(e)) => assert!(e.to_string().contains(says), "{bad}: {e}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for bad in ["mount_root = \"relative\"", "mount_root = \"/run/../etc\""] {
        let e = Policy::from_text(bad, false).unwrap_err();
        assert!(matches!(e, PolicyParseError::MountRoot(_)), "{bad}: {e:?}");
        assert!(e.to_string().starts_with("mount_root "), "{e}");
    }
    // The one global key description is gone: refused, saying what replaced it.
    for (text, json) in [
        ("root_hash_sig_key_desc = \"kata-volume:key\"", false),
        (r#"{"root_hash_sig_key_desc": "kata-volume:key"}"#, true),
    ] {
        let e = Policy::from_text(text, json).unwrap_err();
        assert!(matches!(e, PolicyParseError::Replaced { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("root_hash_sig_key_desc is no longer a policy key: ")
                && msg.contains("kernel_signatures")
                && msg.contains("root_hash_sig"),
            "{msg}"
        );
    }
    // Trusted root hashes are checked when the policy is read.
    let e = Policy::from_text("trusted_root_hashes = [\"ab\"]", false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid trusted_root_hashes[0] \"ab\" in trusted_root_hashes: expected 64 hex digits for sha256"
    );
    let e = Policy::from_text("{\"allow_files\": 1}", true).unwrap_err();
    assert!(matches!(e, PolicyParseError::Json(_)), "{e:?}");
}

#[test]
fn mount_points_must_be_strictly_inside_the_root() {
    let p = Policy::default();
    p.check_mount_point(Path::new("/run/kata-containers/a/b"))
        .unwrap();
    for bad in [
        "/run/kata-containers",
        "/run/kata-containersX/a",
        "/run/kata-containers/../etc",
        "/run/kata-containers/a/",
        "/etc",
    ] {
        assert!(
            matches!(
                p.check_mount_point(Path::new(bad)),
                Err(PolicyError::OutsideRoot { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn sources_must_match_a_pattern() {
    let p = Policy::default();
    for ok in ["/dev/vdb", "/dev/sda", "/dev/pmem0", "/dev/nvme0n1"] {
        p.check_source(ok).unwrap();
    }
    for bad in [
        "/dev/mem",
        "/dev/vdb/../mem",
        "/dev/loop0",
        "vdb",
        "/dev//vdb",
        "/images/a.img",
    ] {
        let e = p.check_source(bad).unwrap_err();
        assert!(matches!(e, PolicyError::Source { .. }), "{bad}: {e:?}");
        assert!(e.to_string().contains(bad), "{e}");
    }
}

#[test]
fn trusted_hashes_and_unverified_volumes() {
    let h = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    let v = request(&format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{{"hashtype":"sha256","hash":"{h}","blocknum":1,"blocksize":4096,"hashsize":4096,"offset":4096}}}}"#
    ));
    let unverified = request(r#"{"volume_type":"layer_raw_block","source":"/dev/vdb"}"#);
    let mut p = Policy::default();
    p.authorize(&v).unwrap();
    assert_eq!(
        p.authorize(&unverified).unwrap_err().to_string(),
        "Volume layer_raw_block without dm_verity is not allowed: unverified volumes are refused"
    );
    p.allow_unverified = true;
    assert_eq!(p.authorize(&unverified).unwrap().verity, None);
    p.trusted_root_hashes = Some([h.to_uppercase()].into_iter().collect());
    // Changed trust keys and nothing loaded: everything is refused until load_trust.
    assert_eq!(p.authorize(&v).unwrap_err(), PolicyError::TrustNotLoaded);
    p.load_trust().unwrap();
    p.authorize(&v).unwrap();
    // Trusted hashes in force: an unverified volume is refused even though allowed.
    assert_eq!(
        p.authorize(&unverified).unwrap_err().to_string(),
        "A volume without dm_verity is refused: the allowlist of verified layers is in force"
    );
    p.trusted_root_hashes = Some(["00".repeat(32)].into_iter().collect());
    p.load_trust().unwrap();
    assert_eq!(
        p.authorize(&v).unwrap_err(),
        PolicyError::Allowlist(AllowlistError::NotListed {
            algorithm: HashAlgorithm::Sha256,
            root_hash: h.to_owned(),
        })
    );
    // Named trusted hashes, even none, trust nothing else.
    p.trusted_root_hashes = Some(Default::default());
    p.load_trust().unwrap();
    assert!(matches!(
        p.authorize(&v).unwrap_err(),
        PolicyError::Allowlist(AllowlistError::NothingListed { .. })
    ));
}

#[test]
fn authorize_decides_the_mount_and_the_verity_options() {
    let mut v = request(
        r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{"hashtype":"sha256","hash":"9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a","blocknum":1,"blocksize":4096,"hashsize":4096,"offset":4096},"options":["noatime","acl"]}"#,
    );
    let p = Policy {
        corruption_mode: CorruptionMode::Restart,
        ..Policy::default()
    };
    let a = p.authorize(&v).unwrap();
    assert_eq!(a.mount.fs_type, "erofs");
    assert_eq!(a.mount.flags.to_string(), "ro,nodev,nosuid,noatime");
    assert_eq!(a.mount.data, "acl");
    assert_eq!(a.verity_options, vec![VerityOption::RestartOnCorruption]);
    assert!(!a.allow_file);
    v.options.push("exec".into());
    assert_eq!(
        p.authorize(&v).unwrap_err(),
        PolicyError::MountOption("exec".into())
    );
    v.options.pop();
    v.fs_type = "ext4".into();
    let only_erofs = Policy {
        allowed_fs_types: vec!["erofs".into()],
        ..Policy::default()
    };
    assert_eq!(
        only_erofs.authorize(&v).unwrap_err(),
        PolicyError::FsType("ext4".into())
    );
}

#[test]
fn sizes_are_bounded_before_anything_is_decoded() {
    let p = Policy::default();
    let big = Storage {
        options: vec![format!(
            "io.katacontainers.volume={}",
            "A".repeat(p.max_option_bytes)
        )],
        mount_point: "/run/kata-containers/a".into(),
        ..Storage::default()
    };
    match request::parse(&big, &p.limits()) {
        Err(RequestError::TooLarge { what, size, limit }) => {
            assert_eq!(what, "The volume option");
            assert_eq!(size, p.max_option_bytes + "io.katacontainers.volume=".len());
            assert_eq!(limit, p.max_option_bytes);
        }
        other => panic!("{other:?}"),
    }
    let huge = Storage {
        driver_options: vec!["x".repeat(p.max_request_bytes)],
        mount_point: "/run/kata-containers/a".into(),
        ..Storage::default()
    };
    match request::parse(&huge, &p.limits()) {
        Err(RequestError::TooLarge { what, .. }) => assert_eq!(what, "The request"),
        other => panic!("{other:?}"),
    }
    // The policy's own limits, not the defaults, are the ones a request is parsed with.
    let tight = Policy {
        max_option_bytes: 100,
        max_request_bytes: 1000,
        max_options: 2,
        ..Policy::default()
    };
    let l = tight.limits();
    assert_eq!(
        (l.max_option_bytes, l.max_request_bytes, l.max_options),
        (100, 1000, 2)
    );
    let three = Storage {
        options: vec!["ro".into(), "noatime".into(), "nodev".into()],
        mount_point: "/run/kata-containers/a".into(),
        ..Storage::default()
    };
    match request::parse(&three, &tight.limits()) {
        Err(RequestError::TooManyOptions { count, limit }) => assert_eq!((count, limit), (3, 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_policy_file_is_named_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "allow_files = \"yes\"").unwrap();
    let e = Policy::from_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Invalid policy file {:?}", path.display().to_string())
    );
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    assert!(
        cause.as_deref().is_some_and(|c| c.contains("allow_files")),
        "{cause:?}"
    );
    let missing = dir.path().join("missing.toml");
    let e = Policy::from_file(&missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Cannot read policy file {:?}",
            missing.display().to_string()
        )
    );
    assert_eq!(
        std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}

/// A signer named as a key of the initdata document needs that document; a signer PEM file
/// does not; an empty name is refused.
#[test]
fn initdata_signers_need_initdata() {
    let e = Policy::from_text("trusted_signers = [\"initdata:signer.pem\"]", false).unwrap_err();
    assert!(
        matches!(e, PolicyParseError::SignerWithoutInitdata(_)),
        "{e:?}"
    );
    let p = Policy::from_text(
        "initdata = \"/run/initdata.toml\"\ntrusted_signers = [\"initdata:signer.pem\"]",
        false,
    )
    .unwrap();
    assert_eq!(p.trusted_signers, vec!["initdata:signer.pem".to_owned()]);
    let p = Policy::from_text("trusted_signers = [\"/etc/kata/signer.pem\"]", false).unwrap();
    assert_eq!(p.trusted_signers, vec!["/etc/kata/signer.pem".to_owned()]);
    let e = Policy::from_text("trusted_signers = [\"\"]", false).unwrap_err();
    assert!(matches!(e, PolicyParseError::EmptySigner), "{e:?}");
}

/// An overlay's lowers must be verified volumes of ours; an unverified volume of ours, or a
/// directory that is none of ours, only when the policy allows unverified volumes.
#[test]
fn overlay_lowers_must_be_verified_unless_allowed() {
    use kata_volume::policy::Layer;
    use kata_volume::request::OverlayRequest;
    use kata_volume::system::DevNum;
    let root = Path::new("/run/kata-containers");
    let req = OverlayRequest {
        lowers: vec![root.join("l")],
        upper: Some((root.join("c1/fs"), root.join("c1/work"))),
        create: Vec::new(),
        mount_point: root.join("c1/rootfs"),
    };
    let dev = DevNum {
        major: 254,
        minor: 16,
    };
    let strict = Policy::default();
    let lax = Policy {
        allow_unverified: true,
        ..Policy::default()
    };
    let a = strict
        .authorize_overlay(&req, &|_| Layer::Verified(Some(dev)))
        .unwrap();
    assert_eq!(a.lower_devices, vec![Some(dev)]);
    let e = strict
        .authorize_overlay(&req, &|_| Layer::Unverified(Some(dev)))
        .unwrap_err();
    assert!(matches!(e, PolicyError::UnverifiedLayer(_)), "{e:?}");
    let e = strict
        .authorize_overlay(&req, &|_| Layer::Unknown)
        .unwrap_err();
    assert!(matches!(e, PolicyError::UnknownLayer(_)), "{e:?}");
    let a = lax
        .authorize_overlay(&req, &|_| Layer::Unverified(Some(dev)))
        .unwrap();
    assert_eq!(a.lower_devices, vec![Some(dev)]);
    let a = lax.authorize_overlay(&req, &|_| Layer::Unknown).unwrap();
    assert_eq!(a.lower_devices, vec![None]);
    // With an upper the rootfs is writable; without, read-only.
    assert!(!a.mount.flags.read_only);
    let ro = OverlayRequest {
        upper: None,
        ..req.clone()
    };
    let a = strict
        .authorize_overlay(&ro, &|_| Layer::Verified(Some(dev)))
        .unwrap();
    assert!(a.mount.flags.read_only);
    assert_eq!(a.mount.data, "lowerdir=/run/kata-containers/l");
}

/// Policies compare their loaded trust too: the same keys with other material loaded (other
/// hashes) differ; a clone is equal.
#[test]
fn policies_compare_their_trust() {
    let load = |h: &str| {
        let mut p = Policy {
            trusted_root_hashes: Some([h.to_owned()].into_iter().collect()),
            ..Policy::default()
        };
        p.load_trust().unwrap();
        p
    };
    let a = load(&"ab".repeat(32));
    assert_eq!(a, a.clone());
    let b = load(&"cd".repeat(32));
    assert_ne!(a.trust, b.trust);
    let mut c = a.clone();
    c.trust = b.trust.clone();
    assert_ne!(a, c, "the same keys, other material loaded");
    assert_ne!(a.trust, Policy::default().trust);
}

/// Bare trusted root hashes name their algorithm by length: 40 digits sha1, 64 sha256, 128
/// sha512.
#[test]
fn bare_trusted_hashes_name_their_algorithm_by_length() {
    for digits in [40, 64, 128] {
        let text = format!("trusted_root_hashes = [\"{}\"]", "a".repeat(digits));
        Policy::from_text(&text, false).unwrap_or_else(|e| panic!("{digits}: {e}"));
    }
    assert!(Policy::from_text("trusted_root_hashes = [\"aaaa\"]", false).is_err());
}
