//! `kata-volume storages` as a user runs it: a three-layer nydus-snapshotter mount gives
//! exactly the JSON in `tests/golden/` (both conventions), which `add --storages` reads back;
//! refusals exit 1 with one `error:` line, bad usage exits 2.
//!
//! After an intended change of the output, rewrite the golden files with
//! `KATA_VOLUME_BLESS=1 cargo test --features cli --test cli_storages` (the blessing run
//! fails on purpose), review the diff, and run again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use kata_volume::request::Storage;
use kata_volume::volume::{DmVerityInfo, KataVirtualVolume, encode_option};

const BIN: &str = env!("CARGO_BIN_EXE_kata-volume");
const SNAPSHOTS: &str = "/var/lib/containerd-nydus/snapshots";

/// The three layers, top first: (blob, data blocks, hash offset) of tarfs images
/// (512-byte data blocks, 4096-byte hash blocks, the tree right after the data).
const LAYERS: [(&str, u64, u64); 3] = [
    ("c0ffee", 100, 53_248),
    ("b0b0b0", 2361, 1_212_416),
    ("a1a1a1", 8192, 4_194_304),
];

fn disk(blob: &str) -> String {
    format!("/var/lib/containerd-nydus/cache/{blob}.layer.disk")
}

fn root_hash(blob: &str) -> String {
    blob.repeat(64 / blob.len())
        .chars()
        .chain(std::iter::repeat('0'))
        .take(64)
        .collect()
}

fn volume_option(blob: &str, blocknum: u64, offset: u64) -> String {
    encode_option(&KataVirtualVolume {
        volume_type: "layer_raw_block".into(),
        source: disk(blob),
        fs_type: "erofs".into(),
        options: vec!["ro".into()],
        dm_verity: Some(DmVerityInfo {
            hashtype: "sha256".into(),
            hash: root_hash(blob),
            blocknum,
            blocksize: 512,
            hashsize: 4096,
            offset,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The mount nydus-snapshotter returns for the container's active snapshot.
fn mount_args() -> Vec<String> {
    let mut args: Vec<String> = [
        "--mount-type",
        "fuse.nydus-overlayfs",
        "--container-id",
        "nginx-1",
        "--mount-option",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("workdir={SNAPSHOTS}/12/work"));
    args.push("--mount-option".into());
    args.push(format!("upperdir={SNAPSHOTS}/12/fs"));
    args.push("--mount-option".into());
    args.push(format!(
        "lowerdir={SNAPSHOTS}/11/fs:{SNAPSHOTS}/10/fs:{SNAPSHOTS}/9/fs"
    ));
    for (blob, blocknum, offset) in LAYERS {
        args.push("--mount-option".into());
        args.push(volume_option(blob, blocknum, offset));
    }
    args
}

fn storages(extra: &[String]) -> Output {
    Command::new(BIN)
        .arg("storages")
        .args(mount_args())
        .args(extra)
        .output()
        .unwrap()
}

fn map(addresses: [&str; 3]) -> Vec<String> {
    LAYERS
        .iter()
        .zip(addresses)
        .flat_map(|((blob, ..), a)| ["--source-map".to_owned(), format!("{}={a}", disk(blob))])
        .collect()
}

fn golden(name: &str, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let got = String::from_utf8(out.stdout.clone()).unwrap();
    if std::env::var_os("KATA_VOLUME_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        panic!(
            "wrote {}: review it, then run again without KATA_VOLUME_BLESS",
            path.display()
        );
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(got == want, "{name} differs from the golden file:\n{got}");
    // What `add --storages` reads back.
    let list: Vec<Storage> = serde_json::from_str(&got).unwrap();
    assert_eq!(list.len(), 4);
}

#[test]
fn a_three_layer_nydus_mount_under_ccv0() {
    let out = storages(&map(["virtio_pci:02/03", "02/02", "virtio_pci:02/01"]));
    golden("storages_ccv0.json", &out);
    // The default convention is ccv0, and --json changes nothing.
    let mut extra = map(["virtio_pci:02/03", "02/02", "virtio_pci:02/01"]);
    extra.extend(["--convention".into(), "ccv0".into(), "--json".into()]);
    assert_eq!(storages(&extra).stdout, out.stdout);
}

#[test]
fn a_three_layer_nydus_mount_under_virtual_volume() {
    let mut extra = map(["/dev/vdd", "/dev/vdc", "/dev/vdb"]);
    extra.extend(["--convention".into(), "virtual-volume".into()]);
    golden("storages_virtual_volume.json", &storages(&extra));
}

fn refused(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err, format!("error: {message}\n"));
}

#[test]
fn refusals_exit_1_with_one_error_line() {
    // The middle layer's image has no address.
    let mut extra = map(["02/03", "02/02", "02/01"]);
    extra.drain(2..4);
    refused(
        &storages(&extra),
        &format!(
            "Volume 2 has source {:?}, which is not in the source map: give its guest address \
             as HOST_PATH=ADDRESS",
            disk("b0b0b0")
        ),
    );
    refused(
        &storages(&map(["02/03", "02/02", "scsi:1"])),
        &format!(
            "Invalid guest address in source map entry \"{}=scsi:1\": Invalid source \"1\" for \
             source_type scsi: expected <target>:<lun>",
            disk("a1a1a1")
        ),
    );
    let out = Command::new(BIN)
        .args([
            "storages",
            "--mount-type",
            "fuse.nydus-overlayfs",
            "--container-id",
            "../x",
        ])
        .args(["--mount-option", &volume_option("c0ffee", 100, 53_248)])
        .output()
        .unwrap();
    refused(
        &out,
        "Invalid container id \"../x\": must start with an ASCII letter or digit",
    );
    let out = Command::new(BIN)
        .args([
            "storages",
            "--mount-type",
            "overlay",
            "--container-id",
            "c1",
        ])
        .args(["--mount-option", "lowerdir=/a"])
        .output()
        .unwrap();
    refused(
        &out,
        "Unknown mount type \"overlay\": expected fuse.nydus-overlayfs",
    );
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec![
            "storages",
            "--mount-type",
            "fuse.nydus-overlayfs",
            "--container-id",
            "c1",
        ],
        vec!["storages", "--mount-option", "ro", "--container-id", "c1"],
        vec![
            "storages",
            "--mount-type",
            "fuse.nydus-overlayfs",
            "--mount-option",
            "ro",
        ],
        vec![
            "storages",
            "--mount-type",
            "fuse.nydus-overlayfs",
            "--mount-option",
            "ro",
            "--container-id",
            "c1",
            "--convention",
            "kata-main",
        ],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let out = Command::new(BIN)
        .args(["storages", "--mount-type", "x", "--mount-option", "ro"])
        .args(["--container-id", "c1", "--convention", "kata-main"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("Unknown convention \"kata-main\": expected ccv0 or virtual-volume"),
        "{err}"
    );
}
