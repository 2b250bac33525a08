//! The CLI and the full `DmVerityInfo`: `format` puts a salt in its option, `inspect` shows
//! hash type, salt and superblock with the table's start block, and `verify --superblock`
//! checks images made by `veritysetup format` with a superblock (and hints at one without).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/veritysetup.rs"]
mod veritysetup;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tempfile::TempDir;
use veritysetup::{Flags, Layout, pattern};

fn kv(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args(args)
        .output()
        .expect("run kata-volume")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 1 with one `error:` line naming every part.
fn refused(o: &Output, parts: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for p in parts {
        assert!(err.contains(p), "{err:?} does not mention {p:?}");
    }
}

/// A veritysetup image: `blocks` data blocks of 4096 bytes, the hash area at the data's end.
fn veritysetup_image(flags: &Flags, layout: Layout, hash_file: bool) -> (TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let len = usize::try_from(flags.data_blocks * flags.data_block_size).unwrap();
    std::fs::write(&img, pattern(len, 11)).unwrap();
    let hash = if hash_file {
        dir.path().join("hash")
    } else {
        img.clone()
    };
    let root = veritysetup::format_with(&img, &hash, flags, layout);
    (dir, img, root)
}

fn flags(hash_block_size: u64, salt: &str) -> Flags {
    Flags {
        hash: "sha256",
        data_block_size: 4096,
        hash_block_size,
        data_blocks: 64,
        hash_offset: 262_144,
        salt: salt.into(),
    }
}

const WITH_SB: Layout = Layout {
    format: 1,
    superblock: true,
};

#[test]
fn a_salted_tree_gets_an_option_that_carries_the_salt() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    std::fs::write(&img, pattern(8 * 4096, 4)).unwrap();
    let out = json(&kv(&[
        "format",
        "--json",
        "--salt",
        "00FF",
        "--source",
        "/dev/vdb",
        s(&img),
    ]));
    assert_eq!(out["salt"], "00ff");
    assert!(out["option_note"].is_null(), "{out}");
    let back = json(&kv(&["inspect", "--json", out["option"].as_str().unwrap()]));
    assert_eq!(back["dm_verity"]["salt"], "00ff");
    assert_eq!(
        back["verity_table"],
        format!(
            "0 64 verity 1 /dev/vdb /dev/vdb 4096 4096 8 8 sha256 {} 00ff",
            out["root_hash"].as_str().unwrap()
        )
    );
    // And the tree it describes verifies with that salt, not without.
    let root = out["root_hash"].as_str().unwrap();
    let ok = kv(&[
        "verify",
        "--data-blocks",
        "8",
        "--salt",
        "00ff",
        s(&img),
        root,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    refused(
        &kv(&["verify", "--data-blocks", "8", s(&img), root]),
        &["root hash mismatch"],
    );
}

#[test]
fn inspect_shows_hash_type_salt_superblock_and_the_start_block() {
    let h = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    let volume = |extra: &str| {
        format!(
            r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":{{"hashtype":"sha256","hash":"{h}","blocknum":16384,"blocksize":512,"hashsize":4096,"offset":8388608{extra}}}}}"#
        )
    };
    let sb = volume(r#","salt":"ABCD","hash_type":0,"no_superblock":false"#);
    let v = json(&kv(&["inspect", "--json", &sb]));
    let t = &v["hash_tree"];
    assert_eq!(
        (&t["hash_type"], &t["salt"], &t["superblock"]),
        (&Value::from(0), &Value::from("abcd"), &Value::from(true))
    );
    assert_eq!(t["tree_offset"], 8_388_608 + 4096);
    assert_eq!(t["hash_start_block"], 2049);
    assert_eq!(t["required_device_size"], 8_921_088);
    let dm = &v["dm_verity"];
    assert_eq!(
        (&dm["salt"], &dm["hash_type"], &dm["no_superblock"]),
        (&Value::from("abcd"), &Value::from(0), &Value::from(false))
    );
    assert_eq!(
        v["verity_table"],
        format!("0 16384 verity 0 /dev/vdb /dev/vdb 512 4096 16384 2049 sha256 {h} abcd")
    );

    let text = String::from_utf8(kv(&["inspect", &sb]).stdout).unwrap();
    for line in [
        "  format      hash_type 0, salt abcd\n",
        "  superblock  at byte 8388608, padded to one hash block\n",
        "  hash tree   at byte 8392704 (hash block 2049),",
    ] {
        assert!(text.contains(line), "{line:?} not in {text}");
    }
    let plain = String::from_utf8(kv(&["inspect", &volume("")]).stdout).unwrap();
    assert!(
        plain.contains("  format      hash_type 1, salt -\n"),
        "{plain}"
    );
    assert!(plain.contains("  superblock  none\n"), "{plain}");
    assert!(plain.contains("(hash block 2048)"), "{plain}");

    refused(
        &kv(&["inspect", &volume(r#","hash_type":2"#)]),
        &["Invalid dm_verity.hash_type 2: must be 0 or 1"],
    );
    refused(
        &kv(&["inspect", &volume(r#","salt":"xyz""#)]),
        &["Invalid dm_verity.salt \"xyz\""],
    );
}

#[test]
fn verify_checks_a_veritysetup_superblock_and_the_tree_after_it() {
    for (hs, salt, hash_file) in [(4096, "abcd", false), (512, "-", false), (4096, "-", true)] {
        let mut f = flags(hs, salt);
        if hash_file {
            f.hash_offset = 0;
        }
        let (dir, img, root) = veritysetup_image(&f, WITH_SB, hash_file);
        let hash = dir.path().join("hash");
        let mut args = vec![
            "verify".to_owned(),
            "--json".into(),
            "--superblock".into(),
            "--hash-block-size".into(),
            hs.to_string(),
            "--salt".into(),
            salt.into(),
        ];
        if hash_file {
            args.extend(["--hash-file".into(), s(&hash).to_owned()]);
        } else {
            // No --data-blocks: the superblock's count is used.
            args.extend(["--hash-offset".into(), "262144".into()]);
        }
        args.extend([s(&img).to_owned(), root.clone()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = json(&kv(&argv));
        assert_eq!(out["ok"], true);
        assert_eq!(out["data_blocks"], 64);
        let sb_offset = if hash_file { 0 } else { 262_144 };
        assert_eq!(out["superblock"]["offset"], sb_offset);
        assert_eq!(
            out["hash_offset"],
            sb_offset + hs,
            "the tree is one hash block on"
        );
        let device = if hash_file { &hash } else { &img };
        let uuid = veritysetup::dump(device, sb_offset)
            .into_iter()
            .find(|(k, _)| k == "UUID")
            .unwrap()
            .1;
        assert_eq!(out["superblock"]["uuid"], uuid.as_str());

        // A flag that disagrees with the superblock is named with both values.
        let mut wrong = argv.clone();
        wrong.retain(|a| *a != "--json");
        let mut extra = vec!["--data-blocks", "63"];
        extra.extend(&wrong[1..]);
        let mut cmd = vec!["verify"];
        cmd.extend(extra);
        refused(&kv(&cmd), &["has data blocks 64 but --data-blocks is 63"]);
    }
}

#[test]
fn verify_refuses_what_it_cannot_check_and_hints_at_a_superblock() {
    let f = flags(4096, "abcd");
    let (_dir, img, root) = veritysetup_image(&f, WITH_SB, false);
    let base = ["--hash-offset", "262144", "--salt", "abcd"];
    let run = |extra: &[&str]| {
        let mut cmd = vec!["verify"];
        cmd.extend(extra);
        cmd.extend(base);
        cmd.extend([s(&img), root.as_str()]);
        kv(&cmd)
    };
    refused(
        &run(&["--superblock", "--hash-block-size", "512"]),
        &[
            "Verity superblock at byte 262144 of",
            "hash block size 4096 but --hash-block-size is 512",
        ],
    );
    refused(
        &run(&["--superblock", "--hash", "sha1"]),
        &["algorithm sha256 but --hash is sha1"],
    );
    // Without --superblock the tree does not match, and the error says why.
    refused(
        &run(&["--data-blocks", "64"]),
        &[
            "root hash mismatch",
            "a verity superblock is at byte 262144: add --superblock",
        ],
    );
    // Where there is no superblock, --superblock says so.
    refused(
        &kv(&[
            "verify",
            "--superblock",
            "--hash-offset",
            "266240",
            "--salt",
            "abcd",
            s(&img),
            &root,
        ]),
        &[
            "Expected a verity superblock (--superblock) at byte 266240",
            "magic",
        ],
    );
    // Hash type 0: refused clearly (the engine computes format-1 trees only).
    let (_dir0, img0, root0) = veritysetup_image(
        &f,
        Layout {
            format: 0,
            superblock: true,
        },
        false,
    );
    refused(
        &kv(&[
            "verify",
            "--superblock",
            "--hash-offset",
            "262144",
            "--salt",
            "abcd",
            s(&img0),
            &root0,
        ]),
        &["hash_type 0", "hash type 1 trees only"],
    );
}
