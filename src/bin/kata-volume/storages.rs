//! `kata-volume storages`: the Storage messages a Kata runtime sends for a nydus-snapshotter
//! mount, as a JSON array (the input of `add --storages`). The translation is the library's
//! `host::storages`.

use kata_volume::host::{self, ContainerId, ContainerdMount, Convention, SourceMap};

use crate::CliError;
use crate::output::error_chain;

/// Print the Storage messages a Kata runtime sends for a nydus-snapshotter mount.
///
/// Give the containerd mount as nydus-snapshotter returns it (type fuse.nydus-overlayfs; its
/// options: lowerdir=, upperdir=, workdir= and one io.katacontainers.volume= per image or
/// layer, top layer first), the container id, and where the runtime hot-plugged each
/// volume's image (--source-map HOST_PATH=ADDRESS, one per image). Prints a JSON array: one
/// Storage per volume, top first, then the overlay that makes the rootfs at
/// /run/kata-containers/ID/rootfs. Feed it to `kata-volume add --storages -`.
///
/// ADDRESS is TYPE:ADDR with TYPE a Storage source_type (virtio_pci:02/01, scsi:2:1,
/// virtio_mmio:/dev/vdc, pmem:/dev/pmem0, virtio_ccw:0.0.0005), an absolute guest path used
/// as is (/dev/vdb), or a bare PCI path (02/01, meaning virtio_pci). Exit 0 with the array,
/// 1 when the mount, the map or the id is refused (one error: line), 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume storages --container-id c1 --mount-type fuse.nydus-overlayfs \\\n    \
    --mount-option lowerdir=/var/lib/nydus/snapshots/2/fs:/var/lib/nydus/snapshots/1/fs \\\n    \
    --mount-option \"io.katacontainers.volume=$TOP\" \\\n    \
    --mount-option \"io.katacontainers.volume=$BASE\" \\\n    \
    --source-map /var/lib/nydus/cache/top.layer.disk=virtio_pci:02/02 \\\n    \
    --source-map /var/lib/nydus/cache/base.layer.disk=virtio_pci:02/01 > storages.json\n  \
    kata-volume add --addr vsock://3:1025 --storages storages.json\n\n  \
    # this project's own shape, disks by path:\n  \
    kata-volume storages --convention virtual-volume --container-id c1 \\\n    \
    --mount-type fuse.nydus-overlayfs --mount-option \"io.katacontainers.volume=$BASE\" \\\n    \
    --source-map /var/lib/nydus/cache/base.layer.disk=/dev/vdb")]
pub struct Args {
    /// The mount's type: fuse.nydus-overlayfs.
    #[arg(long, value_name = "TYPE")]
    mount_type: String,
    /// One of the mount's options, in the mount's order. Repeatable.
    #[arg(long = "mount-option", value_name = "OPTION", required = true)]
    mount_options: Vec<String>,
    /// The container's id (the rootfs is /run/kata-containers/ID/rootfs).
    #[arg(long, value_name = "ID")]
    container_id: String,
    /// Where a volume's image was hot-plugged: HOST_PATH=ADDRESS. Repeatable.
    #[arg(long = "source-map", value_name = "HOST_PATH=ADDRESS")]
    source_map: Vec<String>,
    /// Which Storages to send for the volumes: ccv0 (the CCv0 runtime's `dmverity` driver, a
    /// block driver for an unverified volume) or virtual-volume (the volume option itself).
    #[arg(long, value_name = "NAME", default_value = "ccv0")]
    convention: Convention,
    /// Print JSON (the default and only output; accepted like the other subcommands' flag).
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    // JSON is the only output: `--json` changes nothing.
    let Args { json: _, .. } = args;
    let failed = |e: host::HostError| CliError::Failed(error_chain(&e));
    let container_id = ContainerId::parse(&args.container_id).map_err(failed)?;
    let map = SourceMap::parse(&args.source_map).map_err(failed)?;
    let mount = ContainerdMount {
        mount_type: args.mount_type,
        options: args.mount_options,
    };
    let storages = host::storages(&mount, &container_id, &map, args.convention).map_err(failed)?;
    // Straight from the structs, so each object keeps the agent's field order.
    let text = serde_json::to_string_pretty(&storages)
        .map_err(|e| CliError::Failed(format!("Cannot write the Storages as JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}
