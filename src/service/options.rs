//! How much the daemon takes on at once, and from whom: the limits on work in flight and on
//! connections, the connection timeouts, and which vsock peers may connect. Plain settings
//! with their defaults and the vsock peer rule; enforced by `handler` (work) and `transport`
//! (connections), never decided here.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The host's vsock CID (`VMADDR_CID_HOST`): the only peer accepted by default.
pub const VSOCK_CID_HOST: u32 = 2;

/// Default for [`ServeOptions::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Default for [`ServeOptions::max_queue_wait`].
pub const DEFAULT_MAX_QUEUE_WAIT: Duration = Duration::from_secs(60);
/// Default for [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
/// Default for [`ServeOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for [`ServeOptions::frame_timeout`].
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's limits on work and connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Requests running at once (on the blocking pool). A request over it waits for a slot —
    /// at most its client's deadline and [`ServeOptions::max_queue_wait`] — before anything of
    /// it runs; a request its client gave up on while waiting never runs.
    pub max_in_flight: usize,
    /// The longest a request waits for a slot before `RESOURCE_EXHAUSTED`.
    pub max_queue_wait: Duration,
    /// Connections open at once; one over it is closed as soon as it is accepted (and a
    /// warning logged).
    pub max_connections: usize,
    /// A connection that receives nothing for this long, with no request of it in progress,
    /// is closed.
    pub idle_timeout: Duration,
    /// Once a frame's first byte arrives, the whole frame must arrive within this time, or the
    /// connection is closed (a client trickling bytes holds nothing for long); and an answer
    /// the client does not take for this long (it sends and never reads) closes it too.
    pub frame_timeout: Duration,
    /// Which vsock peers may connect.
    pub vsock_peers: VsockPeers,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_queue_wait: DEFAULT_MAX_QUEUE_WAIT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
            vsock_peers: VsockPeers::default(),
        }
    }
}

/// The vsock peers (by CID) the daemon accepts connections from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VsockPeers {
    /// Any peer.
    Any,
    /// The host and these CIDs.
    Only(BTreeSet<u32>),
}

impl Default for VsockPeers {
    /// The host alone.
    fn default() -> Self {
        Self::Only(BTreeSet::from([VSOCK_CID_HOST]))
    }
}

impl VsockPeers {
    /// Whether a peer with this CID may connect.
    pub fn allows(&self, cid: u32) -> bool {
        match self {
            Self::Any => true,
            Self::Only(cids) => cids.contains(&cid),
        }
    }

    /// The host plus `extra` peers (each a CID or `any`), as `--allow-vsock-cid` gives them.
    pub fn widened(extra: &[VsockPeer]) -> Self {
        let mut cids = BTreeSet::from([VSOCK_CID_HOST]);
        for p in extra {
            match p {
                VsockPeer::Any => return Self::Any,
                VsockPeer::Cid(c) => {
                    cids.insert(*c);
                }
            }
        }
        Self::Only(cids)
    }
}

impl fmt::Display for VsockPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Only(cids) => {
                let list: Vec<String> = cids.iter().map(u32::to_string).collect();
                f.write_str(&list.join(" "))
            }
        }
    }
}

/// One allowed vsock peer: a CID, or `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsockPeer {
    /// Every peer.
    Any,
    /// The peer with this CID.
    Cid(u32),
}

/// Why a vsock peer was refused as a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid vsock peer {value:?}: expected a CID (0..=4294967294) or 'any'")]
pub struct VsockPeerError {
    /// The value as given (shortened).
    pub value: String,
}

impl FromStr for VsockPeer {
    type Err = VsockPeerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "any" {
            return Ok(Self::Any);
        }
        match s.parse::<u32>() {
            // -1 (u32::MAX) is VMADDR_CID_ANY, an address to bind, never a peer.
            Ok(cid) if cid != super::VSOCK_CID_ANY => Ok(Self::Cid(cid)),
            _ => Err(VsockPeerError {
                value: crate::volume::truncate_for_error(s),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_alone_by_default() {
        let p = VsockPeers::default();
        assert!(p.allows(VSOCK_CID_HOST));
        for cid in [0, 1, 3, 4, 1000, u32::MAX] {
            assert!(!p.allows(cid), "CID {cid} accepted by default");
        }
        assert_eq!(p.to_string(), "2");
        assert_eq!(ServeOptions::default().vsock_peers, p);
    }

    #[test]
    fn widened_keeps_the_host_and_adds_the_cids() {
        let p = VsockPeers::widened(&[VsockPeer::Cid(3), VsockPeer::Cid(7)]);
        for cid in [2, 3, 7] {
            assert!(p.allows(cid), "CID {cid}");
        }
        for cid in [0, 1, 4, 6, 8] {
            assert!(!p.allows(cid), "CID {cid}");
        }
        assert_eq!(p.to_string(), "2 3 7");
        assert_eq!(VsockPeers::widened(&[]), VsockPeers::default());
        let any = VsockPeers::widened(&[VsockPeer::Cid(3), VsockPeer::Any]);
        assert_eq!(any, VsockPeers::Any);
        assert!([0, 1, 2, 3, 99, u32::MAX].iter().all(|c| any.allows(*c)));
    }

    #[test]
    fn peers_parse_as_a_cid_or_any() {
        assert_eq!("any".parse(), Ok(VsockPeer::Any));
        assert_eq!("3".parse(), Ok(VsockPeer::Cid(3)));
        assert_eq!("0".parse(), Ok(VsockPeer::Cid(0)));
        for bad in [
            "",
            "ANY",
            "-1",
            "4294967295",
            "4294967296",
            "x",
            " 3",
            "2,3",
        ] {
            let e = bad.parse::<VsockPeer>().unwrap_err();
            assert!(
                e.to_string().starts_with("Invalid vsock peer"),
                "{bad}: {e}"
            );
        }
    }
}
