#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hostile-request catalogue against the real daemon over a unix socket (fake system):
//! each request is refused with its own ttrpc code — or, when its frame is larger than the
//! daemon reads (`service::max_frame_bytes`), its connection is closed before it is read —,
//! the daemon stays up, and afterwards no device, mount, loop or state entry exists that was
//! not there before.

#[path = "hostile/cases.rs"]
mod cases;

use std::sync::Arc;
use std::time::Duration;

use kata_volume::manager::{FileStore, ManagerOptions, Storage, VolumeManager};
use kata_volume::service::proto::kata_volume as pb;
use kata_volume::service::proto::kata_volume_ttrpc::KataVolumeClient;
use kata_volume::service::{self, Address, status};
use ttrpc::context;

fn pb_storage(s: &Storage) -> pb::Storage {
    pb::Storage {
        driver: s.driver.clone(),
        driver_options: s.driver_options.clone(),
        source: s.source.clone(),
        fstype: s.fstype.clone(),
        options: s.options.clone(),
        mount_point: s.mount_point.clone(),
        ..Default::default()
    }
}

#[test]
fn every_hostile_request_gets_its_code_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sys = Arc::new(cases::system());
    let state_dir = dir.path().join("state");
    let store = Arc::new(FileStore::new(&state_dir));
    let policy = cases::policy();
    let (m, _) = VolumeManager::new(sys.clone(), store, ManagerOptions { policy }).unwrap();
    let addr: Address = format!("unix://{}/kv.sock", dir.path().display())
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = Arc::new(m);
    let listening = rt
        .block_on(async { service::bind(&addr, service::discard())?.start(m).await })
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(listening.run(async {
        let _ = stopped.await;
    }));
    let addr_s = addr.to_string();
    let connect = || {
        KataVolumeClient::new(
            rt.block_on(async { ttrpc::r#async::Client::connect(&addr_s).await })
                .unwrap(),
        )
    };
    let mut client = connect();
    let max_frame = service::max_frame_bytes(cases::policy().max_request_bytes);
    let ctx = || context::with_duration(Duration::from_secs(20));

    // One legitimate volume stays mounted throughout.
    let busy = format!("{}/busy/rootfs", cases::ROOT);
    rt.block_on(client.add_storage(ctx(), &pb_storage(&cases::good(&busy))))
        .unwrap();
    let before = sys.snapshot();
    let state_file = state_dir.join(kata_volume::manager::STATE_FILE);
    let saved = std::fs::read(&state_file).unwrap();

    let all = cases::cases();
    assert!(all.len() >= 100);
    let mut failures = Vec::new();
    for c in &all {
        let req = pb_storage(&c.storage);
        if protobuf::Message::compute_size(&req) > max_frame {
            match rt.block_on(client.add_storage(ctx(), &req)) {
                Err(ttrpc::Error::RpcStatus(s)) => {
                    failures.push(format!("{}: answered {s:?}, not closed", c.name));
                }
                Err(_) => client = connect(),
                Ok(v) => failures.push(format!("{}: accepted: {v:?}", c.name)),
            }
            continue;
        }
        match rt.block_on(client.add_storage(ctx(), &req)) {
            Ok(v) => failures.push(format!("{}: accepted: {v:?}", c.name)),
            Err(ttrpc::Error::RpcStatus(s)) => {
                if s.code() != status::code(c.want) {
                    failures.push(format!(
                        "{}: {:?} instead of {:?}: {}",
                        c.name,
                        s.code(),
                        status::code(c.want),
                        s.message()
                    ));
                }
                if s.message().is_empty() || s.message().contains('\n') {
                    failures.push(format!("{}: message {:?}", c.name, s.message()));
                }
            }
            Err(e) => failures.push(format!("{}: transport error {e:?}", c.name)),
        }
        if sys.snapshot() != before {
            failures.push(format!("{}: left something: {:?}", c.name, sys.snapshot()));
        }
        if std::fs::read(&state_file).unwrap() != saved {
            failures.push(format!("{}: changed the state file", c.name));
        }
        // Still up.
        rt.block_on(client.version(ctx(), &pb::VersionRequest::new()))
            .unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // A valid but different volume at the busy mount point: ALREADY_EXISTS, as in the VM.
    let e = rt
        .block_on(client.add_storage(ctx(), &pb_storage(&cases::other_volume(&busy))))
        .unwrap_err();
    match e {
        ttrpc::Error::RpcStatus(s) => {
            assert_eq!(s.code(), ttrpc::Code::ALREADY_EXISTS, "{}", s.message());
            assert!(
                s.message().contains("already holds a different volume"),
                "{}",
                s.message()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sys.snapshot(), before);
    let again = rt
        .block_on(client.add_storage(ctx(), &pb_storage(&cases::good(&busy))))
        .unwrap();
    assert!(again.already_present);
    assert_eq!(sys.snapshot(), before);

    let _ = stop.send(());
    rt.block_on(server).unwrap();
}
