//! The accept loop, as the stream of connections ttrpc serves: each accepted connection is
//! checked — a vsock peer must be allowed, and a place under the connection cap must be free —
//! and either handed over guarded, or closed at once with a warning naming the peer. Accept
//! errors (out of file descriptors, …) are logged and retried after a pause, never spun on.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use slog::{Logger, o, warn};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_vsock::{VsockListener, VsockStream};

use super::conn::{ConnLimits, Guarded};
use crate::service::VsockPeers;

/// Pause after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Who connected.
#[derive(Debug, Clone)]
pub(super) enum Peer {
    /// A unix socket peer, by its credentials when the kernel gives them.
    Unix {
        /// Process id.
        pid: Option<i32>,
        /// User id.
        uid: Option<u32>,
    },
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A vsock peer.
    Vsock {
        /// Its context id.
        cid: u32,
        /// Its port.
        port: u32,
    },
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        match self {
            Self::Unix { pid, uid } => write!(
                f,
                "unix pid={} uid={}",
                or_dash(pid.map(|p| p.to_string())),
                or_dash(uid.map(|u| u.to_string()))
            ),
            Self::Tcp(a) => write!(f, "tcp {a}"),
            Self::Vsock { cid, port } => write!(f, "vsock {cid}:{port}"),
        }
    }
}

/// A bound listener of one kind.
pub(super) trait Accept: Send + Unpin + 'static {
    /// Its connections.
    type Conn: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static;
    /// Accepts the next connection.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Conn, Peer)>>;
}

impl Accept for UnixListener {
    type Conn = UnixStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, Peer)>> {
        UnixListener::poll_accept(self, cx).map_ok(|(s, _)| {
            let cred = s.peer_cred().ok();
            let peer = Peer::Unix {
                pid: cred.and_then(|c| c.pid()),
                uid: cred.map(|c| c.uid()),
            };
            (s, peer)
        })
    }
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, Peer)>> {
        TcpListener::poll_accept(self, cx).map_ok(|(s, a)| (s, Peer::Tcp(a)))
    }
}

impl Accept for VsockListener {
    type Conn = VsockStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(VsockStream, Peer)>> {
        VsockListener::poll_accept(self, cx).map_ok(|(s, a)| {
            let peer = Peer::Vsock {
                cid: a.cid(),
                port: a.port(),
            };
            (s, peer)
        })
    }
}

/// What every accepted connection is checked against and held to.
#[derive(Clone)]
pub(super) struct Admission {
    /// Places under the connection cap.
    pub(super) places: Arc<Semaphore>,
    /// The cap (for the log line).
    pub(super) max_connections: usize,
    /// The vsock peers allowed.
    pub(super) vsock_peers: VsockPeers,
    /// The limits of each connection.
    pub(super) limits: ConnLimits,
    /// The daemon's logger.
    pub(super) log: Logger,
}

/// The stream of admitted connections of a listener.
pub(super) struct Accepting<L> {
    listener: L,
    admission: Admission,
    pause: Option<Pin<Box<Sleep>>>,
}

impl<L: Accept> Accepting<L> {
    pub(super) fn new(listener: L, admission: Admission) -> Self {
        Self {
            listener,
            admission,
            pause: None,
        }
    }

    /// The connection guarded, or `None` (and a warning) when it is refused.
    fn admit(&self, conn: L::Conn, peer: &Peer) -> Option<Guarded<L::Conn>> {
        let a = &self.admission;
        if let Peer::Vsock { cid, .. } = peer
            && !a.vsock_peers.allows(*cid)
        {
            warn!(a.log, "connection refused: vsock peer not allowed";
                "peer" => %peer, "peer_cid" => cid, "allowed_cids" => %a.vsock_peers);
            return None;
        }
        let Ok(place) = a.places.clone().try_acquire_owned() else {
            warn!(a.log, "connection refused: too many connections";
                "peer" => %peer, "max_connections" => a.max_connections);
            return None;
        };
        let log = a.log.new(o!("peer" => peer.to_string()));
        Some(Guarded::new(conn, place, a.limits, log))
    }
}

