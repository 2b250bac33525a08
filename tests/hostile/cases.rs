//! The hostile-request catalogue: every case is a storage request a malicious host might
//! send, with the error class it must get. Shared by the manager-level suite and the
//! daemon-level suite (over a unix socket). The policy lists the trusted root hashes and
//! requires root-hash signatures from a signer it trusts: every good request is signed, and
//! `signed.rs` holds the cases that play with root hashes and signatures.

#[path = "encodings.rs"]
mod encodings;
#[path = "signed.rs"]
pub mod signed;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::manager::{ErrorKind, Storage};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem};

/// The mount root every case runs under.
pub const ROOT: &str = "/run/kata-containers";
/// A root hash the policy trusts.
pub const TRUSTED: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// Another root hash the policy trusts (another layer).
pub const TRUSTED_B: &str = "3333333333333333333333333333333333333333333333333333333333333333";
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

/// The policy: defaults, with trusted root hashes (two sha256 layers, and a sha1 hash that
/// is the first 40 digits of the first) and required signatures from the catalogue's
/// trusted signer; its trust material loaded.
pub fn policy() -> Policy {
    let mut p = Policy {
        trusted_root_hashes: Some(
            [
                TRUSTED.to_owned(),
                TRUSTED_B.to_owned(),
                format!("sha1:{}", &TRUSTED[..40]),
            ]
            .into_iter()
            .collect(),
        ),
        trusted_signers: vec![signed::material().signer_pem.display().to_string()],
        require_signatures: true,
        ..Policy::default()
    };
    p.load_trust().unwrap();
    p
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

/// A good request (trusted layer on /dev/vdb, signed by the trusted signer) at `mp`.
pub fn good(mp: &str) -> Storage {
    Storage {
        source: "/dev/vdb".into(),
        options: vec![opt_of(&verity_json(TRUSTED, ""))],
        driver_options: vec![signed::sig_option(&signed::material().sign(TRUSTED))],
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
        // Malformed: a NUL or control character in a path is never a path we look up.
        ("/dev/vdb\0", InvalidArgument),
        ("/dev/vdb\n", InvalidArgument),
        ("/dev/vdb\u{1b}[2J", InvalidArgument),
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
    // (Without the good request's signature: a signature for a volume without dm_verity is
    // malformed, a case of its own in `signed.rs`.)
    let unverified = r#"{"volume_type":"image_raw_block","source":"/dev/vdb"}"#;
    add(
        "unverified image_raw_block",
        with(|s| {
            s.options = vec![opt_of(unverified)];
            s.driver_options.clear();
        }),
        PermissionDenied,
    );
    let unverified_layer =
        r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs"}"#;
    add(
        "unverified layer_raw_block",
        with(|s| {
            s.options = vec![opt_of(unverified_layer)];
            s.driver_options.clear();
        }),
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
        // An image the guest pulls is the agent's business: its own answer, not "invalid".
        let want = if t == "image_guest_pull" {
            NotHandledHere
        } else {
            InvalidArgument
        };
        add(
            &format!("unsupported {t}"),
            with(|s| s.options = vec![opt_of(&j)]),
            want,
        );
    }
    add(
        "image_guest_pull driver",
        with(|s| {
            s.driver = "image_guest_pull".into();
            s.options.clear();
        }),
        NotHandledHere,
    );
    add(
        "unknown driver",
        with(|s| s.driver = "virtio-fs".into()),
        InvalidArgument,
    );
    add(
        "a volume option with the dmverity driver",
        with(|s| s.driver = "dmverity".into()),
        InvalidArgument,
    );
    add(
        "a volume option with the overlayfs driver",
        with(|s| s.driver = "overlayfs".into()),
        InvalidArgument,
    );
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
            )];
            s.driver_options.clear();
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
    let encodings = encodings::cases(&j);
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
    add(
        "two million empty options",
        with(|s| {
            s.options
                .extend(std::iter::repeat_n(String::new(), 2_000_000))
        }),
        PermissionDenied,
    );
    add(
        "65 options",
        with(|s| s.driver_options = vec!["noatime".into(); 64]),
        PermissionDenied,
    );

    // --- one request, one volume: both option lists must agree, and fstype too.
    add(
        "another volume in driver_options",
        with(|s| s.driver_options = vec![opt_of(&verity_json(UNTRUSTED, ""))]),
        InvalidArgument,
    );
    add(
        "another fstype",
        with(|s| s.fstype = "ext4".into()),
        InvalidArgument,
    );
    // --- root hashes and their signatures.
    signed::cases(&mut add, &good(&format!("{ROOT}/c/rootfs")));
    for (name, mp) in [
        ("newline in the mount point", "a\nforged"),
        ("escape in the mount point", "a\u{1b}[31m"),
        ("DEL in the mount point", "a\u{7f}"),
        ("256-byte component", &"n".repeat(256)),
    ] {
        add(
            name,
            with(|s| s.mount_point = format!("{ROOT}/c/{mp}")),
            InvalidArgument,
        );
    }
    v
}
