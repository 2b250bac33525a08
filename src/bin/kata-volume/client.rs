//! `kata-volume add|remove|list|check|version`: the host-side client of the guest daemon.
//! Each sends one request and prints the answer; a refusal is one `error:` line naming the
//! daemon's reason and its status code, and exit 1.

use std::time::Duration;

use kata_volume::service::proto::kata_volume as pb;
use kata_volume::service::{Address, ClientOptions, VolumeClient};
use serde_json::{Value, json};

use crate::CliError;
use crate::output::{arg_or_stdin, print_json};

/// How to reach the daemon, and the output format.
#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The daemon's address: vsock://CID:PORT, unix:///path or tcp://IP:PORT.
    #[arg(long, value_name = "ADDR")]
    addr: Address,
    /// Keep retrying a daemon that cannot be reached for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    retry_for: u64,
    /// Longest one request may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Ask the daemon to mount a volume (idempotent: the same volume again is success), or, with
/// --storages, a list of Storages in order, all or nothing.
///
/// --storages FILE (`-`: standard input) is a JSON array of Storage objects with the agent's
/// field names (driver, driver_options, source, fstype, options, mount_point; each optional),
/// as `kata-volume storages` prints it. They are added in order; when one fails, the ones
/// this command added are removed again (last first; those that were already there stay)
/// and it exits 1 with the failing Storage's error.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume add --addr tcp://127.0.0.1:7000 --source /dev/vdb \\\n    \
    --mount-point /run/kata-containers/c1/rootfs --option \"$(cat option.txt)\"\n  \
    kata-volume storages --container-id c1 --mount-type fuse.nydus-overlayfs ... \\\n    \
    | kata-volume add --addr vsock://3:1025 --storages - --json")]
pub struct AddArgs {
    #[command(flatten)]
    conn: Conn,
    /// A JSON array of Storages to add in order, all or nothing (`-`: standard input).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "source", "mount_point", "options", "driver_options", "driver", "fstype"
    ])]
    storages: Option<String>,
    /// The block device in the guest (default: the volume's own `source`).
    #[arg(long, value_name = "DEV", allow_hyphen_values = true)]
    source: Option<String>,
    /// Where to mount it in the guest.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "storages",
        allow_hyphen_values = true
    )]
    mount_point: Option<String>,
    /// A mount option; the volume option is `io.katacontainers.volume=…` (`-`: read it from
    /// standard input). Repeatable.
    #[arg(
        long = "option",
        value_name = "OPTION",
        required_unless_present = "storages",
        allow_hyphen_values = true
    )]
    options: Vec<String>,
    /// A driver option (the volume option may be here instead). Repeatable.
    #[arg(
        long = "driver-option",
        value_name = "OPTION",
        allow_hyphen_values = true
    )]
    driver_options: Vec<String>,
    /// The storage driver name (informational).
    #[arg(long, value_name = "NAME")]
    driver: Option<String>,
    /// The filesystem type (informational; the volume's own `fs_type` rules).
    #[arg(long, value_name = "TYPE")]
    fstype: Option<String>,
}

/// Ask the daemon to unmount a volume (nothing there is success).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    kata-volume remove --addr tcp://127.0.0.1:7000 --mount-point /run/kata-containers/c1/rootfs")]
pub struct RemoveArgs {
    #[command(flatten)]
    conn: Conn,
    /// The mount point in the guest.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    mount_point: String,
}

/// List the volumes the daemon manages: mount point, volume type, source, mount points
/// sharing its dm device, the dm device and the root hash (`-`: none, no dm-verity).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume list --addr vsock://3:1025\n  \
    kata-volume list --addr unix:///run/kata-volume.sock --json")]
pub struct ListArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Show a volume's dm-verity status: V (verified so far), C (corruption seen), - (no
/// dm-verity). Exit 1 when corruption was seen or the full read failed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    kata-volume check --addr tcp://127.0.0.1:7000 --full --mount-point /run/kata-containers/c1/rootfs")]
pub struct CheckArgs {
    #[command(flatten)]
    conn: Conn,
    /// The mount point in the guest.
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    mount_point: String,
    /// Read the whole device first, so every block is verified.
    #[arg(long)]
    full: bool,
}

/// Show the daemon's version and API version (`kata-volume --version` is this binary's).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    kata-volume version --addr vsock://3:1025")]
pub struct VersionArgs {
    #[command(flatten)]
    conn: Conn,
}

/// Runs one request on a single-threaded runtime.
pub(crate) fn request<T>(
    conn: &Conn,
    f: impl AsyncFnOnce(&mut VolumeClient) -> Result<T, kata_volume::service::ClientError>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("Cannot start the async runtime: {e}")))?;
    let opts = ClientOptions {
        retry_for: Duration::from_secs(conn.retry_for),
        request_timeout: Duration::from_secs(conn.timeout),
    };
    let mut client = VolumeClient::new(conn.addr.clone(), opts);
    runtime.block_on(f(&mut client)).map_err(CliError::failed)
}

