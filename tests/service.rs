#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ttrpc service end to end, without root: the real server in-process on a unix socket
//! (or tcp on 127.0.0.1), a `VolumeManager` over the recording fake and a `FileStore` in a
//! temporary folder, driven by the generated async client, by `VolumeClient`, and by the
//! built binary's client subcommands.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kata_volume::manager::{FileStore, ManagerOptions, VolumeManager};
use kata_volume::service::proto::kata_volume as pb;
use kata_volume::service::proto::kata_volume_ttrpc::KataVolumeClient;
use kata_volume::service::{self, Address, ClientOptions, VolumeClient};
use kata_volume::system::FakeSystem;
use kata_volume::volume::{Volume, encode_option};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use ttrpc::context;

#[path = "common/served.rs"]
mod served;
use served::*;

fn unverified_option() -> String {
    let json = r#"{"volume_type":"layer_raw_block","source":"/dev/vd0"}"#;
    encode_option(&Volume::parse(json).unwrap().to_wire())
}

/// The service running in-process; stopped (drained) on drop.
struct Daemon {
    rt: Runtime,
    addr: Address,
    sys: Arc<FakeSystem>,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

fn manager(sys: &Arc<FakeSystem>, dir: &std::path::Path) -> VolumeManager {
    let store = Arc::new(FileStore::new(dir.join("state")));
    VolumeManager::new(sys.clone(), store, ManagerOptions::default())
        .unwrap()
        .0
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Daemon {
    fn start(layers: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("unix://{}/kv.sock", dir.path().display());
        Self::start_at(fake(layers), dir, addr.parse().unwrap())
    }

    fn start_at(sys: Arc<FakeSystem>, dir: tempfile::TempDir, addr: Address) -> Self {
        let rt = runtime();
        let m = Arc::new(manager(&sys, dir.path()));
        let listening = rt
            .block_on(async { service::bind(&addr, service::discard())?.start(m).await })
            .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let done = rt.spawn(listening.run(async {
            let _ = rx.await;
        }));
        Self {
            rt,
            addr,
            sys,
            dir,
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

    /// Stops the service (drain) and waits for it.
    fn stop(&mut self) {
        if let (Some(tx), Some(done)) = (self.stop.take(), self.done.take()) {
            let _ = tx.send(());
            self.rt.block_on(done).unwrap();
        }
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let addr = self.addr.to_string();
        let mut all = vec![args[0], "--addr", &addr];
        all.extend_from_slice(&args[1..]);
        cli(&all, stdin)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kata-volume"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        let mut input = input;
        // A command refused for its usage exits before reading: a closed pipe is fine.
        if let Err(e) = input.write_all(s.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    child.wait_with_output().unwrap()
}

fn ctx() -> context::Context {
    context::with_duration(Duration::from_secs(10))
}

fn status<T: std::fmt::Debug>(r: ttrpc::Result<T>) -> (ttrpc::Code, String) {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => (s.code(), s.message().to_owned()),
        other => panic!("expected a status, got {other:?}"),
    }
}

#[test]
fn generated_client_adds_lists_checks_and_removes() {
    let d = Daemon::start(1);
    let before = d.sys.snapshot();
    let c = d.client();
    let mp = format!("{ROOT}/c1/rootfs");
    d.rt.block_on(async {
        let v = c.add_storage(ctx(), &storage(0, &mp)).await.unwrap();
        assert_eq!(v.mount_point, mp);
        assert_eq!(v.volume_type, "layer_raw_block");
        assert_eq!(v.source, "/dev/vd0");
        assert_eq!(v.root_hash, root_hash(0));
        assert!(!v.dm_name.is_empty());
        assert_eq!((v.refcount, v.already_present), (1, false));
        let again = c.add_storage(ctx(), &storage(0, &mp)).await.unwrap();
        assert!(again.already_present);
        assert_eq!(again.refcount, 2, "each add is one claim");

        let list = c
            .list_storages(ctx(), &pb::ListRequest::new())
            .await
            .unwrap();
        assert_eq!(list.volumes.len(), 1);
        assert_eq!(list.volumes[0].dm_name, v.dm_name);

        let mut req = pb::CheckRequest::new();
        req.mount_point = mp.clone();
        assert_eq!(c.check_storage(ctx(), &req).await.unwrap().status, "V");
        req.full_read = true;
        let full = c.check_storage(ctx(), &req).await.unwrap();
        assert_eq!(full.status, "V");
        assert!(full.read_error.is_empty(), "{full:?}");
        d.sys.set_corrupt(&v.dm_name);
        let bad = c.check_storage(ctx(), &req).await.unwrap();
        assert_eq!(bad.status, "C");
        assert!(!bad.read_error.is_empty());

        let mut rm = pb::RemoveRequest::new();
        rm.mount_point = mp.clone();
        // Two claims: two removes.
        assert!(c.remove_storage(ctx(), &rm).await.unwrap().removed);
        assert!(c.remove_storage(ctx(), &rm).await.unwrap().removed);
        assert!(!c.remove_storage(ctx(), &rm).await.unwrap().removed);
        let list = c
            .list_storages(ctx(), &pb::ListRequest::new())
            .await
            .unwrap();
        assert!(list.volumes.is_empty());

        let v = c.version(ctx(), &pb::VersionRequest::new()).await.unwrap();
        assert_eq!(v.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(v.api_version, service::API_VERSION);
    });
    let after = d.sys.snapshot();
    assert!(after.dm.is_empty() && after.mounts.is_empty());
    assert_eq!(after.dm, before.dm);
}

#[test]
fn errors_have_specific_codes_and_the_daemon_stays_up() {
    let d = Daemon::start(2);
    let c = d.client();
    let mp = format!("{ROOT}/c1/rootfs");
    d.rt.block_on(async {
        let alive = async || {
            let v = c.version(ctx(), &pb::VersionRequest::new()).await;
            assert!(v.is_ok(), "daemon gone: {v:?}");
        };
        let mut s = storage(0, &mp);
        s.options = vec!["io.katacontainers.volume=!!not-base64!!".into()];
        let (code, msg) = status(c.add_storage(ctx(), &s).await);
        assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "{msg}");
        alive().await;

        s.options = vec![unverified_option()];
        let (code, msg) = status(c.add_storage(ctx(), &s).await);
        assert_eq!(code, ttrpc::Code::PERMISSION_DENIED, "{msg}");
        alive().await;

        let mut req = pb::CheckRequest::new();
        req.mount_point = format!("{ROOT}/nothing");
        let (code, msg) = status(c.check_storage(ctx(), &req).await);
        assert_eq!(code, ttrpc::Code::NOT_FOUND, "{msg}");
        assert!(msg.contains("/nothing"), "{msg}");
        alive().await;

        c.add_storage(ctx(), &storage(0, &mp)).await.unwrap();
        let (code, msg) = status(c.add_storage(ctx(), &storage(1, &mp)).await);
        assert_eq!(code, ttrpc::Code::ALREADY_EXISTS, "{msg}");
        alive().await;

        let (code, msg) = status(c.add_storage(ctx(), &storage(0, "relative")).await);
        assert_eq!(code, ttrpc::Code::INVALID_ARGUMENT, "{msg}");
        alive().await;
    });
    assert_eq!(d.sys.snapshot().dm.len(), 1, "the failed adds left nothing");
}

#[test]
fn concurrent_adds_of_one_layer_share_one_device() {
    let d = Daemon::start(1);
    let c = d.client();
    let mps: Vec<String> = (0..20).map(|i| format!("{ROOT}/c{i}/rootfs")).collect();
    let counts = d.rt.block_on(async {
        let tasks: Vec<_> = mps
            .iter()
            .map(|mp| {
                let (c, s) = (c.clone(), storage(0, mp));
                tokio::spawn(async move { c.add_storage(ctx(), &s).await.unwrap().refcount })
            })
            .collect();
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts
    });
    assert_eq!(counts.iter().max(), Some(&20));
    let snap = d.sys.snapshot();
    assert_eq!((snap.dm.len(), snap.mounts.len()), (1, 20));
    let list =
        d.rt.block_on(c.list_storages(ctx(), &pb::ListRequest::new()));
    let list = list.unwrap().volumes;
    assert_eq!(list.len(), 20);
    assert!(list.iter().all(|v| v.refcount == 20));

    d.rt.block_on(async {
        let tasks: Vec<_> = mps
            .iter()
            .map(|mp| {
                let c = c.clone();
                let mut rm = pb::RemoveRequest::new();
                rm.mount_point = mp.clone();
                tokio::spawn(async move { c.remove_storage(ctx(), &rm).await.unwrap().removed })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
    });
    let snap = d.sys.snapshot();
    assert_eq!((snap.dm.len(), snap.mounts.len()), (0, 0));
}

#[test]
fn shutdown_keeps_mounts_and_a_restart_readopts_them() {
    let mut d = Daemon::start(2);
    let c = d.client();
    d.rt.block_on(async {
        for i in 0..3 {
            let mp = format!("{ROOT}/c{i}/rootfs");
            c.add_storage(ctx(), &storage(i % 2, &mp)).await.unwrap();
        }
    });
    d.stop();
    let sock = d.addr.unix_path().unwrap().to_owned();
    assert!(!sock.exists(), "the socket file is removed at exit");
    assert_eq!(d.sys.snapshot().mounts.len(), 3, "mounts stay by default");
    let store = Arc::new(FileStore::new(d.dir.path().join("state")));
    let (m, report) = VolumeManager::new(d.sys.clone(), store, ManagerOptions::default()).unwrap();
    assert_eq!(report.adopted, 3, "{report:?}");
    assert_eq!(m.list().len(), 3);
}

#[test]
fn client_retries_until_the_daemon_listens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.sock");
    let addr: Address = format!("unix://{}", path.display()).parse().unwrap();
    let sys = fake(1);
    let rt = runtime();
    let m = Arc::new(manager(&sys, dir.path()));
    let late = {
        let (addr, path) = (addr.clone(), path.clone());
        async move {
            // Like a slirp port forward before the guest listens: accept, then hang up.
            let fake = tokio::net::UnixListener::bind(&path).unwrap();
            for _ in 0..2 {
                drop(fake.accept().await.unwrap());
            }
            drop(fake);
            std::fs::remove_file(&path).unwrap();
            let l = service::bind(&addr, service::discard()).unwrap();
            l.start(m).await.unwrap()
        }
    };
    let opts = ClientOptions {
        retry_for: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
    };
    let mut client = VolumeClient::new(addr.clone(), opts);
    let (listening, version) = rt.block_on(async {
        let server = tokio::spawn(late);
        let v = client.version().await;
        (server.await.unwrap(), v)
    });
    assert_eq!(version.unwrap().api_version, service::API_VERSION);
    drop(listening);

    let opts = ClientOptions {
        retry_for: Duration::from_millis(300),
        ..opts
    };
    let missing: Address = format!("unix://{}/none.sock", dir.path().display())
        .parse()
        .unwrap();
    let e = rt
        .block_on(VolumeClient::new(missing, opts).version())
        .unwrap_err();
    assert!(e.to_string().starts_with("Cannot reach the daemon"), "{e}");
}

#[test]
fn serves_tcp_on_loopback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let d = Daemon::start_at(fake(1), tempfile::tempdir().unwrap(), addr);
    let out = d.cli(&["version", "--json"], None);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["api_version"], 1);
}

#[path = "service/cli.rs"]
mod cli;

#[path = "service/storages.rs"]
mod storages;
