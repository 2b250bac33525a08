#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The hostile-request catalogue against the manager (fake system): each request is refused
//! with the right class of error, and leaves nothing behind.

#[path = "hostile/cases.rs"]
mod cases;

use std::sync::Arc;

use kata_volume::manager::MemStore;
use kata_volume::manager::{ErrorKind, ManagerOptions, StateStore, VolumeManager};

#[test]
fn every_hostile_request_is_refused_and_leaves_nothing() {
    let sys = Arc::new(cases::system());
    let store = Arc::new(MemStore::default());
    let (m, _) = VolumeManager::new(
        sys.clone(),
        store.clone(),
        ManagerOptions {
            policy: cases::policy(),
        },
    )
    .unwrap();
    // One legitimate volume is mounted throughout, so "conflicts" have something to hit.
    let busy = format!("{}/busy/rootfs", cases::ROOT);
    m.add_storage(&cases::good(&busy)).unwrap();
    let before = sys.snapshot();
    let saved = store.load().unwrap();
    let all = cases::cases();
    assert!(all.len() >= 100, "only {} cases", all.len());
    let mut failures = Vec::new();
    for c in &all {
        match m.add_storage(&c.storage) {
            Ok(v) => failures.push(format!("{}: accepted ({v:?})", c.name)),
            Err(e) if e.kind() != c.want => failures.push(format!(
                "{}: {:?} instead of {:?}: {e}",
                c.name,
                e.kind(),
                c.want
            )),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    !msg.is_empty() && !msg.contains('\n'),
                    "{}: {msg:?}",
                    c.name
                );
            }
        }
        if sys.snapshot() != before {
            failures.push(format!(
                "{}: left something behind: {:?}",
                c.name,
                sys.snapshot()
            ));
        }
        if store.load().unwrap() != saved {
            failures.push(format!("{}: changed the state", c.name));
        }
    }
    // A valid but different volume at the busy mount point is a conflict, and the same
    // volume again is already there.
    let e = m.add_storage(&cases::other_volume(&busy)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "Mount point {busy:?} already holds a different volume"
        )),
        "{e}"
    );
    assert_eq!(sys.snapshot(), before);
    assert!(m.add_storage(&cases::good(&busy)).unwrap().already_present);
    assert_eq!(sys.snapshot(), before);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // Still serving; the other volume was refused for the conflict alone.
    let elsewhere = format!("{}/elsewhere/rootfs", cases::ROOT);
    assert!(
        !m.add_storage(&cases::other_volume(&elsewhere))
            .unwrap()
            .already_present
    );
    assert!(m.remove_storage(&elsewhere).unwrap());
    assert!(m.remove_storage(&busy).unwrap());
}
