#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The measured allowlist and initdata: sources, lookup, fail-closed rules, digests, and every
//! malformed shape refused with a message naming the key and the value.

use kata_volume::trust::allowlist::VERIFIED_LAYERS_KEY;
use kata_volume::trust::{
    Allowlist, AllowlistError, Initdata, InitdataAlgorithm, InitdataError, Listing,
};
use kata_volume::verity::{Digest, HashAlgorithm};
use sha2::Digest as _;

const A: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
const B: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn sha256(hex: &str) -> Digest {
    Digest::from_hex(HashAlgorithm::Sha256, hex).unwrap()
}

fn layers(required: bool, entries: &[(&str, &str)]) -> String {
    let mut s = format!("require_verified_layers = {required}\n");
    for (alg, hash) in entries {
        s.push_str(&format!(
            "\n[[layer]]\nalgorithm = \"{alg}\"\nroot_hash = \"{hash}\"\n"
        ));
    }
    s
}

#[test]
fn listed_root_hashes_are_admitted_by_algorithm_and_any_case() {
    let sha512 = "ab".repeat(64);
    let text = layers(true, &[("sha256", &A.to_uppercase()), ("SHA512", &sha512)]);
    let list = Allowlist::from_verified_layers(&text, "/etc/kata/verified-layers.toml").unwrap();
    assert!(list.is_required());
    assert_eq!(list.len(), 2);
    assert_eq!(list.check(Some(&sha256(A))), Ok(Listing::Listed));
    let d512 = Digest::from_hex(HashAlgorithm::Sha512, &sha512.to_uppercase()).unwrap();
    assert_eq!(list.check(Some(&d512)), Ok(Listing::Listed));
    assert_eq!(
        list.check(Some(&sha256(B))),
        Err(AllowlistError::NotListed {
            algorithm: HashAlgorithm::Sha256,
            root_hash: B.to_owned()
        })
    );
    assert_eq!(
        list.check(Some(&sha256(B))).unwrap_err().to_string(),
        format!("Root hash sha256:{B} is not in the allowlist of verified layers")
    );
    assert_eq!(list.check(None), Err(AllowlistError::Unverified));
}

#[test]
fn required_and_empty_refuses_everything() {
    let list = Allowlist::from_verified_layers("require_verified_layers = true\n", "f").unwrap();
    assert!(list.restricts());
    let e = list.check(Some(&sha256(A))).unwrap_err();
    assert_eq!(
        e,
        AllowlistError::NothingListed {
            algorithm: HashAlgorithm::Sha256,
            root_hash: A.to_owned()
        }
    );
    assert!(
        e.to_string().contains("require_verified_layers is set"),
        "{e}"
    );
    assert_eq!(list.check(None), Err(AllowlistError::Unverified));
    // The same through the policy switch on an empty list.
    let mut policy = Allowlist::new();
    policy.set_required(true);
    assert!(policy.check(Some(&sha256(B))).is_err());
}

#[test]
fn an_empty_list_that_is_not_required_restricts_nothing_but_a_list_always_does() {
    for text in ["", "require_verified_layers = false\n", "layer = []\n"] {
        let list = Allowlist::from_verified_layers(text, "f").unwrap();
        assert!(!list.restricts(), "{text:?}");
        assert_eq!(list.check(Some(&sha256(A))), Ok(Listing::Unrestricted));
        assert_eq!(list.check(None), Ok(Listing::Unrestricted));
    }
    assert_eq!(Allowlist::new().check(None), Ok(Listing::Unrestricted));
    // Not required, but a list is given: it is enforced.
    let list = Allowlist::from_verified_layers(&layers(false, &[("sha256", A)]), "f").unwrap();
    assert_eq!(list.check(Some(&sha256(A))), Ok(Listing::Listed));
    assert!(matches!(
        list.check(Some(&sha256(B))),
        Err(AllowlistError::NotListed { .. })
    ));
    assert_eq!(list.check(None), Err(AllowlistError::Unverified));
}

