#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Policy files and the pure policy checks.

use std::path::Path;

use kata_volume::policy::{CorruptionMode, Policy, PolicyError};
use kata_volume::verity::VerityOption;
use kata_volume::volume::Volume;

#[test]
fn the_example_policy_file_is_the_default() {
    let p = Policy::from_file(Path::new("docs/policy.example.toml")).unwrap();
    assert_eq!(p, Policy::default());
}

#[test]
fn json_and_toml_policies_parse_and_unknown_keys_are_refused() {
    let t = Policy::from_text(
        "mount_root = \"/mnt/k\"\nallow_files = true\ncorruption_mode = \"restart\"\ntrusted_root_hashes = [\"ab\"]",
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
    // Each refusal names what is wrong.
    for (bad, want) in [
        ("alow_files = true", "unknown field `alow_files`"),
        (
            "mount_root = \"relative\"",
            "mount_root \"relative\" must be an absolute path",
        ),
        (
            "mount_root = \"/run/../etc\"",
            "mount_root \"/run/../etc\" must be an absolute path",
        ),
        (
            "corruption_mode = \"ignore\"",
            "unknown variant `ignore`, expected one of `eio`, `restart`, `panic`",
        ),
        (
            "root_hash_sig_key_desc = \"two words\"",
            "root_hash_sig_key_desc \"two words\" must be one word",
        ),
        ("max_volumes = -1", "invalid value: integer `-1`"),
    ] {
        let e = Policy::from_text(bad, false).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
    for (bad, want) in [
        (r#"{"alow_files":true}"#, "unknown field `alow_files`"),
        (
            r#"{"mount_root":"relative"}"#,
            "mount_root \"relative\" must be an absolute path",
        ),
        (r#"{"max_volumes":-1}"#, "invalid value: integer `-1`"),
    ] {
        let e = Policy::from_text(bad, true).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn a_bad_policy_file_is_named_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "allow_files = \"yes\"").unwrap();
    let e = Policy::from_file(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "Invalid policy file {:?}: ",
            path.display().to_string()
        )),
        "{msg}"
    );
    assert!(msg.contains("allow_files"), "{msg}");
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
        assert!(e.to_string().contains(bad.trim_end_matches('\0')), "{e}");
    }
}

#[test]
fn trusted_hashes_and_unverified_volumes() {
    let h = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    let v = Volume::parse(&format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{{"hashtype":"sha256","hash":"{h}","blocknum":1,"blocksize":4096,"hashsize":4096,"offset":4096}}}}"#
    ))
    .unwrap();
    let unverified =
        Volume::parse(r#"{"volume_type":"layer_raw_block","source":"/dev/vdb"}"#).unwrap();
    let mut p = Policy::default();
    p.check_volume(&v).unwrap();
    assert!(matches!(
        p.check_volume(&unverified),
        Err(PolicyError::Unverified(_))
    ));
    p.allow_unverified = true;
    p.check_volume(&unverified).unwrap();
    p.trusted_root_hashes = Some([h.to_uppercase()].into_iter().collect());
    p.check_volume(&v).unwrap();
    p.trusted_root_hashes = Some(["00".repeat(32)].into_iter().collect());
    let e = p.check_volume(&v).unwrap_err();
    assert!(e.to_string().contains(h), "{e}");
}

#[test]
fn sizes_are_bounded() {
    let p = Policy::default();
    p.check_sizes(100, 1000).unwrap();
    p.check_sizes(p.max_option_bytes, p.max_request_bytes)
        .unwrap();
    let e = p.check_sizes(p.max_option_bytes + 1, 0).unwrap_err();
    assert_eq!(
        e,
        PolicyError::TooLarge {
            what: "The volume option",
            size: 65537,
            limit: 65536
        }
    );
    assert_eq!(
        e.to_string(),
        "The volume option is 65537 bytes, more than the limit of 65536"
    );
    let e = p.check_sizes(0, p.max_request_bytes + 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The request is 262145 bytes, more than the limit of 262144"
    );
}
