//! `kata-volume inspect` as a user runs it: exit codes, `--json` keys, the table line, errors on
//! one `error:` line, standard input (also beyond the 128 KiB argument limit), `--tarfs`, help.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{H256, option, raw_with, tarfs_verity, verity_with};

const BIN: &str = env!("CARGO_BIN_EXE_kata-volume");

fn table_on(dev: &str) -> String {
    format!("0 16384 verity 1 {dev} {dev} 512 4096 16384 2048 sha256 {H256} -")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_owned();
        // Write from a thread: the child may answer before reading it all.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Runs with `--json`, expects success, returns the object.
fn json_ok(args: &[&str], stdin: Option<&str>) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let o = run(&all, stdin);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Runs `inspect`, expects a refusal: exit 1 and exactly one `error:` line naming `parts`.
fn refused(args: &[&str], stdin: Option<&str>, parts: &[&str]) {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let o = run(&all, stdin);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    for p in parts {
        assert!(lines[0].contains(p), "{err:?} does not mention {p:?}");
    }
}

#[test]
fn valid_json_has_the_keys_and_the_exact_table() {
    let opt = option(&raw_with(&tarfs_verity()));
    let v = json_ok(&[&opt], None);
    assert_eq!(v["volume_type"], "layer_raw_block");
    assert_eq!(v["source"], "/dev/vdb");
    let dm = v["dm_verity"].as_object().unwrap();
    let mut keys: Vec<&str> = dm.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "blocknum",
            "blocksize",
            "hash",
            "hashsize",
            "hashtype",
            "offset"
        ]
    );
    assert_eq!(dm["hashtype"], "sha256");
    assert_eq!(dm["hash"], H256);
    assert_eq!(
        (
            &dm["blocknum"],
            &dm["blocksize"],
            &dm["hashsize"],
            &dm["offset"]
        ),
        (
            &Value::from(16384),
            &Value::from(512),
            &Value::from(4096),
            &Value::from(8_388_608)
        )
    );
    // Without --device the table uses the volume's source.
    assert_eq!(v["verity_table"], table_on("/dev/vdb"));
    // With --device, that device.
    let v = json_ok(&["--device", "/dev/mapper/x", &opt], None);
    assert_eq!(v["verity_table"], table_on("/dev/mapper/x"));
    assert_eq!(v["source"], "/dev/vdb");
}

#[test]
fn upper_case_input_is_shown_canonical() {
    let json = raw_with(&verity_with("hashtype", "\"SHA256\"").replace(H256, &H256.to_uppercase()));
    let v = json_ok(&[&option(&json)], None);
    assert_eq!(v["dm_verity"]["hashtype"], "sha256");
    assert_eq!(v["dm_verity"]["hash"], H256);
    assert_eq!(v["verity_table"], table_on("/dev/vdb"));
}

#[test]
fn no_verity_gives_null() {
    for json in [
        r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#,
        r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"a":"b"}}}"#,
        r#"{"volume_type":"image_nydus_fs","source":"/s","nydus_image":{"config":"c"}}"#,
    ] {
        let v = json_ok(&[&option(json)], None);
        assert!(v["dm_verity"].is_null(), "{json}");
        assert!(v["verity_table"].is_null(), "{json}");
        assert!(v.get("volume_type").is_some() && v.get("source").is_some());
    }
    let v = json_ok(
        &[&option(
            r#"{"volume_type":"image_guest_pull","image_pull":{"metadata":{"a":"b"}}}"#,
        )],
        None,
    );
    assert!(v["source"].is_null());
    assert_eq!(v["volume_type"], "image_guest_pull");
}

#[test]
fn bare_base64_and_json_are_accepted() {
    let json = raw_with(&tarfs_verity());
    let b64 = option(&json).replace("io.katacontainers.volume=", "");
    for arg in [json.as_str(), b64.as_str()] {
        let v = json_ok(&[arg], None);
        assert_eq!(v["verity_table"], table_on("/dev/vdb"));
    }
}

#[test]
fn human_output_shows_the_table() {
    let o = run(&["inspect", &option(&raw_with(&tarfs_verity()))], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("layer_raw_block"), "{out}");
    assert!(out.contains(&table_on("/dev/vdb")), "{out}");
    assert!(out.contains("ro,nodev,nosuid"), "{out}");
}