#[test]
fn policy_lists_take_bare_hex_of_a_default_algorithm_or_prefixed_entries() {
    let sha1 = "12".repeat(20);
    let mut list = Allowlist::new();
    list.add_hashes(
        "trusted_root_hashes",
        HashAlgorithm::Sha256,
        [A.to_uppercase().as_str(), &format!("sha1:{sha1}")],
    )
    .unwrap();
    assert!(list.contains(&sha256(A)));
    assert!(list.contains(&Digest::from_hex(HashAlgorithm::Sha1, &sha1).unwrap()));
    assert!(list.material().is_empty());

    let cases: [(&str, &str); 4] = [
        (
            "abc",
            "Invalid trusted_root_hashes[0] \"abc\" in trusted_root_hashes: expected 64 hex digits for sha256",
        ),
        (
            "md5:abcd",
            "Unsupported trusted_root_hashes[0] \"md5\" in trusted_root_hashes: expected sha256, sha1 or sha512",
        ),
        (
            "sha512:abcd",
            "Invalid trusted_root_hashes[0] \"abcd\" in trusted_root_hashes: expected 128 hex digits for sha512",
        ),
        (
            &"zz".repeat(32),
            "Invalid trusted_root_hashes[0] \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\" in trusted_root_hashes: expected 64 hex digits for sha256",
        ),
    ];
    for (entry, msg) in cases {
        let e = Allowlist::new()
            .add_hashes("trusted_root_hashes", HashAlgorithm::Sha256, [entry])
            .unwrap_err();
        assert_eq!(e.to_string(), msg);
    }
}

#[test]
fn extending_unions_the_lists_and_keeps_required() {
    let mut list = Allowlist::from_verified_layers(&layers(false, &[("sha256", A)]), "a").unwrap();
    list.extend(Allowlist::from_verified_layers(&layers(true, &[("sha256", B)]), "b").unwrap());
    assert!(list.is_required());
    assert!(list.contains(&sha256(A)) && list.contains(&sha256(B)));
    let sources: Vec<&str> = list.material().iter().map(|m| m.source.as_str()).collect();
    assert_eq!(sources, ["a", "b"]);
}

#[test]
fn the_digest_of_each_file_is_recorded() {
    let text = layers(true, &[("sha256", A)]);
    let list = Allowlist::from_verified_layers(&text, "/etc/kata/verified-layers.toml").unwrap();
    let m = &list.material()[0];
    assert_eq!(m.source, "/etc/kata/verified-layers.toml");
    assert_eq!(
        m.sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(text.as_bytes()))
    );
    assert_eq!(
        m.to_string(),
        format!(
            "/etc/kata/verified-layers.toml sha256:{}",
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        )
    );
}