impl<L: Accept> Stream for Accepting<L> {
    type Item = io::Result<Guarded<L::Conn>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = &mut this.pause {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
            }
            match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    warn!(this.admission.log, "accepting a connection failed"; "error" => %e);
                    this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
                Poll::Ready(Ok((conn, peer))) => {
                    if let Some(guarded) = this.admit(conn, &peer) {
                        return Poll::Ready(Some(Ok(guarded)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use slog::{Drain, OwnedKVList, Record};

    use super::*;
    use crate::service::VsockPeer;

    /// Log lines as `message key=value …`.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    struct Kv<'a>(&'a mut String);

    impl slog::Serializer for Kv<'_> {
        fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments) -> slog::Result {
            self.0.push_str(&format!(" {key}={val}"));
            Ok(())
        }
    }

    impl Drain for Lines {
        type Ok = ();
        type Err = slog::Never;
        fn log(&self, r: &Record, _: &OwnedKVList) -> Result<(), slog::Never> {
            let mut line = r.msg().to_string();
            let _ = slog::KV::serialize(&r.kv(), r, &mut Kv(&mut line));
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            Ok(())
        }
    }

    fn accepting(
        max_connections: usize,
        vsock_peers: VsockPeers,
    ) -> (Accepting<UnixListener>, Lines) {
        let lines = Lines::default();
        let name = format!(
            "@kata-volume-accept-test-{}-{max_connections}",
            std::process::id()
        );
        let listener = match super::super::bind(&format!("unix://{name}").parse().unwrap()).unwrap()
        {
            super::super::RawListener::Unix(l) => l,
            _ => unreachable!(),
        };
        let admission = Admission {
            places: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            vsock_peers,
            limits: ConnLimits {
                max_frame: 1024,
                idle: Duration::from_secs(1),
                frame: Duration::from_secs(1),
            },
            log: Logger::root(lines.clone().fuse(), o!()),
        };
        (Accepting::new(listener, admission), lines)
    }

    fn conn() -> UnixStream {
        UnixStream::pair().unwrap().0
    }

    #[tokio::test]
    async fn vsock_peers_other_than_the_allowed_are_refused_and_logged_with_their_cid() {
        let vsock = |cid| Peer::Vsock { cid, port: 1234 };
        let (a, lines) = accepting(8, VsockPeers::default());
        assert!(a.admit(conn(), &vsock(2)).is_some(), "the host refused");
        assert!(a.admit(conn(), &vsock(3)).is_none(), "CID 3 accepted");
        let logged = lines.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(
            logged[0].starts_with("connection refused: vsock peer not allowed")
                && logged[0].contains("peer_cid=3")
                && logged[0].contains("allowed_cids=2"),
            "{logged:?}"
        );
        let (a, _) = accepting(9, VsockPeers::widened(&[VsockPeer::Cid(3)]));
        assert!(a.admit(conn(), &vsock(3)).is_some());
        assert!(a.admit(conn(), &vsock(4)).is_none());
        let (a, _) = accepting(10, VsockPeers::Any);
        assert!(a.admit(conn(), &vsock(4)).is_some());
        // Other transports have no CID to check.
        let (a, _) = accepting(11, VsockPeers::default());
        let tcp = Peer::Tcp("127.0.0.1:9".parse().unwrap());
        assert!(a.admit(conn(), &tcp).is_some());
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_until_a_place_is_free() {
        let (a, lines) = accepting(2, VsockPeers::default());
        let peer = Peer::Unix {
            pid: Some(1),
            uid: Some(0),
        };
        let first = a.admit(conn(), &peer);
        let second = a.admit(conn(), &peer);
        assert!(first.is_some() && second.is_some());
        assert!(a.admit(conn(), &peer).is_none());
        let logged = lines.0.lock().unwrap().clone();
        assert!(
            logged.len() == 1
                && logged[0].contains("too many connections")
                && logged[0].contains("max_connections=2")
                && logged[0].contains("peer=unix pid=1 uid=0"),
            "{logged:?}"
        );
        drop(first);
        assert!(
            a.admit(conn(), &peer).is_some(),
            "a closed connection's place was kept"
        );
    }
}
