//! The `KataVolume` ttrpc methods: convert the message, run the manager call on a blocking
//! thread, log one line, map the error to a status code. No decisions are made here.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use slog::{Logger, error, info, warn};
use ttrpc::r#async::TtrpcContext;

use super::proto::kata_volume as pb;
use super::proto::kata_volume_ttrpc::KataVolume;
use super::status;
use crate::manager::{ManagerError, MountedVolume, Storage, VolumeManager};
use crate::request::Request;

/// The protocol version [`pb::VersionResponse::api_version`] reports.
pub const API_VERSION: u32 = 1;

/// Counts requests in flight; once draining, refuses new ones.
#[derive(Default)]
pub(super) struct Inflight {
    state: Mutex<(usize, bool)>,
    idle: tokio::sync::Notify,
}

/// Held while a request runs.
pub(super) struct InflightGuard<'a>(&'a Inflight);

impl Inflight {
    fn enter(&self) -> ttrpc::Result<InflightGuard<'_>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.1 {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::UNAVAILABLE,
                "The daemon is shutting down",
            )));
        }
        s.0 += 1;
        Ok(InflightGuard(self))
    }

    /// Refuses new requests from now on and waits for those in flight to finish.
    pub(super) async fn drain(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                s.1 = true;
                if s.0 == 0 {
                    return;
                }
            }
            idle.await;
        }
    }

    /// How many requests are running.
    pub(super) fn count(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The service object registered with the ttrpc server.
pub(super) struct Handler {
    pub(super) manager: Arc<VolumeManager>,
    pub(super) log: Logger,
    pub(super) inflight: Inflight,
}

/// Runs a blocking manager call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ttrpc::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ttrpc::Error::RpcStatus(ttrpc::get_status(
            ttrpc::Code::INTERNAL,
            format!("The request's worker failed: {e}"),
        ))
    })
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
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

impl Handler {
    /// Logs a failed request at a level by its class: refusals warn, internal failures error.
    fn log_failure(&self, method: &str, kv: (&str, &str, &str), e: &ManagerError, us: u64) {
        let (volume_type, root_hash, mount_point) = kv;
        let code = status::code(e.kind());
        let msg = status::message(e);
        if code == ttrpc::Code::INTERNAL {
            error!(self.log, "{method} failed"; "method" => method, "volume_type" => volume_type,
                "root_hash" => root_hash, "mount_point" => mount_point,
                "result" => status::code_name(code), "error" => msg, "duration_us" => us);
        } else {
            warn!(self.log, "{method} refused"; "method" => method, "volume_type" => volume_type,
                "root_hash" => root_hash, "mount_point" => mount_point,
                "result" => status::code_name(code), "error" => msg, "duration_us" => us);
        }
    }
}

