//! `kata-volume inspect`: decode, validate and plan a volume option offline, no root needed.

use kata_volume::plan::{self, VerityPlan};
use kata_volume::policy::{self, DEFAULT_FS_OPTIONS};
use kata_volume::resolve;
use kata_volume::system::{LinuxSystem, MountSpec};
use kata_volume::verity::{VerityParams, parse_tarfs};
use kata_volume::volume::{Volume, verity_info};
use serde_json::{Value, json};

use crate::CliError;
use crate::output::{arg_or_stdin, print_json};

/// Decode and check a Kata virtual volume, and show the dm-verity table it would load.
///
/// OPTION is the mount option `io.katacontainers.volume=<base64>`, the bare base64, or the
/// volume's JSON; `-` reads it from standard input. Exit 0 when the volume is valid, 1 with an
/// `error:` line naming the field and the value when it is not, 2 for bad usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume inspect 'io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6...'\n  \
    kata-volume inspect --json --device /dev/vdb - < option.txt\n  \
    kata-volume inspect --tarfs '16384,8388608,sha256:<64 hex digits>' --device /dev/vdb")]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Block device to plan the table on (default: the volume's `source`).
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    device: Option<String>,
    /// Inspect a tarfs block-info string `<blocknum>,<offset>,sha256:<hex>` instead of a volume.
    #[arg(
        long,
        value_name = "INFO",
        conflicts_with = "option",
        allow_hyphen_values = true
    )]
    tarfs: Option<String>,
    /// The volume option (or `-` for standard input).
    #[arg(
        value_name = "OPTION",
        required_unless_present = "tarfs",
        allow_hyphen_values = true
    )]
    option: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    match (&args.tarfs, &args.option) {
        (Some(info), _) => {
            let params = parse_tarfs(&arg_or_stdin(info)?).map_err(CliError::failed)?;
            let verity = match &args.device {
                Some(dev) => Some(plan_on(&params, dev)?),
                None => None,
            };
            let report = Report {
                volume: None,
                params: Some(&params),
                verity: verity.as_ref(),
                mount: None,
            };
            report.print(args.json);
            Ok(())
        }
        (None, Some(option)) => {
            let volume = Volume::parse(&arg_or_stdin(option)?).map_err(CliError::failed)?;
            let device = args.device.as_deref().or(volume.source());
            let verity = match (volume.verity(), device) {
                (Some(p), Some(dev)) => Some(plan_on(p, dev)?),
                _ => None,
            };
            let mount = mount_of(&volume)?;
            let report = Report {
                volume: Some(&volume),
                params: volume.verity(),
                verity: verity.as_ref(),
                mount,
            };
            report.print(args.json);
            Ok(())
        }
        (None, None) => Err(CliError::Usage("OPTION or --tarfs INFO is required".into())),
    }
}

/// The plan on `device`. When the device exists here (inspect run in the guest), its
/// identity (`block:<major>:<minor>`) names the dm device exactly as `mount`/`add` will;
/// elsewhere the path stands in for it.
fn plan_on(params: &VerityParams, device: &str) -> Result<(VerityPlan, String), CliError> {
    let plan = match resolve::source(&LinuxSystem::new(), device, true) {
        // The device is here: plan on it for real (its size is checked too).
        Ok(source) => plan::verity(params, &source, Vec::new()).map_err(CliError::failed)?,
        Err(_) => VerityPlan::new(params, device, Vec::new()),
    };
    let table = plan.table(device).map_err(CliError::failed)?;
    Ok((plan, table.to_string()))
}

/// How the volume would be mounted under the default policy's filesystem options.
fn mount_of(volume: &Volume) -> Result<Option<MountSpec>, CliError> {
    match (volume, volume.fs_type()) {
        (Volume::RawBlock(_) | Volume::DirectBlock(_), Some(fs_type)) => {
            policy::mount_spec(fs_type, volume.options(), DEFAULT_FS_OPTIONS)
                .map(Some)
                .map_err(CliError::failed)
        }
        _ => Ok(None),
    }
}

struct Report<'a> {
    volume: Option<&'a Volume>,
    params: Option<&'a VerityParams>,
    verity: Option<&'a (VerityPlan, String)>,
    mount: Option<MountSpec>,
}

impl Report<'_> {
    fn print(&self, as_json: bool) {
        if as_json {
            print_json(&self.to_json());
        } else {
            out!("{}", self.to_text());
        }
    }

    fn to_json(&self) -> Value {
        let tree = self.params.map(|p| {
            let t = p.tree();
            json!({
                "data_size": p.data_size().0,
                "hash_type": p.version().number(),
                "salt": p.salt().to_string(),
                "superblock": p.has_superblock(),
                "tree_offset": p.tree_offset().0,
                "hash_start_block": p.hash_start_block(),
                "levels": t.levels(),
                "hash_blocks": t.total_blocks(),
                "hash_tree_size": t.size().0,
                "required_device_size": p.required_device_size().0,
            })
        });
        json!({
            "valid": true,
            "volume_type": self.volume.map(|v| v.volume_type().as_str()),
            "source": self.volume.and_then(Volume::source),
            "dm_verity": self.params.map(verity_info),
            "hash_tree": tree,
            "dm_name": self.verity.map(|(v, _)| v.name.to_string()),
            "verity_table": self.verity.map(|(_, table)| table),
            "mount": self.mount.as_ref().map(|m| json!({
                "fs_type": m.fs_type,
                "flags": m.flags.to_string(),
                "data": m.data,
            })),
        })
    }

    fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
        if let Some(v) = self.volume {
            line("volume_type", v.volume_type().to_string());
            line("source", v.source().unwrap_or("-").to_owned());
        }
        match self.params {
            Some(p) => {
                let t = p.tree();
                line(
                    "dm_verity",
                    format!("{} root {}", p.algorithm(), p.root_hash()),
                );
                line(
                    "  data",
                    format!(
                        "{} blocks of {} bytes = {} bytes",
                        p.data_blocks(),
                        p.data_block_size(),
                        p.data_size()
                    ),
                );
                line(
                    "  format",
                    format!("hash_type {}, salt {}", p.version(), p.salt()),
                );
                line(
                    "  superblock",
                    if p.has_superblock() {
                        format!("at byte {}, padded to one hash block", p.hash_offset())
                    } else {
                        "none".into()
                    },
                );
                line(
                    "  hash tree",
                    format!(
                        "at byte {} (hash block {}), {} blocks of {} bytes, {} level(s)",
                        p.tree_offset(),
                        p.hash_start_block(),
                        t.total_blocks(),
                        p.hash_block_size(),
                        t.levels()
                    ),
                );
                line(
                    "  device size",
                    format!("at least {} bytes", p.required_device_size()),
                );
            }
            None => line("dm_verity", "none (not verified)".into()),
        }
        if let Some((v, table)) = self.verity {
            line("dm name", v.name.to_string());
            line("table", table.clone());
        } else if self.params.is_some() {
            line("table", "(give --device to see the table)".into());
        }
        if let Some(m) = &self.mount {
            let data = if m.data.is_empty() {
                String::new()
            } else {
                format!(",{}", m.data)
            };
            line("mount", format!("{} {}{data}", m.fs_type, m.flags));
        }
        out
    }
}
