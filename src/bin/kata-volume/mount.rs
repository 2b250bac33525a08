//! `kata-volume mount` and `kata-volume umount`: set up and tear down one volume directly,
//! without the daemon (root only; what the VM tests drive).

use std::path::{Component, Path, PathBuf};

use kata_volume::apply;
use kata_volume::manager::{self, Storage};
use kata_volume::system::kernel::View;
use kata_volume::system::{LinuxSystem, System};
use serde_json::json;

use crate::CliError;
use crate::output::{arg_or_stdin, error_chain, print_json};

/// Create the dm-verity device for a volume and mount it read-only (root only).
///
/// The request goes through the same rules as the daemon's (parse, policy, resolve, plan),
/// with a policy built from the flags below (defaults: the daemon's). Idempotent: mounting
/// the same volume at the same place again succeeds and changes nothing. On any failure
/// everything done so far is undone. Nothing is recorded: `umount` reads what to tear down
/// back from the kernel.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume mount \"$(cat option.txt)\" --device /dev/vdb /run/kata-containers/layer1\n  \
    kata-volume mount \"$(cat option.txt)\" --device /images/layer.img \\\n    \
    --allow-files --allowed-source '/images/*' /run/kata-containers/layer2")]
pub struct MountArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The block device (or image file) holding data and hash tree (default: the volume's `source`).
    #[arg(long, value_name = "DEV", allow_hyphen_values = true)]
    device: Option<String>,
    /// A Storage driver option, e.g. io.katacontainers.volume.root_hash_sig=BASE64 (the
    /// volume's root-hash signature); repeatable.
    #[arg(long = "driver-option", value_name = "OPTION")]
    driver_options: Vec<String>,
    #[command(flatten)]
    policy: crate::policy_args::PolicyArgs,
    /// The volume option (`io.katacontainers.volume=…`, base64 or JSON; `-` for standard input).
    #[arg(value_name = "OPTION", allow_hyphen_values = true)]
    option: String,
    /// Where to mount it (created when missing).
    #[arg(value_name = "MOUNT_POINT", allow_hyphen_values = true)]
    mount_point: PathBuf,
}

/// Unmount a volume and remove its dm-verity device and loop device. Already gone is success.
///
/// Only a mount on one of kata-volume's dm-verity devices is torn down; anything else mounted
/// there (a direct_block or unverified volume, or another tool's mount) is refused and left
/// alone, unless --any is given.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume umount /run/kata-containers/layer1\n  \
    kata-volume umount --any /run/kata-containers/direct1")]
pub struct UmountArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also tear down a mount that is not on one of kata-volume's dm-verity devices.
    #[arg(long)]
    any: bool,
    /// The mount point.
    #[arg(value_name = "MOUNT_POINT", allow_hyphen_values = true)]
    mount_point: PathBuf,
}

/// Runs `mount`.
pub fn run_mount(args: MountArgs) -> Result<(), CliError> {
    let policy = args.policy.policy()?;
    let mount_point = real_path(&args.mount_point)?;
    let storage = Storage {
        source: args.device.clone().unwrap_or_default(),
        options: vec![arg_or_stdin(&args.option)?],
        driver_options: args.driver_options.clone(),
        mount_point: mount_point.to_string_lossy().into_owned(),
        ..Storage::default()
    };
    let sys = LinuxSystem::new();
    let failed = |e: &dyn std::error::Error| CliError::Failed(error_chain(e));
    let plan = manager::prepare(&sys, &policy, &storage).map_err(|e| failed(&e))?;
    let a = apply::apply(&sys, &plan).map_err(|e| failed(&e))?;
    if args.json {
        print_json(&json!({
            "volume_type": a.volume_type.as_str(),
            "mount_point": a.mount_point,
            "device": a.mounted_device,
            "dm_name": a.dm_name.as_ref().map(ToString::to_string),
            "table": a.table.as_ref().map(ToString::to_string),
            "status": a.status,
            "loop_device": a.loop_device,
            "already_applied": a.already_applied,
            "shared_device": a.shared_device,
        }));
    } else {
        let what = if a.already_applied {
            "already mounted"
        } else {
            "mounted"
        };
        outln!(
            "{what} {} at {}",
            a.mounted_device.display(),
            a.mount_point.display()
        );
        if let Some(t) = &a.table {
            outln!("table  {t}");
        }
        if let Some(s) = &a.status {
            outln!("status {s}");
        }
    }
    Ok(())
}