fn none_if_empty(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

pub(crate) fn volume_json(v: &pb::Volume) -> Value {
    json!({
        "mount_point": v.mount_point,
        "volume_type": v.volume_type,
        "source": v.source,
        "dm_name": none_if_empty(&v.dm_name),
        "root_hash": none_if_empty(&v.root_hash),
        "refcount": v.refcount,
        "already_present": v.already_present,
    })
}

/// Runs `add`.
pub fn run_add(args: AddArgs) -> Result<(), CliError> {
    if let Some(file) = &args.storages {
        return crate::add_storages::run(&args.conn, file);
    }
    if args.options.iter().filter(|o| *o == "-").count() > 1 {
        return Err(CliError::Usage(
            "Only one --option can be read from standard input".into(),
        ));
    }
    let options = args
        .options
        .iter()
        .map(|o| arg_or_stdin(o))
        .collect::<Result<Vec<_>, _>>()?;
    let storage = pb::Storage {
        driver: args.driver.unwrap_or_default(),
        driver_options: args.driver_options,
        source: args.source.unwrap_or_default(),
        fstype: args.fstype.unwrap_or_default(),
        options,
        mount_point: args.mount_point.unwrap_or_default(),
        ..Default::default()
    };
    let v = request(&args.conn, async |c| c.add_storage(&storage).await)?;
    if args.conn.json {
        print_json(&volume_json(&v));
        return Ok(());
    }
    print_added(&v);
    Ok(())
}

/// The text line for one added volume.
pub(crate) fn print_added(v: &pb::Volume) {
    let what = if v.already_present {
        "already mounted"
    } else {
        "mounted"
    };
    let dm = if v.dm_name.is_empty() {
        String::new()
    } else {
        format!(" (dm {}, refcount {})", v.dm_name, v.refcount)
    };
    outln!(
        "{what} {} {} at {}{dm}",
        v.volume_type,
        v.source,
        v.mount_point
    );
}

/// Runs `remove`.
pub fn run_remove(args: RemoveArgs) -> Result<(), CliError> {
    let mp = args.mount_point;
    let removed = request(&args.conn, async |c| c.remove_storage(&mp).await)?;
    if args.conn.json {
        print_json(&json!({ "mount_point": mp, "removed": removed }));
    } else if removed {
        outln!("removed {mp}");
    } else {
        outln!("nothing managed at {mp}");
    }
    Ok(())
}

/// Runs `list`.
pub fn run_list(args: ListArgs) -> Result<(), CliError> {
    let list = request(&args.conn, async |c| c.list_storages().await)?;
    if args.conn.json {
        let volumes: Vec<Value> = list.iter().map(volume_json).collect();
        print_json(&json!({ "volumes": volumes }));
        return Ok(());
    }
    if list.is_empty() {
        outln!("no volumes");
        return Ok(());
    }
    outln!("MOUNT POINT\tTYPE\tSOURCE\tMOUNTS\tDM DEVICE\tROOT HASH");
    for v in &list {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        outln!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            v.mount_point,
            v.volume_type,
            v.source,
            v.refcount,
            or_dash(&v.dm_name),
            or_dash(&v.root_hash)
        );
    }
    Ok(())
}

/// Runs `check`: exit 1 when the device reports corruption or the full read failed.
pub fn run_check(args: CheckArgs) -> Result<(), CliError> {
    let mp = args.mount_point;
    let c = request(&args.conn, async |cl| {
        cl.check_storage(&mp, args.full).await
    })?;
    if args.conn.json {
        print_json(&json!({
            "mount_point": mp,
            "status": c.status,
            "full_read": args.full,
            "bytes_read": if args.full && c.read_error.is_empty() { json!(c.bytes_read) } else { Value::Null },
            "read_error": none_if_empty(&c.read_error),
        }));
    } else {
        outln!("status {}", c.status);
        if args.full && c.read_error.is_empty() {
            outln!("read   {} bytes, all verified", c.bytes_read);
        }
    }
    if !c.read_error.is_empty() {
        return Err(CliError::Failed(format!(
            "Reading {mp} failed: {}",
            c.read_error
        )));
    }
    if c.status == "C" {
        return Err(CliError::Failed(format!(
            "dm-verity saw corruption under {mp}"
        )));
    }
    Ok(())
}

/// Runs `version`.
pub fn run_version(args: VersionArgs) -> Result<(), CliError> {
    let v = request(&args.conn, async |c| c.version().await)?;
    let client = env!("CARGO_PKG_VERSION");
    if args.conn.json {
        print_json(&json!({
            "client": client,
            "daemon": v.version,
            "api_version": v.api_version,
        }));
    } else {
        outln!("client {client}");
        outln!("daemon {} (api {})", v.version, v.api_version);
    }
    Ok(())
}
