//! Running the service: bind, accept until told to stop, then drain — refuse new requests,
//! let those in flight finish and answer, close the connections. What happens to the mounts
//! afterwards is the caller's choice (the daemon keeps them by default: a restarted daemon
//! re-adopts them).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slog::{Logger, info, warn};
use ttrpc::r#async::Server;

use super::handler::Handler;
use super::inflight::{Inflight, Slots};
use super::proto::kata_volume_ttrpc::create_kata_volume;
use super::transport::{self, RawListener};
use super::{Address, ServeOptions};
use crate::manager::VolumeManager;

/// Time given to the last responses to reach their sockets before connections close.
const FLUSH_GRACE: Duration = Duration::from_millis(100);

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process is serving on the unix socket.
    #[error("Another daemon is listening on {0}")]
    InUse(PathBuf),
    /// A stale socket file could not be removed.
    #[error("Cannot remove the stale socket {path}")]
    Stale {
        /// The socket file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Binding or starting the listener failed.
    #[error("Cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: String,
        /// What the system or ttrpc reported.
        why: String,
    },
}

/// A bound listener, not yet serving: bind before the slow start-up work, so that a second
/// daemon on the same address fails before it touches anything.
pub struct Bound {
    listener: RawListener,
    addr: Address,
    log: Logger,
}

/// A bound, accepting service; [`Listening::run`] serves until shutdown.
pub struct Listening {
    server: Server,
    handler: Arc<Handler>,
    addr: Address,
    log: Logger,
}

/// Binds `addr` (inside a tokio runtime). A unix socket file left by a daemon that died is
/// replaced; one that a live daemon answers on is an error.
pub fn bind(addr: &Address, log: Logger) -> Result<Bound, ServeError> {
    if let Some(path) = addr.unix_path() {
        remove_stale_socket(path)?;
    }
    let listener = transport::bind(addr).map_err(|e| listen_error(addr, &e))?;
    Ok(Bound {
        listener,
        addr: addr.clone(),
        log,
    })
}

fn listen_error(addr: &Address, e: &dyn std::fmt::Display) -> ServeError {
    ServeError::Listen {
        addr: addr.to_string(),
        why: e.to_string(),
    }
}

impl Bound {
    /// Gives the address up without serving (start-up failed after the bind): a unix socket
    /// file is removed, so no stale socket is left behind.
    pub fn abandon(self) {
        remove_socket(&self.addr, &self.log);
    }

    /// Starts accepting requests for `manager` with the default [`ServeOptions`].
    pub async fn start(self, manager: Arc<VolumeManager>) -> Result<Listening, ServeError> {
        self.start_with(manager, &ServeOptions::default()).await
    }

    /// Starts accepting requests for `manager` within `opts` (or gives the address up, when
    /// it cannot). Frames larger than the manager's policy allows for a request (plus room for
    /// the protocol around it) close their connection.
    pub async fn start_with(
        self,
        manager: Arc<VolumeManager>,
        opts: &ServeOptions,
    ) -> Result<Listening, ServeError> {
        let Self {
            listener,
            addr,
            log,
        } = self;
        let max_frame = transport::max_frame_bytes(manager.policy().max_request_bytes);
        let listener = listener.into_listener(opts, max_frame, log.clone());
        let handler = Arc::new(Handler {
            manager,
            log: log.clone(),
            inflight: Arc::new(Inflight::default()),
            slots: Slots::new(opts.max_in_flight, opts.max_queue_wait),
        });
        let mut server = Server::new()
            .add_listener(listener)
            .register_service(create_kata_volume(handler.clone()));
        if let Err(e) = server.start().await {
            remove_socket(&addr, &log);
            return Err(listen_error(&addr, &e));
        }
        info!(log, "listening"; "addr" => %addr, "version" => env!("CARGO_PKG_VERSION"),
            "max_in_flight" => opts.max_in_flight,
            "max_queue_wait_s" => opts.max_queue_wait.as_secs_f64(),
            "max_connections" => opts.max_connections,
            "idle_timeout_s" => opts.idle_timeout.as_secs_f64(),
            "frame_timeout_s" => opts.frame_timeout.as_secs_f64(),
            "max_frame_bytes" => max_frame,
            "vsock_peers" => %opts.vsock_peers);
        Ok(Listening {
            server,
            handler,
            addr,
            log,
        })
    }
}

impl Listening {
    /// Serves until `shutdown` completes, then stops accepting, waits for the requests in
    /// flight (new ones on open connections get `UNAVAILABLE`), and closes the connections.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let n = self.handler.inflight.count();
        info!(self.log, "shutting down"; "in_flight" => n);
        self.server.stop_listen().await;
        self.handler.inflight.drain().await;
        tokio::time::sleep(FLUSH_GRACE).await;
        if let Err(e) = self.server.shutdown().await {
            warn!(self.log, "closing connections failed"; "error" => %e);
        }
        remove_socket(&self.addr, &self.log);
        info!(self.log, "stopped");
    }
}

/// Removes the socket file of a unix address (nothing for other addresses).
fn remove_socket(addr: &Address, log: &Logger) {
    if let Some(path) = addr.unix_path()
        && let Err(e) = std::fs::remove_file(path)
    {
        warn!(log, "cannot remove the socket"; "path" => %path.display(), "error" => %e);
    }
}

/// Binds `addr` and serves `manager` until `shutdown` completes (see [`Listening::run`]).
/// Must run inside a tokio runtime (multi-threaded, or with blocking threads available).
pub async fn serve(
    addr: &Address,
    manager: Arc<VolumeManager>,
    log: Logger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    bind(addr, log)?.start(manager).await?.run(shutdown).await;
    Ok(())
}

/// Removes a socket file nobody answers on.
fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        // Not ours to delete; the bind reports the clash.
        return Ok(());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServeError::InUse(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|source| ServeError::Stale {
                path: path.to_owned(),
                source,
            }),
        Err(_) => Ok(()),
    }
}