#[test]
fn every_malformed_verified_layers_shape_is_refused_naming_key_and_value() {
    let hash = format!("root_hash = \"{A}\"");
    let cases: Vec<(String, &str)> = vec![
        ("require_verified_layers = ".into(), "Invalid TOML in f: "),
        (
            "require_verified_layers = \"yes\"".into(),
            "Key require_verified_layers in f must be true or false, not string",
        ),
        (
            "require_verified_layer = true".into(),
            "Unknown key \"require_verified_layer\" in f: expected require_verified_layers or [[layer]]",
        ),
        (
            "layer = 5".into(),
            "Key layer in f must be an array of tables ([[layer]]), not integer",
        ),
        (
            format!("[layer]\nalgorithm = \"sha256\"\n{hash}"),
            "Key layer in f must be an array of tables ([[layer]]), not table",
        ),
        (
            "layer = [1]".into(),
            "Key layer[0] in f must be an array of tables ([[layer]]), not integer",
        ),
        (
            format!("[[layer]]\n{hash}"),
            "Missing key layer[0].algorithm in f",
        ),
        (
            "[[layer]]\nalgorithm = \"sha256\"".into(),
            "Missing key layer[0].root_hash in f",
        ),
        (
            format!("[[layer]]\nalgorithm = 256\n{hash}"),
            "Key layer[0].algorithm in f must be a string, not integer",
        ),
        (
            "[[layer]]\nalgorithm = \"sha256\"\nroot_hash = [1]".into(),
            "Key layer[0].root_hash in f must be a string, not array",
        ),
        (
            format!("[[layer]]\nalgorithm = \"sha384\"\n{hash}"),
            "Unsupported layer[0].algorithm \"sha384\" in f: expected sha256, sha1 or sha512",
        ),
        (
            format!(
                "[[layer]]\nalgorithm = \"sha256\"\n{hash}\n[[layer]]\nalgorithm = \"sha256\"\nroot_hash = \"{B}0\""
            ),
            "Invalid layer[1].root_hash \"00000000000000000000000000000000000000000000000000000000000000010\" in f: expected 64 hex digits for sha256",
        ),
        (
            "[[layer]]\nalgorithm = \"sha1\"\nroot_hash = \"xyz\"".into(),
            "Invalid layer[0].root_hash \"xyz\" in f: expected 40 hex digits for sha1",
        ),
        (
            format!("[[layer]]\nalgorithm = \"sha256\"\n{hash}\nroothash = \"{A}\""),
            "Unknown key \"layer[0].roothash\" in f: expected algorithm and root_hash",
        ),
    ];
    for (text, msg) in cases {
        let e = Allowlist::from_verified_layers(&text, "f").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with(msg), "{text:?}:\n got {s}\nwant {msg}");
        assert!(!s.contains('\n'), "{s}");
    }
}

fn initdata(alg: &str, data: &str) -> String {
    format!("version = \"0.1.0\"\nalgorithm = \"{alg}\"\n\n[data]\n{data}")
}

#[test]
fn initdata_carries_the_allowlist_and_its_digest_is_the_documents() {
    let vl = layers(true, &[("sha256", A)]);
    let doc = initdata(
        "sha384",
        &format!(
            "\"aa.toml\" = '''\n[token_configs]\n'''\n\"{VERIFIED_LAYERS_KEY}\" = '''\n{vl}'''\n"
        ),
    );
    let id = Initdata::parse(doc.as_bytes(), "/run/initdata.toml").unwrap();
    assert_eq!(id.algorithm(), InitdataAlgorithm::Sha384);
    assert_eq!(id.digest(), sha2::Sha384::digest(doc.as_bytes()).as_slice());
    assert_eq!(id.material().source, "/run/initdata.toml");
    assert_eq!(
        id.material().sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(doc.as_bytes()))
    );
    assert_eq!(
        id.files().collect::<Vec<_>>(),
        ["aa.toml", VERIFIED_LAYERS_KEY]
    );
    assert_eq!(id.file(VERIFIED_LAYERS_KEY), Some(vl.as_str()));
    let list = Allowlist::from_initdata(&id).unwrap().unwrap();
    assert!(list.is_required());
    assert_eq!(list.check(Some(&sha256(A))), Ok(Listing::Listed));
    assert_eq!(list.material()[0].source, "initdata:verified-layers.toml");

    for (alg, len) in [("sha256", 32), ("sha512", 64)] {
        let doc = initdata(alg, "");
        let id = Initdata::parse(doc.as_bytes(), "x").unwrap();
        assert_eq!(id.digest().len(), len);
        assert_eq!(id.algorithm().to_string(), alg);
        assert!(Allowlist::from_initdata(&id).unwrap().is_none());
    }
    let doc = initdata("sha512", "");
    assert_eq!(
        Initdata::parse(doc.as_bytes(), "x").unwrap().digest(),
        sha2::Sha512::digest(doc.as_bytes()).as_slice()
    );
}

