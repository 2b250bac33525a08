//! `kata-volume resolve` as a user runs it, against a fake sysfs tree (`--sysfs-root`): the
//! node on stdout, `--json`, the timeout message, refusals with exit 1, bad flags with exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_sysfs;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fake_sysfs::{FakeSys, dev};
use kata_volume::address::{DEFAULT_TIMEOUT, parse_timeout};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kata-volume");
const F05: &str = "/devices/pci0000:00/0000:00:05.0";

fn run(sys: &FakeSys, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("resolve")
        .arg("--sysfs-root")
        .arg(sys.root())
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn prints_the_node_of_a_pci_disk() {
    let sys = FakeSys::new();
    // a name this machine has no node for
    sys.virtio_disk(F05, "virtio2", "vdqz", dev(254, 400));
    let out = run(&sys, &["--source-type", "virtio_pci", "05"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/dev/vdqz\n");
    assert_eq!(text(&out.stderr), "");

    let out = run(&sys, &["--source-type", "virtio_pci", "--json", "05.0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], "05");
    assert_eq!(v["source_type"], "virtio_pci");
    assert_eq!(v["node"], "/dev/vdqz");
    assert_eq!(v["name"], "vdqz");
    assert_eq!(
        (v["major"].as_u64(), v["minor"].as_u64()),
        (Some(254), Some(400))
    );
    assert_eq!(
        v["sysfs_path"],
        sys.path(&format!("{F05}/virtio2/block/vdqz"))
            .display()
            .to_string()
    );
    assert_eq!(v["node_present"], false);
    assert_eq!(v["found_by"], "sysfs");
    assert!(v["waited_ms"].as_u64().is_some());
}

#[test]
fn prints_the_node_of_a_scsi_disk() {
    let sys = FakeSys::new();
    let host = sys.scsi_host("/devices/pci0000:00/0000:00:06.0", 0);
    sys.scsi_device(&host, "0:0:0:1", Some(("sdqz", dev(8, 400))));
    let out = run(&sys, &["--source-type", "scsi", "0:1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/dev/sdqz\n");
}

#[test]
fn a_path_is_printed_as_it_is() {
    let sys = FakeSys::new();
    let out = run(&sys, &["--json", "/dev/vdqz"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["node"].as_str(), v["source_type"].is_null()),
        (Some("/dev/vdqz"), true)
    );
    assert!(v.get("major").is_none());
}

#[test]
fn nothing_in_time_is_one_error_line_and_exit_1() {
    let sys = FakeSys::new();
    let t0 = Instant::now();
    let out = run(
        &sys,
        &["--source-type", "virtio_pci", "--timeout", "300ms", "02/00"],
    );
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: Disk 02/00 (virtio_pci) did not appear within 300 ms (last seen: no PCI device \
         0000:00:02.0)\n"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(sys.read("/bus/pci/rescan"), "1");
}

#[test]
fn refusals_exit_1_and_bad_flags_exit_2() {
    let sys = FakeSys::new();
    for (args, msg) in [
        (
            vec!["--source-type", "virtio_blk", "02/00"],
            "error: Unknown source_type \"virtio_blk\" (source \"02/00\"): expected virtio_pci, \
             scsi, virtio_mmio, pmem or virtio_ccw\n",
        ),
        (
            vec!["--source-type", "virtio_pci", "2/0"],
            "error: Invalid source \"2/0\" for source_type virtio_pci: element \"2\": the slot \
             must be two hex digits\n",
        ),
        (
            vec!["--source-type", "ccw", "0.0.0005"],
            "error: Disk 0.0.0005 (virtio_ccw) cannot be found: no CCW bus on this machine\n",
        ),
        (
            vec!["02/00"],
            "error: Invalid source \"02/00\" for source_type (none): is neither an absolute \
             path nor, without a source_type, any address\n",
        ),
    ] {
        let out = run(&sys, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), msg);
        assert_eq!(text(&out.stdout), "");
    }
    let out = run(&sys, &["--timeout", "soon", "/dev/vda"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Invalid timeout \"soon\""));
    let out = run(&sys, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_help_shows_the_default_timeout() {
    let out = Command::new(BIN)
        .args(["resolve", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("[default: 10s]"));
    assert_eq!(parse_timeout("10s"), Ok(DEFAULT_TIMEOUT));
    assert!(
        !text(&out.stdout).contains("sysfs-root"),
        "a hidden test knob"
    );
}