#[test]
fn invalid_volumes_exit_1_with_one_error_line() {
    let md5 = raw_with(&verity_with("hashtype", "\"md5\""));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (option(&md5), vec!["dm_verity.hashtype", "\"md5\""]),
        (
            option(&raw_with(&verity_with("blocksize", "3000"))),
            vec!["dm_verity.blocksize", "3000"],
        ),
        (
            option(&raw_with(&verity_with("blocknum", "0"))),
            vec!["dm_verity.blocknum", "0"],
        ),
        (
            option(&raw_with(&verity_with("offset", "8193"))),
            vec!["dm_verity.offset", "8193"],
        ),
        (
            option(&raw_with(&verity_with("blocknum", "\"16384\""))),
            vec!["dm_verity.blocknum", "a string"],
        ),
        (
            option(&raw_with(&verity_with("offset", "-1"))),
            vec!["dm_verity.offset", "-1"],
        ),
        (
            option(r#"{"volume_type":"direct_block","source":"/dev/vdc"}"#),
            vec!["direct_volume", "direct_block"],
        ),
        (
            option(r#"{"volume_type":"foo"}"#),
            vec!["volume_type", "\"foo\""],
        ),
        (
            option(r#"{"volume_type":"layer_raw_block","source":"/d","fs_type":"ext4 x"}"#),
            vec!["fs_type", "\"ext4 x\""],
        ),
        (
            option(r#"{"volume_type":"layer_raw_block","source":"/d","options":["ro,exec"]}"#),
            vec!["options", "\"ro,exec\""],
        ),
        (
            option(r#"{"volume_type":"layer_raw_block","source":"/d","options":["rw"]}"#),
            vec!["mount option", "\"rw\""],
        ),
        (
            option(
                r#"{"volume_type":"direct_block","source":"/d","direct_volume":{"metadata":{"a\nb":1}}}"#,
            ),
            vec!["direct_volume.metadata", "a\\nb"],
        ),
        (
            option(r#"{"volume_type":"a\nb\nc"}"#),
            vec!["volume_type", "\"a\\nb\\nc\""],
        ),
        (
            option(&raw_with(&tarfs_verity()).replace("/dev/vdb", "/dev/my disk")),
            vec!["device", "\"/dev/my disk\""],
        ),
        (
            "io.katacontainers.volume=!!!".into(),
            vec!["base64", "io.katacontainers.volume"],
        ),
        (option("{"), vec!["JSON"]),
        (option("[1]"), vec!["volume", "an array"]),
    ];
    for (arg, parts) in &cases {
        refused(&[arg], None, parts);
        refused(&["--json", arg], None, parts);
    }
    // A bad --device is refused by name too.
    refused(
        &["--device", "a b", &option(&raw_with(&tarfs_verity()))],
        None,
        &["device", "\"a b\""],
    );
}

#[test]
fn stdin_dash_reads_the_option() {
    let opt = option(&raw_with(&tarfs_verity()));
    let v = json_ok(&["-"], Some(&format!("{opt}\n")));
    assert_eq!(v["verity_table"], table_on("/dev/vdb"));
    let v = json_ok(&["--device", "/dev/vdz", "-"], Some(&opt));
    assert_eq!(v["verity_table"], table_on("/dev/vdz"));
    refused(&["-"], Some(""), &["JSON"]);
    refused(&["-"], Some("io.katacontainers.volume=%%"), &["base64"]);
}

#[test]
fn an_option_larger_than_128_kib_works_through_stdin() {
    // A direct_block volume with a large metadata map: ~200 KiB of JSON, more base64.
    let md: Vec<String> = (0..2000)
        .map(|i| format!(r#""key-{i:05}":"{}""#, "v".repeat(90)))
        .collect();
    let json = format!(
        r#"{{"volume_type":"direct_block","source":"/dev/vdc","direct_volume":{{"metadata":{{{}}}}},"dm_verity":{}}}"#,
        md.join(","),
        tarfs_verity()
    );
    let opt = option(&json);
    assert!(opt.len() > 128 * 1024, "{}", opt.len());
    let v = json_ok(&["-"], Some(&opt));
    assert_eq!(v["volume_type"], "direct_block");
    assert_eq!(v["verity_table"], table_on("/dev/vdc"));
    // Beyond the hard limit: refused by size, not by crashing.
    let huge = format!("io.katacontainers.volume={}", "A".repeat(2 << 20));
    refused(&["-"], Some(&huge), &["bytes", "limit"]);
}

/// A tree that starts after a gap: the table, `hash_start_block` and the size the device
/// needs follow `offset`, not the data's end.
#[test]
fn a_gap_between_data_and_tree_is_in_the_table() {
    let info = format!("16384,12582912,sha256:{H256}");
    let opt = option(&raw_with(&verity_with("offset", "12582912")));
    for v in [
        json_ok(&["--tarfs", &info, "--device", "/dev/vdb"], None),
        json_ok(&[&opt], None),
    ] {
        assert_eq!(
            v["verity_table"],
            format!("0 16384 verity 1 /dev/vdb /dev/vdb 512 4096 16384 3072 sha256 {H256} -")
        );
        assert_eq!(v["hash_tree"]["hash_start_block"], 3072);
        assert_eq!(v["hash_tree"]["data_size"], 8_388_608);
        assert_eq!(
            v["hash_tree"]["required_device_size"],
            12_582_912 + 129 * 4096
        );
    }
    let o = run(&["inspect", &opt], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("hash tree   at byte 12582912 (hash block 3072), 129 blocks"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn tarfs_info_is_inspected() {
    let info = format!("16384,8388608,sha256:{H256}");
    let v = json_ok(&["--tarfs", &info, "--device", "/dev/vdb"], None);
    assert_eq!(v["verity_table"], table_on("/dev/vdb"));
    assert_eq!(v["dm_verity"]["blocksize"], 512);
    assert_eq!(v["dm_verity"]["hashsize"], 4096);
    // Without a device there is no table to show.
    let v = json_ok(&["--tarfs", &info], None);
    assert!(v["verity_table"].is_null());
    assert_eq!(v["dm_verity"]["offset"], 8_388_608);
    // From standard input.
    let v = json_ok(
        &["--device", "/dev/vdb", "--tarfs", "-"],
        Some(&format!("{info}\n")),
    );
    assert_eq!(v["verity_table"], table_on("/dev/vdb"));
    // Malformed strings: exit 1, naming the string.
    refused(&["--tarfs", "1,2"], None, &["tarfs", "\"1,2\""]);
    refused(
        &["--tarfs", &format!("16384,8388609,sha256:{H256}")],
        None,
        &["dm_verity.offset", "8388609"],
    );
}

#[test]
fn help_mentions_an_example() {
    for args in [&["inspect", "--help"][..], &["help", "inspect"][..]] {
        let o = run(args, None);
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        assert!(out.contains("Example"), "{out}");
        assert!(out.contains("kata-volume inspect"), "{out}");
        assert!(out.contains("--tarfs") && out.contains("--json") && out.contains("--device"));
    }
    let o = run(&["--help"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("inspect"));
}

#[test]
fn bad_usage_exits_2() {
    let opt = option(&raw_with(&tarfs_verity()));
    for args in [
        &["inspect"][..],
        &["inspect", "--bogus", &opt][..],
        &["inspect", "--tarfs", "1,2,3", &opt][..],
        &["inspect", &opt, "extra"][..],
        &["inspect", "--device"][..],
        &["no-such-command"][..],
        &[][..],
    ] {
        let o = run(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty() || args.is_empty(), "{args:?}");
    }
}

/// Hostile options never crash the CLI (exit 101): each is refused with exit 1 and one
/// `error:` line saying why, given as an option and as bare JSON alike.
#[test]
fn hostile_options_are_refused_with_their_reason() {
    let many = format!(
        "{{{}}}",
        (0..5000)
            .map(|i| format!("\"k{i}\":[[[[]]]]"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let deep = "nested deeper than 32 levels";
    for (json, as_option, as_json) in [
        (
            format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)),
            deep,
            // Not an object: taken for bare base64, which it is not.
            "Invalid base64",
        ),
        (
            format!("{{\"volume_type\":{}}}", "{\"a\":".repeat(5000)),
            deep,
            deep,
        ),
        (many, "Unknown volume_type \"\"", "Unknown volume_type \"\""),
        (
            raw_with(&verity_with("blocknum", "18446744073709551615")),
            "Invalid dm_verity.blocknum 18446744073709551615",
            "Invalid dm_verity.blocknum 18446744073709551615",
        ),
        (
            raw_with(&verity_with("offset", "18446744073709547520")),
            "Invalid dm_verity.offset 18446744073709547520: the hash tree's end overflows",
            "Invalid dm_verity.offset 18446744073709547520: the hash tree's end overflows",
        ),
        (
            raw_with(&verity_with(
                "hash",
                &format!("\"{}\"", "f".repeat(100_000)),
            )),
            "Invalid dm_verity.hash \"ffff",
            "Invalid dm_verity.hash \"ffff",
        ),
    ] {
        for (arg, want) in [(option(&json), as_option), (json.clone(), as_json)] {
            let o = run(&["inspect", "--json", "-"], Some(&arg));
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{want}: {err}");
            assert!(o.stdout.is_empty(), "{want}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with("error: "), "{err}");
            assert!(err.contains(want), "want {want:?} in {err}");
        }
    }
}

/// A reader that went away (closed pipe) never makes the CLI panic (exit 101): it ends
/// quietly with 141, as a process killed by SIGPIPE would.
#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let hash = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args([
            "inspect",
            "--tarfs",
            &format!("16384,8388608,sha256:{hash}"),
        ])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A value that starts with `-` is the flag's value, not another flag: the error is the
/// field's (exit 1), not a usage error (issue 11 item 15).
#[test]
fn values_starting_with_a_dash_are_values() {
    let h = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
    refused(
        &["--tarfs", &format!("-2048,1048576,sha256:{h}")],
        None,
        &["tarfs", "-2048"],
    );
    refused(&["-x-not-an-option"], None, &["base64"]);
    refused(
        &["--device", "-dev", r#"{"volume_type":"x"}"#],
        None,
        &["volume_type"],
    );
}
