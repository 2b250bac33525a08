//! # kata-volume
//!
//! Kata virtual volumes inside the guest: decode the host's `io.katacontainers.volume=<base64>`
//! mount option, validate it into a typed [`volume::Volume`], plan a dm-verity device over the
//! raw erofs block device, and (on Linux, as root) create, mount and tear it down.
//!
//! The data flows one way through the modules: [`verity`] (pure dm-verity vocabulary) →
//! [`volume`] (wire format and typed model) → [`plan`] (what to build). Nothing reaches back up.

pub mod apply;
pub mod manager;
pub mod plan;
pub mod policy;
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
