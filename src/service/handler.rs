//! The `KataVolume` ttrpc methods: convert the message, run the manager call on a blocking
//! thread, log one line, map the error to a status code. No decisions are made here.
//!
//! Everything after a request has a slot happens inside its blocking work — the manager call,
//! the log line, the release of its slot and in-flight mark — because ttrpc drops a method's
//! future at its client's deadline (or when the connection closes): the work still finishes
//! (a mount is never left half done by a client's impatience), its line is still written,
//! and shutdown's drain still waits for it. A request whose client gave up while it waited for
//! a slot never started: nothing ran, nothing is logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use slog::{Logger, error, info, warn};
use ttrpc::r#async::TtrpcContext;

use super::inflight::{Inflight, NotStarted, Slots};
use super::proto::kata_volume as pb;
use super::proto::kata_volume_ttrpc::KataVolume;
use super::status;
use crate::manager::{ManagerError, MountedVolume, Storage, VolumeManager};
use crate::request::Request;

/// The protocol version [`pb::VersionResponse::api_version`] reports.
pub const API_VERSION: u32 = 1;

/// Longest value from a request written to a log line (in characters).
const LOGGED_MAX: usize = 256;

/// The service object registered with the ttrpc server.
pub(super) struct Handler {
    pub(super) manager: Arc<VolumeManager>,
    pub(super) log: Logger,
    pub(super) inflight: Arc<Inflight>,
    pub(super) slots: Slots,
}

/// What the blocking work of a request gets.
struct Work<'a> {
    manager: &'a VolumeManager,
    log: &'a Logger,
    start: Instant,
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A value from a request, safe for a log line: shortened, control characters escaped (a
/// refused request may carry them, and text logs must not be forged).
fn logged(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(LOGGED_MAX));
    for (i, c) in s.chars().enumerate() {
        if i == LOGGED_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Volume type and root hash of a parsed request, for the log line (never the option
/// itself: it may carry secrets).
fn describe(r: &Request) -> (String, String) {
    match r {
        Request::Volume(v) => (
            v.volume_type.as_str().to_owned(),
            v.verity
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.root_hash().to_hex()),
        ),
        Request::Overlay(_) => ("overlay".to_owned(), "-".to_owned()),
        Request::MultiLayer(m) => (
            "multi-layer".to_owned(),
            m.layer
                .verity
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.root_hash().to_hex()),
        ),
    }
}

fn to_pb(v: MountedVolume) -> pb::Volume {
    pb::Volume {
        mount_point: v.mount_point.to_string_lossy().into_owned(),
        volume_type: v.kind.to_string(),
        source: v.source,
        dm_name: v.dm_name.map(|n| n.to_string()).unwrap_or_default(),
        root_hash: v.root_hash.map(|h| h.to_hex()).unwrap_or_default(),
        refcount: u64::try_from(v.refcount).unwrap_or(u64::MAX),
        already_present: v.already_present,
        ..Default::default()
    }
}

/// One failed request's line, at a level by its class: refusals warn, internal failures
/// error. `kv` is (volume type, root hash, mount point), the mount point as the client sent it.
fn log_failure(
    log: &Logger,
    method: &str,
    kv: (&str, &str, &str),
    code: ttrpc::Code,
    msg: &str,
    us: u64,
) {
    let (volume_type, root_hash, mount_point) = kv;
    let mount_point = logged(mount_point);
    if code == ttrpc::Code::INTERNAL {
        error!(log, "{method} failed"; "method" => method, "volume_type" => volume_type,
            "root_hash" => root_hash, "mount_point" => mount_point,
            "result" => status::code_name(code), "error" => msg, "duration_us" => us);
    } else {
        warn!(log, "{method} refused"; "method" => method, "volume_type" => volume_type,
            "root_hash" => root_hash, "mount_point" => mount_point,
            "result" => status::code_name(code), "error" => msg, "duration_us" => us);
    }
}

/// The status of a manager error, its line written.
fn failed(w: &Work<'_>, method: &str, kv: (&str, &str, &str), e: &ManagerError) -> ttrpc::Error {
    let code = status::code(e.kind());
    log_failure(
        w.log,
        method,
        kv,
        code,
        &status::message(e),
        micros(w.start),
    );
    status::to_ttrpc(e)
}

impl Handler {
    /// Runs `job` on the blocking pool once the request has a slot and is marked in flight;
    /// both are moved into the job, so they end when the job ends. `mount_point` names the
    /// request in the line written when it cannot start.
    async fn run<T: Send + 'static>(
        &self,
        method: &'static str,
        mount_point: &str,
        job: impl FnOnce(&Work<'_>) -> ttrpc::Result<T> + Send + 'static,
    ) -> ttrpc::Result<T> {
        let start = Instant::now();
        let started = match self.slots.acquire().await {
            Ok(slot) => self.inflight.enter().map(|mark| (slot, mark)),
            Err(e) => Err(e),
        };
        let held = match started {
            Ok(held) => held,
            Err(e) => return Err(self.not_started(method, mount_point, &e, start)),
        };
        let (manager, log) = (self.manager.clone(), self.log.clone());
        tokio::task::spawn_blocking(move || {
            let _held = held;
            job(&Work {
                manager: &manager,
                log: &log,
                start,
            })
        })
        .await
        .map_err(|e| {
            ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::INTERNAL,
                format!("The request's worker failed: {e}"),
            ))
        })?
    }

    fn not_started(&self, method: &str, mp: &str, e: &NotStarted, start: Instant) -> ttrpc::Error {
        let msg = e.to_string();
        log_failure(
            &self.log,
            method,
            ("-", "-", mp),
            e.code(),
            &msg,
            micros(start),
        );
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), msg))
    }
}

