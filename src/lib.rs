//! # kata-volume
//!
//! Kata virtual volumes inside the guest: decode the host's `io.katacontainers.volume=<base64>`
//! mount option, validate it into a typed [`volume::Volume`], check it against the guest's
//! [`policy::Policy`], build a dm-verity device over the raw erofs block device, mount it
//! read-only, and tear it down again.
//!
//! A request goes one way through the modules, each visited once (see
//! `docs/architecture.md`): [`manager`] runs [`request`] (parse the agent's `Storage`) →
//! [`policy`] (authorize) → [`resolve`] (look at the source and mount point) → [`plan`] (what
//! to build) → [`apply`] (build it, with undo) over [`system`] (every syscall). [`verity`] and
//! [`volume`] are the vocabulary underneath. Nothing reaches back up.
//!
//! Cargo features: the default library is this core. `engine` adds userspace hash trees
//! (`verity::engine`), `service` the ttrpc daemon and client (`service`), `fake` the
//! recording fake system (`system::FakeSystem`) for tests, `cli` the `kata-volume` binary.

pub mod address;
pub mod apply;
pub mod host;
pub mod manager;
pub mod plan;
pub mod policy;
pub mod request;
pub mod resolve;
#[cfg(feature = "service")]
pub mod service;
pub mod system;
pub mod trust;
pub mod verity;
pub mod volume;

/// An error and its sources, joined with `: ` — the one-line message for a log, a CLI
/// `error:` line or an RPC status (error messages in this crate never repeat their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