/// Runs `umount`.
pub fn run_umount(args: UmountArgs) -> Result<(), CliError> {
    let sys = LinuxSystem::new();
    let mount_point = real_path(&args.mount_point)?;
    if !args.any {
        refuse_foreign(&sys, &mount_point)?;
    }
    let t = apply::teardown(&sys, &mount_point, &apply::Known::default(), &[])
        .map_err(|e| CliError::Failed(error_chain(&e)))?;
    if args.json {
        print_json(&json!({
            "mount_point": mount_point,
            "unmounted": t.unmounted,
            "removed_device": t.removed_device.as_ref().map(ToString::to_string),
            "deferred": t.deferred,
            "kept_shared_device": t.kept_shared_device,
            "detached_loop": t.detached_loop,
        }));
    } else if !t.unmounted {
        outln!("nothing mounted at {}", mount_point.display());
    } else {
        outln!("unmounted {}", mount_point.display());
        if let Some(d) = &t.removed_device {
            outln!(
                "removed {d}{}",
                if t.deferred {
                    " (deferred: still busy)"
                } else {
                    ""
                }
            );
        }
        if let Some(l) = &t.detached_loop {
            outln!("detached {}", l.display());
        }
    }
    Ok(())
}

/// Refuses a mount point whose top mount is not on one of our dm devices.
fn refuse_foreign(sys: &dyn System, mount_point: &Path) -> Result<(), CliError> {
    let view = View::read(sys).map_err(|e| CliError::Failed(error_chain(&e)))?;
    let Some(top) = view.top_mount(mount_point) else {
        return Ok(());
    };
    if view.our_device(top.dev).is_some() {
        return Ok(());
    }
    Err(CliError::Failed(format!(
        "{} holds {} ({}), not one of kata-volume's dm-verity devices: left alone (--any tears it down anyway)",
        mount_point.display(),
        top.source,
        top.fs_type
    )))
}

/// The mount point as the kernel will name it: absolute, with the symlinks of its existing
/// part resolved (this tool is run by the guest's administrator, who may name a mount point
/// the way `mount(8)` takes it; mounts are made only where the real path is the one asked
/// for). `..` is refused: it would be resolved before the symlink it follows.
fn real_path(path: &Path) -> Result<PathBuf, CliError> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(CliError::Usage(format!(
            "MOUNT_POINT {:?} must not contain '..'",
            path.display()
        )));
    }
    let absolute = std::path::absolute(path)
        .map_err(|e| CliError::Usage(format!("MOUNT_POINT {:?}: {e}", path.display())))?;
    // Resolve the longest part that exists; the rest is made as plain directories.
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(mut real) => {
                real.extend(missing.iter().rev());
                return Ok(real);
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    missing.push(name);
                    existing = parent;
                }
                _ => return Ok(absolute),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mount_points_are_made_absolute_and_real() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        assert_eq!(real_path(&root.join("link")).unwrap(), root.join("real"));
        assert_eq!(
            real_path(&root.join("link/a/b")).unwrap(),
            root.join("real/a/b")
        );
        assert_eq!(real_path(&root.join("real/")).unwrap(), root.join("real"));
        let cwd = std::fs::canonicalize(std::env::current_dir().unwrap()).unwrap();
        assert_eq!(
            real_path(Path::new("no-such-dir/mp")).unwrap(),
            cwd.join("no-such-dir/mp")
        );
        assert!(matches!(
            real_path(&root.join("real/../real")),
            Err(CliError::Usage(_))
        ));
    }
}
