//! The binary's client subcommands against the in-process daemon: output, `--json`, `-` for
//! standard input, and the exit codes (0 ok, 1 refused or failed with one `error:` line
//! naming the reason, 2 bad usage).

use super::*;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Exit 1 with exactly one `error:` line that names `what`.
fn refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(what), "{err}");
}

#[test]
fn add_list_check_remove() {
    let d = Daemon::start(2);
    let mp = format!("{ROOT}/c1/rootfs");
    let add = ["add", "--source", "/dev/vd0", "--mount-point", &mp];

    let mut args = add.to_vec();
    args.extend(["--option", "ro", "--option", "-"]);
    let o = d.cli(&args, Some(&format!("{}\n", option(0))));
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("mounted layer_raw_block /dev/vd0 at "),
        "{o:?}"
    );

    let opt = option(0);
    let mut args = add.to_vec();
    args.extend(["--option", &opt, "--json"]);
    let v = json(&d.cli(&args, None));
    assert_eq!(v["already_present"], true);
    assert_eq!(v["refcount"], 2, "each add is one claim");
    assert_eq!(v["root_hash"], root_hash(0));

    let list = json(&d.cli(&["list", "--json"], None));
    assert_eq!(list["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(list["volumes"][0]["mount_point"], mp.as_str());
    let o = d.cli(&["list"], None);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("MOUNT POINT\t")),
        "{o:?}"
    );
    assert!(lines.next().is_some_and(|l| l.starts_with(&mp)), "{o:?}");

    let o = d.cli(&["check", "--mount-point", &mp], None);
    assert_eq!(stdout(&o), "status V\n", "{o:?}");
    let c = json(&d.cli(&["check", "--mount-point", &mp, "--full", "--json"], None));
    assert_eq!(c["status"], "V");
    assert!(c["bytes_read"].is_u64() && c["read_error"].is_null(), "{c}");

    // Added twice: two removes give both claims back, a third finds nothing.
    for _ in 0..2 {
        let o = d.cli(&["remove", "--mount-point", &mp], None);
        assert_eq!(stdout(&o), format!("removed {mp}\n"), "{o:?}");
    }
    let r = json(&d.cli(&["remove", "--mount-point", &mp, "--json"], None));
    assert_eq!(r["removed"], false);
    assert!(
        json(&d.cli(&["list", "--json"], None))["volumes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(d.sys.snapshot().dm.is_empty());
}

#[test]
fn refusals_exit_1_naming_the_reason() {
    let d = Daemon::start(2);
    let mp = format!("{ROOT}/c1/rootfs");
    let add = |opt: &str, src: &str| {
        d.cli(
            &[
                "add",
                "--source",
                src,
                "--mount-point",
                &mp,
                "--option",
                opt,
            ],
            None,
        )
    };
    refused(
        &add("io.katacontainers.volume=%%%", "/dev/vd0"),
        "INVALID_ARGUMENT",
    );
    refused(&add(&unverified_option(), "/dev/vd0"), "PERMISSION_DENIED");
    refused(
        &d.cli(&["check", "--mount-point", &format!("{ROOT}/none")], None),
        "NOT_FOUND",
    );
    assert!(add(&option(0), "/dev/vd0").status.success());
    refused(&add(&option(1), "/dev/vd1"), "ALREADY_EXISTS");

    let v = d.sys.snapshot().dm.into_iter().next().unwrap();
    d.sys.set_corrupt(&v);
    let o = d.cli(&["check", "--mount-point", &mp, "--full"], None);
    refused(&o, "failed");
    assert!(stdout(&o).starts_with("status C"), "{o:?}");

    let o = d.cli(&["version"], None);
    assert!(
        o.status.success() && stdout(&o).contains("(api 1)"),
        "{o:?}"
    );
}

#[test]
fn serve_help_shows_the_limits_and_their_defaults() {
    let o = cli(&["serve", "--help"], None);
    assert!(o.status.success(), "{o:?}");
    let help = stdout(&o);
    for (flag, default) in [
        ("--max-in-flight", "[default: 16]"),
        ("--max-queue-wait", "[default: 60]"),
        ("--max-connections", "[default: 32]"),
        ("--idle-timeout", "[default: 300]"),
        ("--frame-timeout", "[default: 10]"),
    ] {
        let at = help
            .find(&format!("{flag} <"))
            .unwrap_or_else(|| panic!("{flag}: {help}"));
        let next = help[at..]
            .find(default)
            .unwrap_or_else(|| panic!("{flag}: {help}"));
        assert!(
            !help[at..at + next].contains("\n      --"),
            "{flag}'s default: {help}"
        );
    }
    assert!(help.contains("--allow-vsock-cid <CID>"), "{help}");
    assert!(help.contains("the host (CID 2)"), "{help}");
}

#[test]
fn bad_usage_exits_2_and_an_absent_daemon_1() {
    for args in [
        vec!["list"],
        vec!["list", "--addr", "localhost:1"],
        vec!["add", "--addr", "unix:///x.sock", "--mount-point", "/run/x"],
        vec!["check", "--addr", "vsock://a:b", "--mount-point", "/run/x"],
        vec!["serve", "--listen", "http://0:1"],
    ] {
        let o = cli(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    }
    for (flag, value, why) in [
        ("--allow-vsock-cid", "x", "Invalid vsock peer \"x\""),
        ("--allow-vsock-cid", "-1", "Invalid vsock peer \"-1\""),
        ("--max-in-flight", "0", "0 is not in 1..=4096"),
        ("--max-connections", "0", "0 is not in 1..=65536"),
        ("--idle-timeout", "0", "0 is not in 1..=86400"),
        ("--frame-timeout", "0", "0 is not in 1..=3600"),
        ("--max-queue-wait", "x", "invalid digit"),
        ("--device-timeout", "soon", "Invalid timeout \"soon\""),
        ("--device-timeout", "2h", "Invalid timeout \"2h\""),
    ] {
        let o = cli(&["serve", flag, value], None);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {o:?}");
        let err = stderr(&o);
        assert!(
            err.contains(flag) && err.contains(why),
            "{flag} {value}: {err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(real.join("root")).unwrap();
    std::os::unix::fs::symlink(real.join("root"), real.join("link")).unwrap();
    let link = real.join("link");
    let sock = format!("unix://{}/s.sock", real.display());
    let o = cli(
        &[
            "serve",
            "--listen",
            &sock,
            "--mount-root",
            link.to_str().unwrap(),
        ],
        None,
    );
    refused(&o, "passes through the symlink");
    assert!(!real.join("s.sock").exists(), "the socket is removed");

    let addr = format!("unix://{}/none.sock", dir.path().display());
    let o = cli(&["list", "--addr", &addr, "--retry-for", "0"], None);
    refused(&o, "Cannot reach the daemon");
}

/// The SHA-256 of `bytes`, lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn serve_logs_the_digest_of_every_trust_file_and_the_old_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    let path = |n: &str| real.join(n).display().to_string();
    let layers = "require_verified_layers = true\n[[layer]]\nalgorithm = \"sha256\"\nroot_hash = \"9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a\"\n";
    std::fs::write(path("layers.toml"), layers).unwrap();
    let initdata = format!(
        "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"verified-layers.toml\" = '''\n{layers}'''\n"
    );
    std::fs::write(path("initdata.toml"), &initdata).unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=serve-signer",
            "-days",
            "1",
        ])
        .args(["-keyout", &path("k.pem"), "-out", &path("signer.pem")])
        .output()
        .expect("openssl (apt-get install openssl) makes the test's signer");
    assert!(made.status.success(), "{made:?}");
    let pem = std::fs::read(path("signer.pem")).unwrap();
    std::fs::create_dir(real.join("root")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args(["serve", "--log-format", "json"])
        .args(["--listen", &format!("unix://{}", path("s.sock"))])
        .args(["--state-dir", &path("state"), "--mount-root", &path("root")])
        .args(["--verified-layers", &path("layers.toml")])
        .args(["--initdata", &path("initdata.toml")])
        .args(["--trusted-signer", &path("signer.pem")])
        .args(["--require-signatures", "--kernel-signatures"])
        .args(["--device-timeout", "250ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap())) {
        let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let done = line["msg"] == "listening";
        lines.push(line);
        if done {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    let with = |msg: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["msg"] == msg).collect()
    };
    let loaded: Vec<(String, String)> = with("trust file loaded")
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_owned(),
                l["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        loaded,
        vec![
            (path("initdata.toml"), sha256_hex(initdata.as_bytes())),
            (path("layers.toml"), sha256_hex(layers.as_bytes())),
            (
                "initdata:verified-layers.toml".to_owned(),
                sha256_hex(layers.as_bytes())
            ),
            (path("signer.pem"), sha256_hex(&pem)),
        ],
        "{lines:?}"
    );
    let initdata_line = with("initdata loaded");
    assert_eq!(initdata_line.len(), 1, "{lines:?}");
    assert_eq!(initdata_line[0]["algorithm"], "sha256");
    assert_eq!(initdata_line[0]["digest"], sha256_hex(initdata.as_bytes()));
    let policy = with("policy");
    assert_eq!(policy[0]["verified_layers"], 1, "{lines:?}");
    assert_eq!(policy[0]["require_verified_layers"], true);
    assert_eq!(policy[0]["trusted_signers"], 1);
    assert_eq!(policy[0]["require_signatures"], true);
    assert_eq!(policy[0]["kernel_signatures"], true);
    assert_eq!(policy[0]["device_timeout_ms"], 250);

    // A trust file that cannot be read stops the start, naming it.
    let o = cli(
        &[
            "serve",
            "--listen",
            &format!("unix://{}", path("t.sock")),
            "--mount-root",
            &path("root"),
            "--state-dir",
            &path("state2"),
            "--trusted-signer",
            &path("missing.pem"),
        ],
        None,
    );
    refused(
        &o,
        &format!(
            "Cannot read trusted signer file \"{}\"",
            path("missing.pem")
        ),
    );
    // The one global key description is gone, as a flag and as a policy key.
    let o = cli(
        &["mount", "--root-hash-sig-key-desc", "k", "x", "/run/x"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--kernel-signatures"), "{o:?}");
    std::fs::write(path("policy.toml"), "root_hash_sig_key_desc = \"k\"\n").unwrap();
    let o = cli(
        &["mount", "--policy", &path("policy.toml"), "x", "/run/x"],
        None,
    );
    refused(&o, "root_hash_sig_key_desc is no longer a policy key: ");
}
