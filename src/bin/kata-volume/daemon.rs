//! `kata-volume serve`: the guest daemon. Reconciles the saved state with the kernel, serves
//! the `KataVolume` ttrpc API until SIGTERM or SIGINT, then drains: requests in flight finish
//! and answer, new ones are refused. Mounts stay for the next daemon (which re-adopts them)
//! unless `--unmount-on-exit` is given.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use kata_volume::manager::{FileStore, ManagerOptions, Reconciled, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::service::{
    self, Address, DEFAULT_LISTEN, LogFormat, ServeOptions, VsockPeer, VsockPeers,
};
use kata_volume::system::LinuxSystem;
use nix::fcntl::{Flock, FlockArg};
use slog::{Logger, error, info, warn};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::CliError;
use crate::output::error_chain;

/// Run the guest daemon (root): serve AddStorage/RemoveStorage/ListStorages/CheckStorage.
///
/// Listens on vsock port 1025 by default (the Kata agent has 1024), for the host (CID 2)
/// alone unless --allow-vsock-cid widens it. State is kept
/// in DIR/volumes.json and reconciled with the kernel at start, so a daemon killed at any
/// moment and restarted leaks nothing. On SIGTERM/SIGINT, requests in flight finish; the
/// mounts stay for the next daemon unless --unmount-on-exit is given.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kata-volume serve\n  \
    kata-volume serve --listen tcp://127.0.0.1:7000 --state-dir /run/kata-volume")]
pub struct ServeArgs {
    /// Where to listen: vsock://CID:PORT (-1: any local CID), unix:///path or tcp://IP:PORT.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: Address,
    /// The folder for the state file (created, mode 0700).
    #[arg(long, value_name = "DIR", default_value = "/run/kata-volume")]
    state_dir: PathBuf,
    /// At exit, unmount every volume and remove its devices (default: keep them for the
    /// next daemon, which re-adopts them).
    #[arg(long)]
    unmount_on_exit: bool,
    /// Least severe log level written.
    #[arg(long, value_name = "LEVEL", default_value = "info",
          value_parser = ["critical", "error", "warning", "info", "debug", "trace"])]
    log_level: String,
    /// Log format: json, text, or auto (json unless standard error is a terminal).
    #[arg(long, value_name = "FORMAT", default_value = "auto",
          value_parser = ["auto", "json", "text"])]
    log_format: String,
    /// Requests run at once; more wait for a slot, at most --max-queue-wait seconds (and
    /// their client's deadline), then get RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = service::DEFAULT_MAX_IN_FLIGHT,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096))]
    max_in_flight: usize,
    /// Longest wait for a slot, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = service::DEFAULT_MAX_QUEUE_WAIT.as_secs(),
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=86400))]
    max_queue_wait: u64,
    /// Connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, value_name = "N", default_value_t = service::DEFAULT_MAX_CONNECTIONS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=65536))]
    max_connections: usize,
    /// Close a connection that receives nothing for this many seconds while none of its
    /// requests is in progress.
    #[arg(long, value_name = "SECS", default_value_t = service::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=86400))]
    idle_timeout: u64,
    /// Close a connection whose frame has not arrived whole this many seconds after its first
    /// byte (a frame larger than the policy's max_request_bytes plus 64 KiB closes it at once),
    /// or whose client has not taken an answer this many seconds after it was ready to go.
    #[arg(long, value_name = "SECS", default_value_t = service::DEFAULT_FRAME_TIMEOUT.as_secs(),
          value_parser = RangedU64ValueParser::<u64>::new().range(1..=3600))]
    frame_timeout: u64,
    /// Also accept vsock connections from this CID, or from any peer with 'any'; repeatable.
    /// Only the host (CID 2) is accepted otherwise.
    #[arg(
        long = "allow-vsock-cid",
        value_name = "CID",
        allow_hyphen_values = true
    )]
    allow_vsock_cids: Vec<VsockPeer>,
    #[command(flatten)]
    policy: crate::policy_args::PolicyArgs,
}

impl ServeArgs {
    /// The daemon's limits on work and connections.
    fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            max_in_flight: self.max_in_flight,
            max_queue_wait: Duration::from_secs(self.max_queue_wait),
            max_connections: self.max_connections,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            frame_timeout: Duration::from_secs(self.frame_timeout),
            vsock_peers: VsockPeers::widened(&self.allow_vsock_cids),
        }
    }
}

/// Takes the state folder for this process: a second daemon on it would corrupt the state.
fn lock_state_dir(dir: &Path) -> Result<Flock<File>, CliError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::Failed(format!("Cannot create {}: {e}", dir.display())))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CliError::Failed(format!("Cannot open {}: {e}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            CliError::Failed(format!(
                "Another daemon uses the state folder {}",
                dir.display()
            ))
        } else {
            CliError::Failed(format!("Cannot lock {}: {e}", path.display()))
        }
    })
}

async fn signalled(mut term: Signal, mut int: Signal, log: Logger) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!(log, "signal received"; "signal" => name);
}