#[async_trait]
impl KataVolume for Handler {
    async fn add_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::Storage,
    ) -> ttrpc::Result<pb::Volume> {
        let start = Instant::now();
        let _guard = self.inflight.enter()?;
        let storage = Storage {
            driver: req.driver,
            driver_options: req.driver_options,
            source: req.source,
            fstype: req.fstype,
            options: req.options,
            mount_point: req.mount_point,
        };
        let m = self.manager.clone();
        let (storage, described, res) = blocking(move || {
            let parsed = m.parse(&storage);
            let described = parsed.as_ref().ok().map(describe);
            let r = parsed.and_then(|req| m.add(&req));
            (storage, described, r)
        })
        .await?;
        match res {
            Ok(v) => {
                info!(self.log, "AddStorage ok"; "method" => "AddStorage",
                    "volume_type" => %v.kind,
                    "root_hash" => v.root_hash.as_ref().map_or_else(|| "-".to_owned(), |h| h.to_hex()),
                    "mount_point" => %v.mount_point.display(), "result" => "OK",
                    "dm_name" => v.dm_name.as_ref().map_or("-", |n| n.as_str()), "refcount" => v.refcount,
                    "already_present" => v.already_present, "duration_us" => micros(start));
                Ok(to_pb(v))
            }
            Err(e) => {
                let (t, h) = described.unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
                let kv = (t.as_str(), h.as_str(), storage.mount_point.as_str());
                self.log_failure("AddStorage", kv, &e, micros(start));
                Err(status::to_ttrpc(&e))
            }
        }
    }

    async fn remove_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::RemoveRequest,
    ) -> ttrpc::Result<pb::RemoveResponse> {
        let start = Instant::now();
        let _guard = self.inflight.enter()?;
        let m = self.manager.clone();
        let mp = req.mount_point;
        let (mp, res) = blocking(move || {
            let r = m.remove_storage(&mp);
            (mp, r)
        })
        .await?;
        match res {
            Ok(removed) => {
                info!(self.log, "RemoveStorage ok"; "method" => "RemoveStorage",
                    "mount_point" => &mp, "result" => "OK", "removed" => removed,
                    "duration_us" => micros(start));
                Ok(pb::RemoveResponse {
                    removed,
                    ..Default::default()
                })
            }
            Err(e) => {
                self.log_failure("RemoveStorage", ("-", "-", &mp), &e, micros(start));
                Err(status::to_ttrpc(&e))
            }
        }
    }

    async fn list_storages(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::ListRequest,
    ) -> ttrpc::Result<pb::ListResponse> {
        let start = Instant::now();
        let _guard = self.inflight.enter()?;
        let m = self.manager.clone();
        let list = blocking(move || m.list()).await?;
        info!(self.log, "ListStorages ok"; "method" => "ListStorages", "result" => "OK",
            "volumes" => list.len(), "duration_us" => micros(start));
        Ok(pb::ListResponse {
            volumes: list.into_iter().map(to_pb).collect(),
            ..Default::default()
        })
    }

    async fn check_storage(
        &self,
        _ctx: &TtrpcContext,
        req: pb::CheckRequest,
    ) -> ttrpc::Result<pb::CheckResponse> {
        let start = Instant::now();
        let _guard = self.inflight.enter()?;
        let m = self.manager.clone();
        let (mp, full) = (req.mount_point, req.full_read);
        let (mp, res) = blocking(move || {
            let r = m.check(&mp, full);
            (mp, r)
        })
        .await?;
        match res {
            Ok(c) => {
                info!(self.log, "CheckStorage ok"; "method" => "CheckStorage",
                    "mount_point" => &mp, "result" => "OK", "status" => &c.status,
                    "full_read" => full,
                    "bytes_read" => %c.bytes_read.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                    "read_error" => c.read_error.as_deref(), "duration_us" => micros(start));
                Ok(pb::CheckResponse {
                    status: c.status,
                    bytes_read: c.bytes_read.unwrap_or(0),
                    read_error: c.read_error.unwrap_or_default(),
                    ..Default::default()
                })
            }
            Err(e) => {
                self.log_failure("CheckStorage", ("-", "-", &mp), &e, micros(start));
                Err(status::to_ttrpc(&e))
            }
        }
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::VersionRequest,
    ) -> ttrpc::Result<pb::VersionResponse> {
        let _guard = self.inflight.enter()?;
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

    #[tokio::test]
    async fn drain_waits_for_requests_in_flight_and_refuses_new_ones() {
        let inflight = Arc::new(Inflight::default());
        let guard = inflight.enter().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let drained = {
            let inflight = inflight.clone();
            tokio::spawn(async move {
                inflight.drain().await;
                let _ = tx.send(());
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !drained.is_finished(),
            "drain returned with a request in flight"
        );
        match inflight.enter() {
            Err(ttrpc::Error::RpcStatus(s)) => assert_eq!(s.code(), ttrpc::Code::UNAVAILABLE),
            _ => panic!("a new request was accepted while draining"),
        }
        drop(guard);
        rx.await.unwrap();
        assert_eq!(inflight.count(), 0);
    }
}
