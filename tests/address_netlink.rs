//! The kernel's uevent socket, on the host (no root needed to listen): it opens, waits
//! quietly, and is closed when the subscription is dropped. Real events from real disks are
//! the VM suite's (`vm-tests`, scenario `resolve`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use kata_volume::address::{NetlinkSubscription, NetlinkUevents, Received, UeventSource, Uevents};

fn fd_target(fd: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
}

#[test]
fn the_socket_opens_waits_and_closes() {
    let mut sub = NetlinkSubscription::open().expect("a NETLINK_KOBJECT_UEVENT socket");
    let fd = sub.fd().as_raw_fd();
    let target = fd_target(fd).unwrap();
    assert!(
        target.to_string_lossy().starts_with("socket:["),
        "{target:?}"
    );
    let t0 = Instant::now();
    // whatever the host's kernel says in the meantime, a receive ends by the time given
    loop {
        match sub.recv(Duration::from_millis(100)).unwrap() {
            Received::Idle => break,
            Received::Event(ev) => assert!(ev.devpath.starts_with('/'), "{ev:?}"),
            Received::Lost => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never idle");
    }
    drop(sub);
    // the descriptor number may be reused by another test's file, never by this socket
    assert_ne!(fd_target(fd), Some(target), "the socket is still open");
}

#[test]
fn subscribing_through_the_trait_gives_a_working_source() {
    let mut src = NetlinkUevents.subscribe().unwrap();
    assert!(src.recv(Duration::ZERO).is_ok());
}