#[async_trait]
impl KataVolume for Handler {
    async fn add_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::Storage,
    ) -> ttrpc::Result<pb::Volume> {
        let mount_point = req.mount_point.clone();
        let storage = Storage {
            driver: req.driver,
            driver_options: req.driver_options,
            source: req.source,
            fstype: req.fstype,
            options: req.options,
            mount_point: req.mount_point,
        };
        self.run("AddStorage", &mount_point, move |w| {
            let parsed = w.manager.parse(&storage);
            let described = parsed.as_ref().ok().map(describe);
            match parsed.and_then(|req| w.manager.add(&req)) {
                Ok(v) => {
                    info!(w.log, "AddStorage ok"; "method" => "AddStorage",
                        "volume_type" => %v.kind,
                        "root_hash" => v.root_hash.as_ref().map_or_else(|| "-".to_owned(), |h| h.to_hex()),
                        "mount_point" => %v.mount_point.display(), "result" => "OK",
                        "dm_name" => v.dm_name.as_ref().map_or("-", |n| n.as_str()),
                        "refcount" => v.refcount, "already_present" => v.already_present,
                        "duration_us" => micros(w.start));
                    Ok(to_pb(v))
                }
                Err(e) => {
                    let (t, h) = described.unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
                    let kv = (t.as_str(), h.as_str(), storage.mount_point.as_str());
                    Err(failed(w, "AddStorage", kv, &e))
                }
            }
        })
        .await
    }

    async fn remove_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::RemoveRequest,
    ) -> ttrpc::Result<pb::RemoveResponse> {
        let mp = req.mount_point;
        self.run("RemoveStorage", &mp.clone(), move |w| {
            match w.manager.remove_storage(&mp) {
                Ok(removed) => {
                    info!(w.log, "RemoveStorage ok"; "method" => "RemoveStorage",
                        "mount_point" => %Path::new(&mp).display(), "result" => "OK",
                        "removed" => removed, "duration_us" => micros(w.start));
                    Ok(pb::RemoveResponse {
                        removed,
                        ..Default::default()
                    })
                }
                Err(e) => Err(failed(w, "RemoveStorage", ("-", "-", &mp), &e)),
            }
        })
        .await
    }

    async fn list_storages(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::ListRequest,
    ) -> ttrpc::Result<pb::ListResponse> {
        self.run("ListStorages", "-", |w| {
            let list = w.manager.list();
            info!(w.log, "ListStorages ok"; "method" => "ListStorages", "result" => "OK",
                "volumes" => list.len(), "duration_us" => micros(w.start));
            Ok(pb::ListResponse {
                volumes: list.into_iter().map(to_pb).collect(),
                ..Default::default()
            })
        })
        .await
    }

    async fn check_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::CheckRequest,
    ) -> ttrpc::Result<pb::CheckResponse> {
        let (mp, full) = (req.mount_point, req.full_read);
        self.run("CheckStorage", &mp.clone(), move |w| {
            match w.manager.check(&mp, full) {
                Ok(c) => {
                    info!(w.log, "CheckStorage ok"; "method" => "CheckStorage",
                    "mount_point" => %Path::new(&mp).display(), "result" => "OK",
                    "status" => &c.status, "full_read" => full,
                    "bytes_read" => %c.bytes_read.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                    "read_error" => c.read_error.as_deref(), "duration_us" => micros(w.start));
                    Ok(pb::CheckResponse {
                        status: c.status,
                        bytes_read: c.bytes_read.unwrap_or(0),
                        read_error: c.read_error.unwrap_or_default(),
                        ..Default::default()
                    })
                }
                Err(e) => Err(failed(w, "CheckStorage", ("-", "-", &mp), &e)),
            }
        })
        .await
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::VersionRequest,
    ) -> ttrpc::Result<pb::VersionResponse> {
        let _mark = self
            .inflight
            .enter()
            .map_err(|e| ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string())))?;
        Ok(pb::VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: API_VERSION,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_values_are_short_and_escaped() {
        assert_eq!(logged("/run/kata-containers/c1"), "/run/kata-containers/c1");
        let forged = logged("/run/x\nINFO forged\r\u{1b}[31m");
        assert_eq!(forged, "/run/x\\nINFO forged\\r\\u{1b}[31m");
        assert!(!forged.chars().any(char::is_control));
        let long = logged(&"é".repeat(1000));
        assert_eq!(long.chars().count(), LOGGED_MAX + 1);
        assert!(long.ends_with('…'));
    }
}
