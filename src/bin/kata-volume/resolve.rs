//! `kata-volume resolve`: which block device in this guest a Kata guest address names,
//! waiting for it to be hot-plugged. A debugging tool for a real guest; the lookup is the
//! library's `address::DiskFinder`, the same the request pipeline uses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kata_volume::address::{DiskFinder, GuestAddress, NetlinkUevents, Resolved, parse_timeout};
use serde_json::json;

use crate::CliError;
use crate::output::{error_chain, print_json};

/// Find the block device a Kata guest address names, waiting for it to appear.
///
/// SOURCE is a Storage's `source` and --source-type its `source_type`: a PCI path with
/// virtio_pci (`02/00`, `05`), `<target>:<lun>` with scsi, `/dev/vd<x>` with virtio_mmio,
/// `/dev/pmem<N>` with pmem, `0.<ssid>.<devno>` with virtio_ccw (only where there is a CCW
/// bus). Without --source-type, SOURCE is a path and printed as it is. Prints the device node
/// (`/dev/vdb`). Exit 0 when found, 1 when the address is refused or nothing appears in
/// time, 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume resolve --source-type virtio_pci 02/00\n  \
    kata-volume resolve --source-type scsi --timeout 30s --json 0:1")]
pub struct Args {
    /// The bus: virtio_pci, scsi, virtio_mmio, pmem or virtio_ccw (`ccw`).
    #[arg(long, value_name = "TYPE")]
    source_type: Option<String>,
    /// How long to wait for a hot-plugged disk: seconds (`10`, `10s`) or milliseconds
    /// (`500ms`); `0` looks once.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout,
          default_value = "10s")]
    timeout: Duration,
    /// Print one JSON object instead of the node (on success; failures are the `error:` line).
    #[arg(long)]
    json: bool,
    /// Read sysfs below this directory instead of /sys (tests, chroots).
    #[arg(long, value_name = "DIR", hide = true)]
    sysfs_root: Option<PathBuf>,
    /// The address.
    #[arg(value_name = "SOURCE")]
    source: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    let addr =
        GuestAddress::parse(args.source_type.as_deref(), &args.source).map_err(CliError::failed)?;
    let mut finder = DiskFinder::new();
    if let Some(root) = args.sysfs_root {
        finder = finder.with_sysfs_root(root);
    }
    let t0 = Instant::now();
    let resolved = finder
        .find(&addr, args.timeout, &NetlinkUevents)
        .map_err(|e| CliError::Failed(error_chain(&e)))?;
    let waited_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    if !args.json {
        outln!("{}", resolved.node().display());
        return Ok(());
    }
    let mut out = json!({
        "source": addr.to_string(),
        "source_type": addr.source_type().map(|t| t.as_str()),
        "node": resolved.node().display().to_string(),
        "waited_ms": waited_ms,
    });
    if let Resolved::Disk(d) = &resolved {
        out["name"] = json!(d.name);
        out["major"] = json!(d.devnum.major);
        out["minor"] = json!(d.devnum.minor);
        out["sysfs_path"] = json!(d.sysfs_path.display().to_string());
        out["node_present"] = json!(d.node_present);
        out["found_by"] = json!(d.found_by.as_str());
    }
    print_json(&out);
    Ok(())
}
