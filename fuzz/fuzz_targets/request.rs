//! The request handler (the manager behind the daemon) on arbitrary requests, over the fake
//! system: it never panics, a refused request leaves nothing behind (system and state file),
//! and an accepted one is removed cleanly (the whole system snapshot — dm devices, nodes, loop
//! devices, mounts, directories — and the state file as they were before the add). Input: lines — mount point, source, then options; an option line starting
//! `J:` is sent as `io.katacontainers.volume=<base64 of the rest>` to reach the JSON decoder.
#![no_main]

use std::sync::Arc;

use base64::Engine as _;
use kata_volume::manager::{ManagerOptions, MemStore, StateStore, Storage, VolumeManager};
use kata_volume::policy::Policy;
use kata_volume::system::{DevNum, FakeSystem};
use libfuzzer_sys::fuzz_target;

fn system() -> Arc<FakeSystem> {
    let f = FakeSystem::new();
    for d in ["/run", "/run/kata-containers", "/images", "/etc"] {
        f.add_dir(d);
    }
    f.add_block_device(
        "/dev/vdb",
        DevNum {
            major: 254,
            minor: 16,
        },
        64 << 20,
    );
    f.add_block_device(
        "/dev/vdc",
        DevNum {
            major: 254,
            minor: 32,
        },
        4096,
    );
    f.add_char_device("/dev/null");
    f.add_file("/images/a.img", 64 << 20);
    f.add_symlink("/run/kata-containers/evil", "/etc");
    Arc::new(f)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mount_point = lines.next().unwrap_or_default().to_owned();
    let source = lines.next().unwrap_or_default().to_owned();
    let options: Vec<String> = lines
        .map(|l| match l.strip_prefix("J:") {
            Some(json) => format!(
                "io.katacontainers.volume={}",
                base64::engine::general_purpose::STANDARD.encode(json)
            ),
            None => l.to_owned(),
        })
        .collect();
    let storage = Storage {
        source,
        options,
        mount_point: mount_point.clone(),
        ..Default::default()
    };

    let sys = system();
    let policy = Policy {
        allow_files: true,
        allowed_sources: vec!["/dev/*".into(), "/images/*".into()],
        ..Policy::default()
    };
    let store = Arc::new(MemStore::default());
    let Ok((m, _)) = VolumeManager::new(sys.clone(), store.clone(), ManagerOptions { policy })
    else {
        return;
    };
    let before = sys.snapshot();
    let saved = store.load().ok();
    match m.add_storage(&storage) {
        Ok(v) => {
            assert!(
                !v.already_present,
                "a fresh manager found the volume already there"
            );
            assert_eq!(m.list().len(), 1, "an accepted volume is listed");
            assert_eq!(
                m.remove_storage(&mount_point).ok(),
                Some(true),
                "remove after a successful add failed"
            );
            // Everything as before: dm devices, nodes, loops, mounts, directories, the state.
            assert_eq!(
                sys.snapshot(),
                before,
                "remove after a successful add left something"
            );
            assert_eq!(store.load().ok(), saved, "state left after remove");
            assert!(m.list().is_empty(), "still listed after remove");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "bad message {msg:?}"
            );
            assert_eq!(
                sys.snapshot(),
                before,
                "refused request left something: {msg}"
            );
            assert_eq!(
                store.load().ok(),
                saved,
                "refused request changed the state: {msg}"
            );
            assert!(m.list().is_empty(), "refused request listed: {msg}");
        }
    }
});
