//! The host side: a client that connects lazily, and retries while the daemon cannot be
//! reached. Retrying matters because a QEMU user-mode (slirp) port forward accepts the
//! connection before anything listens in the guest, then closes it: a connection error or a
//! connection closed before the answer is retried until `retry_for` has passed. Every
//! request is idempotent in the manager (adding twice answers `already_present`, removing
//! twice answers `removed: false`), so a retried request cannot do something twice.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use ttrpc::r#async::Client;
use ttrpc::r#async::transport::Socket;
use ttrpc::context::{self, Context};

use super::Address;
use super::proto::kata_volume as pb;
use super::proto::kata_volume_ttrpc::KataVolumeClient;
use super::status::code_name;

/// Pause between two connection attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// How patient the client is.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// How long connection errors are retried.
    pub retry_for: Duration,
    /// How long one request may take once sent (the daemon's own time included).
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error status.
    #[error("{message} ({})", code_name(*.code))]
    Status {
        /// The status code.
        code: ttrpc::Code,
        /// The daemon's message.
        message: String,
    },
    /// The daemon could not be reached in time.
    #[error("Cannot reach the daemon at {addr} (tried for {:.1} s): {why}", .waited.as_secs_f64())]
    Unreachable {
        /// The address.
        addr: String,
        /// How long it was tried.
        waited: Duration,
        /// The last connection error.
        why: String,
    },
    /// The request failed in transport (after the retries) or timed out.
    #[error("Request to {addr} failed: {why}")]
    Transport {
        /// The address.
        addr: String,
        /// What ttrpc reported.
        why: String,
    },
}

impl ClientError {
    /// The status code, when the daemon answered with one.
    pub fn code(&self) -> Option<ttrpc::Code> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A client of the `KataVolume` service.
pub struct VolumeClient {
    addr: Address,
    opts: ClientOptions,
    inner: Option<KataVolumeClient>,
}

/// Errors worth a new connection and another try: all but the daemon's own answer and the
/// request's deadline. A connection that closes under a request fails it at once, as
/// `Socket`, `RemoteClosed` or `Others("… channel closed")` depending on the moment.
fn is_transport(e: &ttrpc::Error) -> bool {
    match e {
        ttrpc::Error::RpcStatus(_) => false,
        ttrpc::Error::Others(m) => !m.contains("deadline"),
        _ => true,
    }
}

async fn connect(addr: &Address, limit: Duration) -> Result<KataVolumeClient, String> {
    let socket = match addr {
        // tokio's connect, so the time limit holds even for an address that never answers.
        Address::Tcp(a) => tokio::time::timeout(limit, tokio::net::TcpStream::connect(a))
            .await
            .map_err(|_| "connection timed out".to_owned())?
            .map(Socket::from)
            .map_err(|e| e.to_string())?,
        _ => tokio::time::timeout(limit, Socket::connect(addr.to_string()))
            .await
            .map_err(|_| "connection timed out".to_owned())?
            .map_err(|e| e.to_string())?,
    };
    Ok(KataVolumeClient::new(Client::new(socket)))
}

impl VolumeClient {
    /// A client for the daemon at `addr`; connects on the first request.
    pub fn new(addr: Address, opts: ClientOptions) -> Self {
        Self {
            addr,
            opts,
            inner: None,
        }
    }

    async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, ClientError>
    where
        F: Fn(KataVolumeClient, Context) -> Fut,
        Fut: Future<Output = ttrpc::Result<T>>,
    {
        let start = Instant::now();
        let deadline = start + self.opts.retry_for;
        loop {
            let client = match &self.inner {
                Some(c) => c.clone(),
                None => {
                    let limit = deadline
                        .saturating_duration_since(Instant::now())
                        .max(RETRY_PAUSE);
                    match connect(&self.addr, limit).await {
                        Ok(c) => {
                            self.inner = Some(c.clone());
                            c
                        }
                        Err(why) if Instant::now() + RETRY_PAUSE >= deadline => {
                            return Err(ClientError::Unreachable {
                                addr: self.addr.to_string(),
                                waited: start.elapsed(),
                                why,
                            });
                        }
                        Err(_) => {
                            tokio::time::sleep(RETRY_PAUSE).await;
                            continue;
                        }
                    }
                }
            };
            match f(client, context::with_duration(self.opts.request_timeout)).await {
                Ok(v) => return Ok(v),
                Err(ttrpc::Error::RpcStatus(s)) => {
                    return Err(ClientError::Status {
                        code: s.code(),
                        message: s.message().to_owned(),
                    });
                }
                Err(e) if is_transport(&e) && Instant::now() + RETRY_PAUSE < deadline => {
                    self.inner = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => {
                    self.inner = None;
                    return Err(ClientError::Transport {
                        addr: self.addr.to_string(),
                        why: e.to_string(),
                    });
                }
            }
        }
    }

    /// Mounts the volume `storage` describes.
    pub async fn add_storage(&mut self, storage: &pb::Storage) -> Result<pb::Volume, ClientError> {
        self.call(|c, ctx| async move { c.add_storage(ctx, storage).await })
            .await
    }

    /// Unmounts what the daemon mounted at `mount_point`; `false` when nothing was there.
    pub async fn remove_storage(&mut self, mount_point: &str) -> Result<bool, ClientError> {
        let req = pb::RemoveRequest {
            mount_point: mount_point.to_owned(),
            ..Default::default()
        };
        let req = &req;
        self.call(|c, ctx| async move { c.remove_storage(ctx, req).await })
            .await
            .map(|r| r.removed)
    }

    /// Every volume the daemon manages.
    pub async fn list_storages(&mut self) -> Result<Vec<pb::Volume>, ClientError> {
        let req = &pb::ListRequest::default();
        self.call(|c, ctx| async move { c.list_storages(ctx, req).await })
            .await
            .map(|r| r.volumes)
    }

    /// The verity status of the volume at `mount_point`, after a full read if asked.
    pub async fn check_storage(
        &mut self,
        mount_point: &str,
        full_read: bool,
    ) -> Result<pb::CheckResponse, ClientError> {
        let req = pb::CheckRequest {
            mount_point: mount_point.to_owned(),
            full_read,
            ..Default::default()
        };
        let req = &req;
        self.call(|c, ctx| async move { c.check_storage(ctx, req).await })
            .await
    }

    /// The daemon's version.
    pub async fn version(&mut self) -> Result<pb::VersionResponse, ClientError> {
        let req = &pb::VersionRequest::default();
        self.call(|c, ctx| async move { c.version(ctx, req).await })
            .await
    }
}
