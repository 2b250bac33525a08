#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The daemon under pressure (issue 11, items 3 and 7): a client's short deadline never
//! erases the log line nor cuts the drain short; work in flight is bounded and a request its
//! client gave up on while queued never runs; one full read per device; and, in
//! `service/transport.rs`, the connection limits seen from raw sockets. The real server
//! in-process over the recording fake, made slow where a test needs time (`FakeSystem::delay`),
//! with its log lines captured.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kata_volume::manager::MemStore;
use kata_volume::manager::{ManagerOptions, VolumeManager};
use kata_volume::service::proto::kata_volume as pb;
use kata_volume::service::proto::kata_volume_ttrpc::KataVolumeClient;
use kata_volume::service::{self, Address, ServeOptions};
use kata_volume::system::{FakeSystem, Op};
use slog::{Drain, OwnedKVList, Record};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use ttrpc::context;

#[path = "common/served.rs"]
mod served;
use served::*;

/// Log lines as `LEVEL message key=value …`, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl slog::Serializer for Line<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        write!(self.0, " {key}={val}").unwrap();
        Ok(())
    }
}

impl Drain for Logs {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, record: &Record, _: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line = format!("{} {}", record.level().as_short_str(), record.msg());
        slog::KV::serialize(&record.kv(), record, &mut Line(&mut line)).unwrap();
        self.0.lock().unwrap().push(line);
        Ok(())
    }
}

impl Logs {
    fn logger(&self) -> slog::Logger {
        slog::Logger::root(self.clone().fuse(), slog::o!())
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The lines containing every one of `parts`.
    fn matching(&self, parts: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .collect()
    }
}

/// Waits up to `limit` for `f` to hold.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Waits until `n` calls of `op` have begun (a slow call holds its slot from then on).
fn begun(sys: &FakeSystem, op: Op, n: usize) {
    assert!(
        eventually(Duration::from_secs(10), || sys.count(op) >= n),
        "{op:?} never began"
    );
}

/// The service running in-process on a unix socket, its log captured; stopped on drop.
struct Daemon {
    rt: Runtime,
    addr: Address,
    sys: Arc<FakeSystem>,
    logs: Logs,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    fn start(sys: Arc<FakeSystem>, opts: &ServeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr: Address = format!("unix://{}/kv.sock", dir.path().display())
            .parse()
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(MemStore::default());
        let m = Arc::new(
            VolumeManager::new(sys.clone(), store, ManagerOptions::default())
                .unwrap()
                .0,
        );
        let logs = Logs::default();
        let log = logs.logger();
        let listening = rt
            .block_on(async { service::bind(&addr, log)?.start_with(m, opts).await })
            .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let done = rt.spawn(listening.run(async {
            let _ = rx.await;
        }));
        Self {
            rt,
            addr,
            sys,
            logs,
            _dir: dir,
            stop: Some(tx),
            done: Some(done),
        }
    }