/// Runs `serve`.
pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let log = logger(&args)?;
    let policy = args.policy.policy()?;
    let _lock = lock_state_dir(&args.state_dir)?;
    // One async worker is plenty: every manager call runs on the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("Cannot start the async runtime: {e}")))?;

    // Bind first: a second daemon on the same address fails before reconciling anything.
    let bound = runtime
        .block_on(async { service::bind(&args.listen, log.clone()) })
        .map_err(|e| CliError::Failed(error_chain(&e)))?;
    let store = Arc::new(FileStore::new(&args.state_dir));
    let opts = ManagerOptions {
        policy: policy.clone(),
    };
    let (manager, report) = match VolumeManager::new(Arc::new(LinuxSystem::new()), store, opts) {
        Ok(started) => started,
        Err(e) => {
            bound.abandon();
            return Err(CliError::Failed(error_chain(&e)));
        }
    };
    log_start(&log, &policy, &args.state_dir, &report);
    let manager = Arc::new(manager);
    let opts = args.serve_options();
    runtime.block_on(serve_until_signalled(
        bound,
        manager.clone(),
        &opts,
        log.clone(),
    ))?;
    drop(runtime);
    if args.unmount_on_exit {
        unmount_all(&manager, &log)
    } else {
        info!(log, "exiting; volumes stay mounted for the next daemon";
            "volumes" => manager.list().len());
        Ok(())
    }
}

fn logger(args: &ServeArgs) -> Result<Logger, CliError> {
    let level = args
        .log_level
        .parse::<slog::Level>()
        .map_err(|()| CliError::Usage(format!("Unknown log level {:?}", args.log_level)))?;
    let format = match args.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ => LogFormat::Auto,
    };
    Ok(service::logger(level, format))
}

/// The start-up log lines: the policy in force, the trust material it loaded (one line per
/// file, with its SHA-256, to match with what was attested), what reconciling found, a
/// missing dm.
fn log_start(log: &Logger, policy: &Policy, state_dir: &Path, report: &Reconciled) {
    let trust = &policy.trust;
    info!(log, "policy"; "mount_root" => %policy.mount_root.display(),
        "allowed_sources" => policy.allowed_sources.join(" "), "allow_files" => policy.allow_files,
        "allow_unverified" => policy.allow_unverified,
        "verified_layers" => trust.allowlist().len(),
        "require_verified_layers" => trust.allowlist().is_required(),
        "trusted_signers" => trust.signers().len(),
        "require_signatures" => policy.require_signatures,
        "kernel_signatures" => policy.kernel_signatures,
        "device_timeout_ms" => policy.device_timeout.as_millis(),
        "verity_options" => policy.verity_options().iter().map(ToString::to_string).collect::<Vec<_>>().join(" "));
    if let Some(d) = trust.initdata_digest() {
        info!(log, "initdata loaded"; "source" => &d.source,
            "algorithm" => d.algorithm.name(), "digest" => &d.digest);
    }
    for m in trust.material() {
        info!(log, "trust file loaded"; "source" => &m.source, "sha256" => m.hex());
    }
    if policy.require_signatures && trust.signers().is_empty() && !policy.kernel_signatures {
        warn!(
            log,
            "require_signatures without trusted signers or kernel_signatures: \
            every verified volume will be refused"
        );
    }
    if trust.allowlist().is_required() && trust.allowlist().is_empty() {
        warn!(
            log,
            "require_verified_layers with an empty allowlist: every volume will be refused"
        );
    }
    info!(log, "state reconciled"; "state_dir" => %state_dir.display(),
        "adopted" => report.adopted, "dropped" => report.dropped,
        "orphans_removed" => report.orphans_removed);
    for p in &report.problems {
        warn!(log, "reconcile problem"; "problem" => p);
    }
    if !Path::new("/sys/class/misc/device-mapper").exists() {
        error!(
            log,
            "device-mapper is not in the kernel (is dm_mod loaded?): \
            every dm-verity volume will be refused"
        );
    }
}

/// Serves until SIGTERM or SIGINT, then drains (see `service::Listening::run`).
async fn serve_until_signalled(
    bound: service::Bound,
    manager: Arc<VolumeManager>,
    opts: &ServeOptions,
    log: Logger,
) -> Result<(), CliError> {
    let sig =
        |kind| signal(kind).map_err(|e| CliError::Failed(format!("Cannot catch signals: {e}")));
    let (term, int) = match (sig(SignalKind::terminate()), sig(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            bound.abandon();
            return Err(e);
        }
    };
    let shutdown = signalled(term, int, log);
    let listening = bound
        .start_with(manager, opts)
        .await
        .map_err(|e| CliError::Failed(error_chain(&e)))?;
    listening.run(shutdown).await;
    Ok(())
}

/// `--unmount-on-exit`: every volume removed, each failure logged and counted.
fn unmount_all(manager: &VolumeManager, log: &Logger) -> Result<(), CliError> {
    let mut failed = 0usize;
    for v in manager.list() {
        let mp = v.mount_point.to_string_lossy().into_owned();
        match manager.remove_storage(&mp) {
            Ok(_) => info!(log, "unmounted at exit"; "mount_point" => &mp),
            Err(e) => {
                failed += 1;
                warn!(log, "cannot unmount at exit"; "mount_point" => &mp,
                    "error" => error_chain(&e));
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} volume(s) could not be unmounted at exit"
        )));
    }
    info!(log, "exiting; every volume unmounted");
    Ok(())
}
