//! The hostile-request catalogue: every case is a storage request a malicious host might
//! send, with the error class it must get. Shared by the manager-level suite and the
//! daemon-level suite (over a unix socket).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use kata_volume::manager::{ErrorKind, Storage};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem};

/// The mount root every case runs under.
pub const ROOT: &str = "/run/kata-containers";
/// A root hash the policy trusts.
pub const TRUSTED: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// A root hash it does not.
pub const UNTRUSTED: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// One hostile request.
pub struct Case {
    pub name: String,
    pub storage: Storage,
    pub want: ErrorKind,
}

/// The fake system the cases run on: good disks, character devices, files, a symlink escape.
pub fn system() -> FakeSystem {
    let f = FakeSystem::new();
    for d in [
        "/run",
        ROOT,
        "/etc",
        "/proc",
        "/proc/self",
        "/sys",
        "/images",
    ] {
        f.add_dir(d);
    }
    f.add_block_device(
        "/dev/vdb",
        DevNum {
            major: 254,
            minor: 16,
        },
        64 << 20,
    );
    f.add_block_device(
        "/dev/vdc",
        DevNum {
            major: 254,
            minor: 32,
        },
        4096,
    );
    // Another good disk: the same layer on it is a different volume (conflicts).
    f.add_block_device(
        "/dev/vdd",
        DevNum {
            major: 254,
            minor: 48,
        },
        64 << 20,
    );
    f.add_block_device("/dev/loop7", DevNum { major: 7, minor: 7 }, 64 << 20);
    for c in [
        "/dev/null",
        "/dev/mem",
        "/dev/zero",
        "/dev/kmsg",
        "/proc/kcore",
        "/dev/vdchar",
    ] {
        f.add_char_device(c);
    }
    f.add_file("/etc/passwd", 1 << 20);
    f.add_file("/proc/self/mem", 1 << 20);
    f.add_file("/images/layer.img", 64 << 20);
    f.add_symlink(&format!("{ROOT}/evil"), "/etc");
    f.add_dir(&format!("{ROOT}/busy"));
    f.add_dir(&format!("{ROOT}/shared"));
    f.add_dir(&format!("{ROOT}/shared/containers"));
    f
}

/// The policy: defaults, with one trusted root hash.
pub fn policy() -> Policy {
    Policy {
        trusted_root_hashes: Some([TRUSTED.to_owned()].into_iter().collect()),
        ..Policy::default()
    }
}

pub fn verity_json(hash: &str, extra: &str) -> String {
    format!(
        r#"{{"volume_type":"layer_raw_block","source":"/dev/vdb"{extra},"dm_verity":{{"hashtype":"sha256","hash":"{hash}","blocknum":4096,"blocksize":4096,"hashsize":4096,"offset":16777216}}}}"#
    )
}

pub fn opt_of(json: &str) -> String {
    format!("io.katacontainers.volume={}", STANDARD.encode(json))
}

/// The good layer on another disk at `mp`: a valid request, but a different volume from
/// [`good`]'s (another device), so a conflict where that one is mounted.
pub fn other_volume(mp: &str) -> Storage {
    Storage {
        source: "/dev/vdd".into(),
        ..good(mp)
    }
}

/// A good request (trusted layer on /dev/vdb) at `mp`.
pub fn good(mp: &str) -> Storage {
    Storage {
        source: "/dev/vdb".into(),
        options: vec![opt_of(&verity_json(TRUSTED, ""))],
        mount_point: mp.into(),
        ..Default::default()
    }
}

fn with(f: impl FnOnce(&mut Storage)) -> Storage {
    let mut s = good(&format!("{ROOT}/c/rootfs"));
    f(&mut s);
    s
}