    fn client(&self) -> KataVolumeClient {
        let addr = self.addr.to_string();
        let c = self
            .rt
            .block_on(async { ttrpc::r#async::Client::connect(&addr).await })
            .unwrap();
        KataVolumeClient::new(c)
    }

    /// Starts the shutdown (drain) and waits until the service has stopped.
    fn stop(&mut self) {
        if let (Some(tx), Some(done)) = (self.stop.take(), self.done.take()) {
            let _ = tx.send(());
            self.rt.block_on(done).unwrap();
        }
    }

    fn mounted(&self, mp: &str) -> bool {
        self.sys
            .snapshot()
            .mounts
            .iter()
            .any(|m| m.as_os_str() == mp)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn within(d: Duration) -> context::Context {
    context::with_duration(d)
}

fn long() -> context::Context {
    within(Duration::from_secs(20))
}

/// The request ran out of its deadline: the server's DEADLINE_EXCEEDED, or the client's own
/// timer, whichever came first.
fn assert_deadline<T: std::fmt::Debug>(r: ttrpc::Result<T>) {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) if s.code() == ttrpc::Code::DEADLINE_EXCEEDED => {}
        Err(ttrpc::Error::Others(m)) if m.contains("deadline") => {}
        other => panic!("expected a deadline error, got {other:?}"),
    }
}

fn status<T: std::fmt::Debug>(r: ttrpc::Result<T>) -> (ttrpc::Code, String) {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => (s.code(), s.message().to_owned()),
        other => panic!("expected a status, got {other:?}"),
    }
}

/// Sends `storage(attempt)` with a 20 ms deadline until one attempt reaches the daemon's work
/// (a call of `op` begins), and returns that attempt. Each gets DEADLINE_EXCEEDED. (A client
/// whose deadline has passed before its writer runs — a loaded machine — never sends its
/// request at all: that attempt is not the case under test, so another is made.)
fn short_deadline_add(d: &Daemon, op: Op, storage: impl Fn(usize) -> pb::Storage) -> usize {
    let c = d.client();
    for attempt in 0..5 {
        let before = d.sys.count(op);
        let r =
            d.rt.block_on(c.add_storage(within(Duration::from_millis(20)), &storage(attempt)));
        assert_deadline(r);
        if eventually(Duration::from_secs(2), || d.sys.count(op) > before) {
            return attempt;
        }
    }
    panic!("no request with a 20 ms deadline reached the daemon in 5 attempts");
}

#[test]
fn a_short_deadline_keeps_the_log_line_the_mount_and_the_drain() {
    let sys = fake(1);
    sys.delay(Op::Mount, Duration::from_millis(1000));
    let mut d = Daemon::start(sys, &ServeOptions::default());
    let mp = |attempt| format!("{ROOT}/c{attempt}/rootfs");
    let attempt = short_deadline_add(&d, Op::Mount, |a| storage(0, &mp(a)));
    let mp = mp(attempt);
    assert!(!d.mounted(&mp), "the mount was meant to be still under way");
    // A shutdown started now waits for the mount in progress.
    d.stop();
    assert!(
        d.mounted(&mp),
        "the drain did not wait for the add in flight"
    );
    let ok = d
        .logs
        .matching(&["AddStorage ok", &format!("mount_point={mp}")]);
    assert_eq!(ok.len(), 1, "{:#?}", d.logs.lines());
    assert!(ok[0].starts_with("INFO"), "{}", ok[0]);
}

#[test]
fn a_refusal_after_the_deadline_is_still_logged() {
    let sys = fake(1);
    // The source is looked up (and found missing) only after 300 ms.
    sys.delay(Op::Stat, Duration::from_millis(300));
    sys.delay(Op::Lstat, Duration::from_millis(300));
    let d = Daemon::start(sys, &ServeOptions::default());
    let attempt = short_deadline_add(&d, Op::Lstat, |a| {
        let mut s = storage(0, &format!("{ROOT}/c{a}/rootfs"));
        s.source = "/dev/vd7".into();
        s
    });
    let mp = format!("mount_point={ROOT}/c{attempt}/rootfs");
    let found = eventually(Duration::from_secs(10), || {
        !d.logs
            .matching(&[
                "AddStorage refused",
                "result=INVALID_ARGUMENT",
                "/dev/vd7",
                &mp,
            ])
            .is_empty()
    });
    assert!(found, "no log line for the refusal: {:#?}", d.logs.lines());
}

#[test]
fn a_request_dropped_while_queued_never_runs() {
    let sys = fake(2);
    sys.delay(Op::Mount, Duration::from_millis(400));
    let opts = ServeOptions {
        max_in_flight: 1,
        ..ServeOptions::default()
    };
    let d = Daemon::start(sys, &opts);
    let c = d.client();
    let (a, b) = (format!("{ROOT}/a/rootfs"), format!("{ROOT}/b/rootfs"));
    let first = {
        let (c, s) = (c.clone(), storage(0, &a));
        d.rt.spawn(async move { c.add_storage(long(), &s).await })
    };
    begun(&d.sys, Op::Mount, 1);
    // The one slot is taken: this request waits, and its client gives up.
    assert_deadline(
        d.rt.block_on(c.add_storage(within(Duration::from_millis(100)), &storage(1, &b))),
    );
    let v = d.rt.block_on(first).unwrap().unwrap();
    assert_eq!(v.mount_point, a);
    std::thread::sleep(Duration::from_millis(700));
    assert!(!d.mounted(&b), "a request dropped while queued ran anyway");
    assert!(d.logs.matching(&[&b]).is_empty(), "{:#?}", d.logs.lines());
    // The slot is free again.
    d.rt.block_on(c.add_storage(long(), &storage(1, &b)))
        .unwrap();
    assert!(d.mounted(&b));
}

#[test]
fn a_full_daemon_answers_resource_exhausted_after_the_queue_wait() {
    let sys = fake(2);
    sys.delay(Op::Mount, Duration::from_millis(800));
    let opts = ServeOptions {
        max_in_flight: 1,
        max_queue_wait: Duration::from_millis(100),
        ..ServeOptions::default()
    };
    let d = Daemon::start(sys, &opts);
    let c = d.client();
    let first = {
        let (c, s) = (c.clone(), storage(0, &format!("{ROOT}/a/rootfs")));
        d.rt.spawn(async move { c.add_storage(long(), &s).await })
    };
    begun(&d.sys, Op::Mount, 1);
    let t = Instant::now();
    let b = format!("{ROOT}/b/rootfs");
    let (code, msg) = status(d.rt.block_on(c.add_storage(long(), &storage(1, &b))));
    assert_eq!(code, ttrpc::Code::RESOURCE_EXHAUSTED, "{msg}");
    assert!(msg.contains("busy") && msg.contains('1'), "{msg}");
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    let refused = d
        .logs
        .matching(&["AddStorage refused", "result=RESOURCE_EXHAUSTED", &b]);
    assert_eq!(refused.len(), 1, "{:#?}", d.logs.lines());
    d.rt.block_on(first).unwrap().unwrap();
    assert!(!d.mounted(&b));
}

#[test]
fn one_full_read_per_device_at_a_time() {
    let sys = fake(2);
    let d = Daemon::start(sys.clone(), &ServeOptions::default());
    let c = d.client();
    let mps: Vec<String> = (1..=3).map(|i| format!("{ROOT}/c{i}/rootfs")).collect();
    d.rt.block_on(async {
        // c1 and c2 share one device; c3 has its own.
        c.add_storage(long(), &storage(0, &mps[0])).await.unwrap();
        c.add_storage(long(), &storage(0, &mps[1])).await.unwrap();
        c.add_storage(long(), &storage(1, &mps[2])).await.unwrap();
    });
    sys.delay(Op::ReadDevice, Duration::from_millis(600));
    let reads = sys.count(Op::ReadDevice);
    let check = |mp: &str, full_read: bool| pb::CheckRequest {
        mount_point: mp.to_owned(),
        full_read,
        ..Default::default()
    };
    let first = {
        let (c, req) = (c.clone(), check(&mps[0], true));
        d.rt.spawn(async move { c.check_storage(long(), &req).await })
    };
    begun(&sys, Op::ReadDevice, reads + 1);
    let t = Instant::now();
    let (code, msg) = status(d.rt.block_on(c.check_storage(long(), &check(&mps[1], true))));
    assert_eq!(code, ttrpc::Code::RESOURCE_EXHAUSTED, "{msg}");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "answered after {:?}, not at once",
        t.elapsed()
    );
    assert!(
        msg.contains("full read") && msg.contains("already"),
        "{msg}"
    );
    // Another device's full read, and a status check of the busy one, go ahead.
    let other =
        d.rt.block_on(c.check_storage(long(), &check(&mps[2], true)));
    assert_eq!(other.unwrap().status, "V");
    let quick =
        d.rt.block_on(c.check_storage(long(), &check(&mps[1], false)));
    assert_eq!(quick.unwrap().status, "V");
    let r = d.rt.block_on(first).unwrap().unwrap();
    assert_eq!(r.status, "V");
    assert!(r.read_error.is_empty(), "{r:?}");
    // Finished: the device can be read again.
    let again =
        d.rt.block_on(c.check_storage(long(), &check(&mps[1], true)));
    assert_eq!(again.unwrap().bytes_read, r.bytes_read);
    assert!(
        d.logs
            .matching(&["CheckStorage refused", "result=RESOURCE_EXHAUSTED"])
            .len()
            == 1,
        "{:#?}",
        d.logs.lines()
    );
}

#[path = "service/transport.rs"]
mod transport;
