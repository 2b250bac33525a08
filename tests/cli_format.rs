//! `kata-volume format` and `kata-volume verify`, run as the built binary: output, exit codes,
//! agreement with veritysetup, and the option's round trip through `kata-volume inspect`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "common/veritysetup.rs"]
mod veritysetup;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;
use veritysetup::{Flags, flip, pattern};

fn kv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args(args)
        .output()
        .expect("run kata-volume")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert_eq!(code(o), 0, "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// An image of `blocks` blocks of `bs` bytes in a fresh directory.
fn image(blocks: usize, bs: usize, seed: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image");
    std::fs::write(&path, pattern(blocks * bs, seed)).unwrap();
    (dir, path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn format_json_matches_veritysetup_and_verifies() {
    let (dir, img) = image(300, 512, 1);
    let theirs = dir.path().join("theirs");
    std::fs::copy(&img, &theirs).unwrap();
    let out = json(&kv(&[
        "format",
        "--json",
        "--data-block-size",
        "512",
        s(&img),
    ]));
    let root = out["root_hash"].as_str().unwrap().to_owned();
    assert_eq!(out["hash_algorithm"], "sha256");
    assert_eq!(out["salt"], "-");
    assert_eq!(out["data_block_size"], 512);
    assert_eq!(out["hash_block_size"], 4096);
    assert_eq!(out["data_blocks"], 300);
    assert_eq!(out["hash_offset"], 155_648); // 300 * 512 rounded up to 4 KiB
    assert!(
        out["option"]
            .as_str()
            .unwrap()
            .starts_with("io.katacontainers.volume=")
    );
    assert!(out["option_note"].is_null());
    let flags = Flags {
        hash: "sha256",
        data_block_size: 512,
        hash_block_size: 4096,
        data_blocks: 300,
        hash_offset: 155_648,
        salt: "-".into(),
    };
    assert_eq!(veritysetup::format(&theirs, &theirs, &flags), root);
    assert_eq!(
        std::fs::read(&img).unwrap(),
        std::fs::read(&theirs).unwrap()
    );

    let ok = kv(&[
        "verify",
        "--data-block-size",
        "512",
        "--data-blocks",
        "300",
        s(&img),
        &root,
    ]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(stdout(&ok).starts_with("ok: 300 data blocks"));
    assert!(stderr(&ok).is_empty(), "no progress bar off a terminal");

    let ok = json(&kv(&[
        "verify",
        "--json",
        "--data-block-size",
        "512",
        "--data-blocks",
        "300",
        s(&img),
        &root,
    ]));
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["root_hash"], root.as_str());
    assert_eq!(ok["data_blocks"], 300);
    assert_eq!(
        ok["hash_blocks"], 4,
        "3 blocks of 128 digests, and the top one"
    );
    assert_eq!(ok["data_block_size"], 512);
}

#[test]
fn format_text_output() {
    let (_dir, img) = image(3, 4096, 2);
    let out = kv(&["format", s(&img)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("root hash:       "), "{text}");
    assert!(text.contains("data blocks:     3\n"), "{text}");
    assert!(text.contains("hash offset:     12288 (in "), "{text}");
    assert!(
        text.contains("option:          io.katacontainers.volume="),
        "{text}"
    );
    assert!(stderr(&out).is_empty());
}

#[test]
fn option_plans_back_to_the_same_parameters() {
    let (_dir, img) = image(1000, 512, 3);
    let out = json(&kv(&[
        "format",
        "--json",
        "--data-block-size",
        "512",
        "--hash",
        "sha1",
        "--hash-offset",
        "1048576",
        "--volume-type",
        "layer_raw_block",
        "--source",
        "/dev/vdb",
        s(&img),
    ]));
    let option = out["option"].as_str().unwrap();
    let back = json(&kv(&["inspect", "--json", option]));
    assert_eq!(back["volume_type"], "layer_raw_block");
    assert_eq!(back["source"], "/dev/vdb");
    let v = &back["dm_verity"];
    assert_eq!(v["hashtype"], out["hash_algorithm"]);
    assert_eq!(v["hash"], out["root_hash"]);
    assert_eq!(v["blocknum"], out["data_blocks"]);
    assert_eq!(v["blocksize"], out["data_block_size"]);
    assert_eq!(v["hashsize"], out["hash_block_size"]);
    assert_eq!(v["offset"], out["hash_offset"]);
    let table = format!(
        "0 1000 verity 1 /dev/vdb /dev/vdb 512 4096 1000 256 sha1 {} -",
        out["root_hash"].as_str().unwrap()
    );
    assert_eq!(back["verity_table"], table.as_str());
}

#[test]
fn no_option_with_a_hash_file() {
    // (A salted tree has an option: tests/cli_superblock.rs.)
    let (dir, img) = image(8, 4096, 4);
    let hash = dir.path().join("tree");
    let sep = json(&kv(&["format", "--json", "--hash-file", s(&hash), s(&img)]));
    assert!(sep["option"].is_null());
    assert!(sep["option_note"].as_str().unwrap().contains("hash device"));
    assert_eq!(sep["hash_offset"], 0);
    let root = sep["root_hash"].as_str().unwrap();
    let ok = kv(&["verify", "--hash-file", s(&hash), s(&img), root]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
}

#[test]
fn verify_names_the_corrupted_block() {
    // 1 KiB data blocks, 512-byte hash blocks: 300 blocks → 3 levels (1 + 2 + 19 blocks).
    let (_dir, img) = image(300, 1024, 5);
    let args = ["--data-block-size", "1024", "--hash-block-size", "512"];
    let mut cmd = vec!["format", "--json"];
    cmd.extend(args);
    cmd.push(s(&img));
    let root = json(&kv(&cmd))["root_hash"].as_str().unwrap().to_owned();
    let verify = || {
        let mut v = vec!["verify", "--data-blocks", "300"];
        v.extend(args);
        v.extend([s(&img), root.as_str()]);
        kv(&v)
    };
    assert_eq!(code(&verify()), 0);

    flip(&img, 42 * 1024 + 3);
    let out = verify();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.starts_with("error: data block 42 "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Level 0 starts after the top block and level 1's two blocks: block 7 of level 0.
    flip(&img, 307_200 + (3 + 7) * 512 + 100);
    let err = stderr(&verify());
    assert!(err.starts_with("error: hash block 7 of level 0 "), "{err}");

    flip(&img, 307_200 + 1);
    let out = verify();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).starts_with("error: root hash mismatch: the top hash block (level 2"));
}

#[test]
fn bad_arguments_exit_2() {
    let (_dir, img) = image(4, 4096, 6);
    let root = "00".repeat(32);
    for (args, names) in [
        (
            vec!["format", "--data-block-size", "1000", s(&img)],
            "--data-block-size 1000",
        ),
        (
            vec!["format", "--hash-block-size", "8192", s(&img)],
            "--hash-block-size 8192",
        ),
        (
            vec!["format", "--hash", "md5", s(&img)],
            "--hash \"md5\": expected sha256, sha1 or sha512",
        ),
        (vec!["format", "--salt", "xyz", s(&img)], "--salt \"xyz\""),
        (
            vec!["format", "--hash-offset", "100", s(&img)],
            "--hash-offset 100",
        ),
        (
            vec!["format", "--hash-offset", "4096", s(&img)],
            "--hash-offset 4096",
        ),
        (
            vec!["format", "--data-blocks", "0", s(&img)],
            "--data-blocks 0",
        ),
        (
            vec!["format", "--volume-type", "image_guest_pull", s(&img)],
            "--volume-type",
        ),
        (vec!["format"], "IMAGE"),
        (vec!["verify", s(&img)], "ROOT_HASH"),
        (
            vec!["verify", "--data-blocks", "4", s(&img), "abcd"],
            "ROOT_HASH \"abcd\"",
        ),
        (vec!["verify", s(&img), &root], "--data-blocks"),
    ] {
        let out = kv(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error") && stderr(&out).contains(names),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("dm_verity."),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn failures_exit_1() {
    let (dir, img) = image(4, 4096, 7);
    let missing = dir.path().join("missing");
    let out = kv(&["format", s(&missing)]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("error: cannot open "),
        "{}",
        stderr(&out)
    );

    std::fs::write(&img, b"").unwrap();
    let out = kv(&["format", s(&img)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(": 0 data blocks of 4096 bytes; a tree covers 1 to 4294967295"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&img, pattern(4097, 7)).unwrap();
    let out = kv(&["format", s(&img)]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not a multiple of the data block size"));

    let wrong = "11".repeat(32);
    let out = kv(&["verify", "--data-blocks", "1", s(&img), &wrong]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("root hash mismatch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_default_source_is_the_images_absolute_path() {
    let (dir, _img) = image(8, 4096, 9);
    let out = Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args(["format", "--json", "image"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let out = json(&out);
    let back = json(&kv(&["inspect", "--json", out["option"].as_str().unwrap()]));
    let expected = std::fs::canonicalize(dir.path()).unwrap().join("image");
    assert_eq!(back["source"], s(&expected));
}

#[test]
fn wrong_parameters_get_a_hint() {
    let (_dir, img) = image(64, 4096, 10);
    let out = json(&kv(&[
        "format",
        "--json",
        "--data-block-size",
        "512",
        s(&img),
    ]));
    let root = out["root_hash"].as_str().unwrap().to_owned();
    // Verified with the default 4096-byte data blocks: block 0 (or the root) mismatches.
    let wrong = kv(&["verify", "--data-blocks", "64", s(&img), &root]);
    assert_eq!(code(&wrong), 1, "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("check that block sizes, salt, --hash and --hash-offset"),
        "{}",
        stderr(&wrong)
    );
    assert_eq!(stderr(&wrong).lines().count(), 1);

    let sha1 = "ab".repeat(20);
    let out = kv(&["verify", "--data-blocks", "512", s(&img), &sha1]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("(40 hex digits is sha1: add --hash sha1)"),
        "{}",
        stderr(&out)
    );
}