/// Every case.
pub fn cases() -> Vec<Case> {
    use ErrorKind::*;
    let mut v: Vec<Case> = Vec::new();
    let mut add = |name: &str, storage: Storage, want| {
        v.push(Case {
            name: name.to_owned(),
            storage,
            want,
        })
    };

    // --- mount point: traversal, escapes, outside the root (malformed → invalid argument,
    //     well-formed but outside → permission denied).
    for (mp, want) in [
        ("", InvalidArgument),
        ("relative/path", InvalidArgument),
        ("/", InvalidArgument),
        ("/run/kata-containers/../../etc", InvalidArgument),
        ("/run/kata-containers/a/../../../etc", InvalidArgument),
        ("/run/kata-containers/./x", InvalidArgument),
        ("/run/kata-containers//x", InvalidArgument),
        ("/run/kata-containers/x/", InvalidArgument),
        ("/run/kata-containers/..", InvalidArgument),
        ("/run/kata-containers/x\0/etc", InvalidArgument),
        ("/etc", PermissionDenied),
        ("/etc/passwd", PermissionDenied),
        ("/proc/self", PermissionDenied),
        ("/run", PermissionDenied),
        ("/run/kata-containers", PermissionDenied),
        ("/run/kata-containersX/y", PermissionDenied),
        ("/run/kata-container/y", PermissionDenied),
        ("/sys/kernel", PermissionDenied),
        ("/run/kata-containers/evil", InvalidArgument),
        ("/run/kata-containers/evil/x", InvalidArgument),
        ("/run/kata-containers/evil/x/y/z", InvalidArgument),
        ("/run/kata-containers/shared/containers/x", InvalidArgument),
        ("/run/kata-containers/shared/y", InvalidArgument),
    ] {
        add(
            &format!("mount point {mp:?}"),
            with(|s| s.mount_point = mp.into()),
            want,
        );
    }
    let long = format!("{ROOT}/{}", "a/".repeat(2100));
    add(
        "mount point longer than PATH_MAX",
        with(|s| s.mount_point = long.trim_end_matches('/').into()),
        InvalidArgument,
    );

    // --- sources: not block devices, or not allowed ones.
    for (src, want) in [
        ("/dev/null", PermissionDenied),
        ("/dev/mem", PermissionDenied),
        ("/dev/zero", PermissionDenied),
        ("/dev/kmsg", PermissionDenied),
        ("/proc/kcore", PermissionDenied),
        ("/proc/self/mem", PermissionDenied),
        ("/etc/passwd", PermissionDenied),
        ("/run", PermissionDenied),
        ("/images/layer.img", PermissionDenied),
        ("/dev/loop7", PermissionDenied),
        ("/dev/vdb/../mem", PermissionDenied),
        ("/dev/vd../mem", PermissionDenied),
        ("/dev/./vdb", PermissionDenied),
        ("//dev/vdb", PermissionDenied),
        ("dev/vdb", PermissionDenied),
        ("vdb", PermissionDenied),
        ("/dev/vdchar", InvalidArgument),
        ("/dev/vdz", InvalidArgument),
        ("/dev/vd*", InvalidArgument),
        ("/dev/vdb\0", PermissionDenied),
    ] {
        add(
            &format!("source {src:?}"),
            with(|s| s.source = src.into()),
            want,
        );
    }
    add(
        "device too small for the tree",
        with(|s| s.source = "/dev/vdc".into()),
        InvalidArgument,
    );

    // --- verification: unverified, untrusted, unsupported types.
    let unverified = r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#;
    add(
        "unverified image_raw_block",
        with(|s| s.options = vec![opt_of(unverified)]),
        PermissionDenied,
    );
    let unverified_layer =
        r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs"}"#;
    add(
        "unverified layer_raw_block",
        with(|s| s.options = vec![opt_of(unverified_layer)]),
        PermissionDenied,
    );
    add(
        "untrusted root hash",
        with(|s| s.options = vec![opt_of(&verity_json(UNTRUSTED, ""))]),
        PermissionDenied,
    );
    let upper = TRUSTED.to_uppercase().replace('1', "A");
    add(
        "trusted-looking hash of another case",
        with(|s| s.options = vec![opt_of(&verity_json(&upper, ""))]),
        PermissionDenied,
    );
    for t in ["image_nydus_block", "layer_nydus_fs", "image_guest_pull"] {
        let j = format!(
            r#"{{"volume_type":"{t}","source":"/dev/vdb","nydus_image":{{"config":"x"}},"image_pull":{{"metadata":{{"a":"b"}}}},"dm_verity":{{"hashtype":"sha256","hash":"{TRUSTED}","blocknum":4096,"blocksize":4096,"hashsize":4096,"offset":16777216}}}}"#
        );
        add(
            &format!("unsupported {t}"),
            with(|s| s.options = vec![opt_of(&j)]),
            InvalidArgument,
        );
    }
    for t in ["debugfs", "tmpfs", "proc", "btrfs", "vfat"] {
        let j = verity_json(TRUSTED, &format!(r#","fs_type":"{t}""#));
        add(
            &format!("fs_type {t}"),
            with(|s| s.options = vec![opt_of(&j)]),
            PermissionDenied,
        );
    }
    add(
        "unverified direct_block",
        with(|s| {
            s.options = vec![opt_of(
                r#"{"volume_type":"direct_block","source":"/dev/vdb","fs_type":"ext4","direct_volume":{"metadata":{"a":"b"}}}"#,
            )]
        }),
        PermissionDenied,
    );
    add(
        "direct_block without direct_volume",
        with(|s| {
            s.options = vec![opt_of(
                r#"{"volume_type":"direct_block","source":"/dev/vdb","fs_type":"ext4"}"#,
            )]
        }),
        InvalidArgument,
    );

    // --- options injecting mount flags or fs options.
    for o in [
        "rw",
        "exec",
        "dev",
        "suid",
        "remount",
        "bind",
        "rbind",
        "move",
        "sync",
        "async",
        "mand",
        "dirsync",
        "strictatime",
        "lazytime",
        "loud",
        "context=system_u:object_r:tmp_t:s0",
        "uid=0",
        "gid=0",
        "mode=777",
        "nouser_xattrx",
        "acl=1",
        "errors=panic",
        "device=/dev/mem",
        "fsid=x",
        "upperdir=/",
        "X-mount.mkdir",
    ] {
        let j = verity_json(TRUSTED, &format!(r#","options":["{o}"]"#));
        add(
            &format!("fs option {o:?}"),
            with(|s| s.options = vec![opt_of(&j)]),
            PermissionDenied,
        );
    }
    for o in [
        "rw",
        "exec",
        "dev",
        "suid",
        "remount",
        "bind",
        "ro,rw",
        "nosuid,suid",
        "x\0",
    ] {
        add(
            &format!("request mount option {o:?}"),
            with(|s| s.options.push(o.to_owned())),
            PermissionDenied,
        );
    }
    for o in ["ro,rw", "nodev,dev", "acl,exec", "ro\\u0000rw"] {
        let j = verity_json(TRUSTED, &format!(r#","options":["{o}"]"#));
        add(
            &format!("smuggled option {o:?}"),
            with(|s| s.options = vec![opt_of(&j)]),
            InvalidArgument,
        );
    }

    // --- encodings.
    let j = verity_json(TRUSTED, "");
    let encodings: Vec<(&str, String)> = vec![
        ("empty option", "io.katacontainers.volume=".into()),
        (
            "not base64",
            "io.katacontainers.volume=!!!not-base64!!!".into(),
        ),
        (
            "base64 without padding",
            format!(
                "io.katacontainers.volume={}",
                STANDARD_NO_PAD.encode(format!("{j} "))
            ),
        ),
        (
            "url-safe base64",
            format!(
                "io.katacontainers.volume={}",
                URL_SAFE.encode("{\"volume_type\":\"???>>>\"}")
            ),
        ),
        (
            "base64 with a space",
            format!("io.katacontainers.volume= {}", STANDARD.encode(&j)),
        ),
        (
            "base64 of non-UTF-8",
            format!(
                "io.katacontainers.volume={}",
                STANDARD.encode([0xff, 0xfe, 0x7b])
            ),
        ),
        ("base64 of non-JSON", opt_of("volume_type=layer_raw_block")),
        ("JSON array", opt_of("[1,2,3]")),
        ("JSON null", opt_of("null")),
        ("JSON string", opt_of("\"layer_raw_block\"")),
        ("JSON number", opt_of("42")),
        ("truncated JSON", opt_of(&j[..j.len() / 2])),
        ("trailing garbage", opt_of(&format!("{j}xyz"))),
        ("two objects", opt_of(&format!("{j}{j}"))),
        ("empty object", opt_of("{}")),
        (
            "unknown volume type",
            opt_of(r#"{"volume_type":"raw_block"}"#),
        ),
        (
            "volume type in wrong case",
            opt_of(&j.replace("layer_raw_block", "LAYER_RAW_BLOCK")),
        ),
        (
            "duplicate source",
            opt_of(&j.replace(
                r#""source":"/dev/vdb""#,
                r#""source":"/dev/vdb","Source":"/dev/mem""#,
            )),
        ),
        (
            "duplicate hash",
            opt_of(&j.replace(
                r#""hashtype""#,
                &format!(r#""hash":"{UNTRUSTED}","hashtype""#),
            )),
        ),
        (
            "hash as a number",
            opt_of(&j.replace(&format!("\"{TRUSTED}\""), "1111")),
        ),
        (
            "blocknum as a string",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":"4096""#)),
        ),
        (
            "negative blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":-1"#)),
        ),
        (
            "float blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4096.0"#)),
        ),
        (
            "exponent blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4e3"#)),
        ),
        (
            "huge blocknum",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":18446744073709551616"#)),
        ),
        (
            "blocknum 2^32",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":4294967296"#)),
        ),
        (
            "blocknum 0",
            opt_of(&j.replace(r#""blocknum":4096"#, r#""blocknum":0"#)),
        ),
        (
            "offset overlapping data",
            opt_of(&j.replace(r#""offset":16777216"#, r#""offset":4096"#)),
        ),
        (
            "offset near u64::MAX",
            opt_of(&j.replace(r#""offset":16777216"#, r#""offset":18446744073709547520"#)),
        ),
        (
            "blocksize 8192",
            opt_of(&j.replace(r#""blocksize":4096"#, r#""blocksize":8192"#)),
        ),
        (
            "blocksize 3000",
            opt_of(&j.replace(r#""blocksize":4096"#, r#""blocksize":3000"#)),
        ),
        (
            "hashsize 0",
            opt_of(&j.replace(r#""hashsize":4096"#, r#""hashsize":0"#)),
        ),
        (
            "hashtype md5",
            opt_of(&j.replace(r#""hashtype":"sha256""#, r#""hashtype":"md5""#)),
        ),
        ("short hash", opt_of(&j.replace(TRUSTED, &TRUSTED[..63]))),
        ("non-hex hash", opt_of(&j.replace(TRUSTED, &"g".repeat(64)))),
        (
            "dm_verity as a string",
            opt_of(r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","dm_verity":"yes"}"#),
        ),
        (
            "options as a string",
            opt_of(&verity_json(TRUSTED, r#","options":"rw""#)),
        ),
        (
            "fs_type with spaces",
            opt_of(&verity_json(TRUSTED, r#","fs_type":"erofs rw""#)),
        ),
        (
            "fs_type with a comma",
            opt_of(&verity_json(TRUSTED, r#","fs_type":"erofs,rw""#)),
        ),
        (
            "lone surrogate",
            opt_of(&j.replace("/dev/vdb", "/dev/vdb\\ud800")),
        ),
        (
            "deeply nested JSON",
            opt_of(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ),
        (
            "deeply nested object",
            opt_of(&format!(
                r#"{{"volume_type":"layer_raw_block","x":{}1{}}}"#,
                "{\"a\":".repeat(5000),
                "}".repeat(5000)
            )),
        ),
        (
            "deep arrays in an unknown field",
            opt_of(&j.replacen(
                '{',
                &format!(r#"{{"x":{}{},"#, "[".repeat(5000), "]".repeat(5000)),
                1,
            )),
        ),
        (
            "33 levels in an unknown field",
            opt_of(&j.replacen(
                '{',
                &format!(r#"{{"x":{}{},"#, "[".repeat(32), "]".repeat(32)),
                1,
            )),
        ),
    ];
    for (name, o) in encodings {
        let want = if name == "deeply nested JSON" {
            PermissionDenied
        } else {
            InvalidArgument
        };
        add(
            &format!("encoding: {name}"),
            with(|s| s.options = vec![o]),
            want,
        );
    }
    add(
        "no volume option",
        with(|s| s.options = vec!["ro".into()]),
        InvalidArgument,
    );
    add(
        "two volume options",
        with(|s| s.options = vec![opt_of(&j), opt_of(&j)]),
        InvalidArgument,
    );

    // --- sizes.
    let big = opt_of(&verity_json(
        TRUSTED,
        &format!(r#","fs_type":"erofs","x":"{}""#, "a".repeat(100_000)),
    ));
    add(
        "oversized option",
        with(|s| s.options = vec![big]),
        PermissionDenied,
    );
    let many: Vec<String> = (0..3000).map(|i| format!("noatime{i:0>90}")).collect();
    add(
        "oversized request",
        with(|s| s.driver_options = many),
        PermissionDenied,
    );
    v
}
