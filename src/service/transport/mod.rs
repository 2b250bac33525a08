//! The daemon's own transport under ttrpc: it binds the address (unix, tcp or vsock), accepts
//! connections itself and hands ttrpc only admitted, guarded ones (`accept`: vsock peers and
//! the connection cap; `conn`: frame size, frame time, idle time, requests in progress per
//! connection; `frames`: the frame headers as they pass). ttrpc's own listeners would accept
//! any peer and any number of connections, wait forever for a frame, and allocate whatever a
//! frame header declares, up to 4 MiB. Moves bytes and closes connections; knows nothing of
//! volumes.

mod accept;
mod conn;
mod frames;

use std::io;
use std::sync::Arc;

use slog::Logger;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_vsock::{VsockAddr, VsockListener};
use ttrpc::r#async::transport::Listener;

use super::{Address, ServeOptions};
use accept::{Accepting, Admission};
use conn::ConnLimits;

/// Room in a frame beyond the request's own strings: protobuf field tags and lengths, the ttrpc
/// request around it (service and method names, deadline, metadata).
pub const FRAME_HEADROOM: usize = 64 * 1024;

/// A bound socket, not yet accepting.
pub(super) enum RawListener {
    /// `unix://`.
    Unix(UnixListener),
    /// `tcp://`.
    Tcp(TcpListener),
    /// `vsock://`.
    Vsock(VsockListener),
}

/// Binds `addr`. Must run inside a tokio runtime.
pub(super) fn bind(addr: &Address) -> io::Result<RawListener> {
    match addr {
        Address::Unix(path) => {
            use std::os::unix::net::{SocketAddr, UnixListener as StdUnixListener};
            let sa = match path.to_str().and_then(|p| p.strip_prefix('@')) {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name)?
                }
                None => SocketAddr::from_pathname(path)?,
            };
            let l = StdUnixListener::bind_addr(&sa)?;
            l.set_nonblocking(true)?;
            Ok(RawListener::Unix(UnixListener::from_std(l)?))
        }
        Address::Tcp(a) => {
            let l = std::net::TcpListener::bind(a)?;
            l.set_nonblocking(true)?;
            Ok(RawListener::Tcp(TcpListener::from_std(l)?))
        }
        Address::Vsock { cid, port } => Ok(RawListener::Vsock(VsockListener::bind(
            VsockAddr::new(*cid, *port),
        )?)),
    }
}

/// The largest frame payload the daemon reads, for a policy's largest request
/// (`max_request_bytes`): that plus [`FRAME_HEADROOM`], at most ttrpc's own limit (4 MiB). A
/// connection whose frame header declares more is closed before the frame is read.
pub fn max_frame_bytes(max_request_bytes: usize) -> u64 {
    let limit = max_request_bytes
        .saturating_add(FRAME_HEADROOM)
        .min(ttrpc::proto::MESSAGE_LENGTH_MAX);
    u64::try_from(limit).unwrap_or(u64::MAX)
}

impl RawListener {
    /// The ttrpc listener: connections admitted and guarded by `opts`, frames up to
    /// `max_frame` bytes.
    pub(super) fn into_listener(
        self,
        opts: &ServeOptions,
        max_frame: u64,
        log: Logger,
    ) -> Listener {
        let admission = Admission {
            places: Arc::new(Semaphore::new(opts.max_connections)),
            max_connections: opts.max_connections,
            vsock_peers: opts.vsock_peers.clone(),
            limits: ConnLimits {
                max_frame,
                idle: opts.idle_timeout,
                frame: opts.frame_timeout,
            },
            log,
        };
        match self {
            Self::Unix(l) => Listener::new(Accepting::new(l, admission)),
            Self::Tcp(l) => Listener::new(Accepting::new(l, admission)),
            Self::Vsock(l) => Listener::new(Accepting::new(l, admission)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_limit_is_the_request_limit_plus_headroom_at_most_ttrpc_s() {
        assert_eq!(max_frame_bytes(256 * 1024), 320 * 1024);
        assert_eq!(max_frame_bytes(0), 64 * 1024);
        assert_eq!(max_frame_bytes(usize::MAX), 4 << 20);
        assert_eq!(max_frame_bytes(8 << 20), 4 << 20);
    }
}