#[test]
fn a_malformed_allowlist_inside_initdata_names_the_initdata_key() {
    let doc = initdata(
        "sha256",
        &format!("\"{VERIFIED_LAYERS_KEY}\" = 'layer = 1'\n"),
    );
    let id = Initdata::parse(doc.as_bytes(), "x").unwrap();
    let e = Allowlist::from_initdata(&id).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Key layer in initdata:verified-layers.toml must be an array of tables ([[layer]]), not integer"
    );
}

#[test]
fn every_malformed_initdata_shape_is_refused_naming_key_and_value() {
    let cases: Vec<(Vec<u8>, InitdataError)> = vec![
        (
            b"\xff\xfe".to_vec(),
            InitdataError::NotUtf8 {
                source_name: "i".into(),
            },
        ),
        (
            b"algorithm = \"sha256\"\n[data]\n".to_vec(),
            InitdataError::MissingKey {
                source_name: "i".into(),
                key: "version",
            },
        ),
        (
            b"version = \"0.1.0\"\n[data]\n".to_vec(),
            InitdataError::MissingKey {
                source_name: "i".into(),
                key: "algorithm",
            },
        ),
        (
            b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n".to_vec(),
            InitdataError::MissingKey {
                source_name: "i".into(),
                key: "data",
            },
        ),
        (
            b"version = \"0.2.0\"\nalgorithm = \"sha256\"\n[data]\n".to_vec(),
            InitdataError::Version {
                source_name: "i".into(),
                value: "0.2.0".into(),
            },
        ),
        (
            b"version = 1\nalgorithm = \"sha256\"\n[data]\n".to_vec(),
            InitdataError::WrongType {
                source_name: "i".into(),
                key: "version".into(),
                expected: "a string",
                found: "integer",
            },
        ),
        (
            initdata("sha1", "").into_bytes(),
            InitdataError::Algorithm {
                source_name: "i".into(),
                value: "sha1".into(),
            },
        ),
        (
            initdata("SHA256", "").into_bytes(),
            InitdataError::Algorithm {
                source_name: "i".into(),
                value: "SHA256".into(),
            },
        ),
        (
            b"version = \"0.1.0\"\nalgorithm = \"sha256\"\ndata = \"x\"\n".to_vec(),
            InitdataError::WrongType {
                source_name: "i".into(),
                key: "data".into(),
                expected: "a table ([data])",
                found: "string",
            },
        ),
        (
            initdata("sha256", "\"policy.rego\" = 5\n").into_bytes(),
            InitdataError::WrongType {
                source_name: "i".into(),
                key: "data.\"policy.rego\"".into(),
                expected: "a string (the file's contents)",
                found: "integer",
            },
        ),
        (
            initdata("sha256", "[data.nested]\nx = \"y\"\n").into_bytes(),
            InitdataError::WrongType {
                source_name: "i".into(),
                key: "data.\"nested\"".into(),
                expected: "a string (the file's contents)",
                found: "table",
            },
        ),
        (
            format!("extra = 1\n{}", initdata("sha256", "")).into_bytes(),
            InitdataError::UnknownKey {
                source_name: "i".into(),
                key: "extra".into(),
            },
        ),
    ];
    for (bytes, want) in cases {
        let got = Initdata::parse(&bytes, "i").unwrap_err();
        assert_eq!(got, want, "{}", String::from_utf8_lossy(&bytes));
        let msg = got.to_string();
        assert!(
            msg.starts_with(char::is_uppercase) && !msg.contains('\n'),
            "{msg}"
        );
    }
    let e = Initdata::parse(b"version = ", "i").unwrap_err();
    assert!(
        matches!(&e, InitdataError::Toml { why, .. } if !why.contains('\n')),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("Invalid TOML in initdata i: "));
    assert_eq!(
        InitdataError::WrongType {
            source_name: "i".into(),
            key: "data.\"policy.rego\"".into(),
            expected: "a string (the file's contents)",
            found: "integer",
        }
        .to_string(),
        "Key data.\"policy.rego\" in initdata i must be a string (the file's contents), not integer"
    );
}
