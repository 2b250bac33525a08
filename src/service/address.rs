//! Where the daemon listens and the client connects: `vsock://CID:PORT`, `unix:///path` and
//! `tcp://IP:PORT`, parsed once at the edge. These are the schemes ttrpc's own transports
//! understand; [`Address`]'s `Display` gives back the string ttrpc expects.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// vsock's "any CID" (`VMADDR_CID_ANY`); also written `-1`.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

/// The daemon's default listen address: any CID, port 1025 (the Kata agent has 1024).
pub const DEFAULT_LISTEN: &str = "vsock://-1:1025";

/// A daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `vsock://CID:PORT` (`-1` or 4294967295 as CID: any).
    Vsock {
        /// Context id.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// `unix:///absolute/path` (or `unix://@name`, an abstract socket).
    Unix(PathBuf),
    /// `tcp://IP:PORT`.
    Tcp(SocketAddr),
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid address {addr:?}: {why}")]
pub struct AddressError {
    /// The address as given.
    pub addr: String,
    /// Why.
    pub why: &'static str,
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| AddressError {
            addr: crate::volume::truncate_for_error(s),
            why,
        };
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or(bad("expected vsock://CID:PORT"))?;
            let cid = if cid == "-1" {
                VSOCK_CID_ANY
            } else {
                cid.parse()
                    .map_err(|_| bad("CID must be -1 or 0..=4294967295"))?
            };
            let port = port
                .parse()
                .map_err(|_| bad("port must be 0..=4294967295"))?;
            Ok(Self::Vsock { cid, port })
        } else if let Some(path) = s.strip_prefix("unix://") {
            if !(path.starts_with('/') || path.starts_with('@')) || path.len() < 2 {
                return Err(bad("expected unix:///absolute/path or unix://@abstract"));
            }
            // sun_path holds 108 bytes including the NUL.
            if path.len() > 107 || path.contains('\0') {
                return Err(bad("socket path must be at most 107 bytes without NUL"));
            }
            Ok(Self::Unix(PathBuf::from(path)))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            rest.parse()
                .map(Self::Tcp)
                .map_err(|_| bad("expected tcp://IP:PORT"))
        } else {
            Err(bad("scheme must be vsock://, unix:// or tcp://"))
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vsock { cid, port } if *cid == VSOCK_CID_ANY => write!(f, "vsock://-1:{port}"),
            Self::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Address {
    /// The socket file of a path-based unix address (not of an abstract one).
    pub fn unix_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Unix(p) if !p.to_string_lossy().starts_with('@') => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "vsock://-1:1025",
            "vsock://3:1024",
            "unix:///run/kata-volume.sock",
            "unix://@kata-volume",
            "tcp://127.0.0.1:7000",
            "tcp://[::1]:7000",
        ] {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        let any: Address = "vsock://4294967295:1025".parse().unwrap();
        assert_eq!(any.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "",
            "1025",
            "vsock://1025",
            "vsock://x:1",
            "vsock://-2:1",
            "unix://relative",
            "unix://",
            "tcp://localhost:1",
            "tcp://127.0.0.1",
            "http://127.0.0.1:80",
        ] {
            let e = s.parse::<Address>().unwrap_err();
            assert!(e.to_string().starts_with("Invalid address"), "{s}: {e}");
        }
    }
}
