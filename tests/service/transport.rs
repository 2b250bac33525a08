//! Connection limits seen from raw sockets: a frame header declaring more than the policy's
//! request size (plus headroom) closes the connection before anything is allocated for it; a
//! frame trickled byte by byte is cut off at the frame deadline; an idle connection is closed,
//! one waiting for its answer is not; connections over the cap are closed at once while those
//! under it work; a client that sends requests and never reads its answers is closed after
//! the frame time.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;

use super::*;

/// A raw connection to the daemon's socket.
fn raw(d: &Daemon) -> UnixStream {
    UnixStream::connect(d.addr.unix_path().unwrap()).unwrap()
}

/// A ttrpc frame header: length, stream id, type (1: request), flags.
fn header(length: u32) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[..4].copy_from_slice(&length.to_be_bytes());
    h[4..8].copy_from_slice(&1u32.to_be_bytes());
    h[8] = 1;
    h
}

/// How long until the daemon closed `s` (end of file or reset), if within `limit`.
fn closed_within(s: &mut UnixStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
}

fn version_works(c: &KataVolumeClient, d: &Daemon) -> bool {
    d.rt.block_on(c.version(within(Duration::from_secs(5)), &pb::VersionRequest::new()))
        .is_ok()
}

#[test]
fn a_header_declaring_4_mib_closes_the_connection() {
    let d = Daemon::start(fake(1), &ServeOptions::default());
    for length in [4 << 20, 1 << 20] {
        let mut s = raw(&d);
        s.write_all(&header(length)).unwrap();
        let closed = closed_within(&mut s, Duration::from_secs(3));
        assert!(
            closed.is_some(),
            "a header declaring {length} bytes was kept"
        );
        let line = d.logs.matching(&["WARN", &length.to_string()]);
        assert_eq!(line.len(), 1, "{:#?}", d.logs.lines());
    }
    // A frame of an acceptable size is waited for, not cut off.
    let mut s = raw(&d);
    s.write_all(&header(200 * 1024)).unwrap();
    assert_eq!(closed_within(&mut s, Duration::from_millis(500)), None);
    assert!(version_works(&d.client(), &d));
}

#[test]
fn a_trickled_frame_is_closed_after_the_frame_deadline() {
    let opts = ServeOptions {
        frame_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let d = Daemon::start(fake(1), &opts);
    let mut s = raw(&d);
    let mut w = s.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut frame = header(64).to_vec();
        frame.extend_from_slice(&[0u8; 64]);
        for b in frame {
            if w.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let closed = closed_within(&mut s, Duration::from_secs(3));
    let t = closed.expect("a frame trickled over 3 s was kept open");
    assert!(t >= Duration::from_millis(250), "closed after {t:?}");
    assert!(t < Duration::from_millis(1500), "closed after {t:?}");
    trickle.join().unwrap();
    assert_eq!(
        d.logs.matching(&["WARN", "frame"]).len(),
        1,
        "{:#?}",
        d.logs.lines()
    );
    assert!(version_works(&d.client(), &d));
}

#[test]
fn an_idle_connection_is_closed_but_not_one_awaiting_its_answer() {
    let sys = fake(1);
    sys.delay(Op::Mount, Duration::from_millis(900));
    let opts = ServeOptions {
        idle_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let d = Daemon::start(sys, &opts);
    let mut s = raw(&d);
    let t = closed_within(&mut s, Duration::from_secs(3)).expect("an idle connection was kept");
    assert!(t >= Duration::from_millis(250), "closed after {t:?}");
    // Three times the idle time without a byte either way, while its request runs.
    let c = d.client();
    let mp = format!("{ROOT}/c1/rootfs");
    let v = d.rt.block_on(c.add_storage(long(), &storage(0, &mp)));
    assert_eq!(v.unwrap().mount_point, mp);
}

#[test]
fn connections_over_the_cap_are_closed_and_those_under_it_work() {
    let opts = ServeOptions {
        max_connections: 2,
        ..ServeOptions::default()
    };
    let d = Daemon::start(fake(1), &opts);
    let mut held = raw(&d);
    let c = d.client();
    assert!(version_works(&c, &d));
    // The third is closed as soon as it is accepted.
    let mut third = raw(&d);
    assert!(closed_within(&mut third, Duration::from_secs(2)).is_some());
    assert_eq!(
        d.logs.matching(&["WARN", "too many connections"]).len(),
        1,
        "{:#?}",
        d.logs.lines()
    );
    // Those under the cap still work.
    assert!(version_works(&c, &d));
    held.write_all(&[]).unwrap();
    drop(held);
    // The closed one's place is free again.
    let free = eventually(Duration::from_secs(3), || {
        let addr = d.addr.to_string();
        let Ok(c) =
            d.rt.block_on(async { ttrpc::r#async::Client::connect(&addr).await })
        else {
            return false;
        };
        version_works(&KataVolumeClient::new(c), &d)
    });
    assert!(free, "a connection's place was not given back");
}

#[test]
fn a_connection_with_16_requests_in_progress_is_not_read_further_until_one_is_answered() {
    let sys = fake(32);
    sys.delay(Op::Mount, Duration::from_millis(500));
    let opts = ServeOptions {
        max_in_flight: 64,
        ..ServeOptions::default()
    };
    let d = Daemon::start(sys, &opts);
    let c = d.client();
    let t = Instant::now();
    let done = d.rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (c, s) = (c.clone(), storage(i, &format!("{ROOT}/c{i}/rootfs")));
                tokio::spawn(async move { c.add_storage(long(), &s).await })
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            task.await.unwrap().unwrap();
            done += 1;
        }
        done
    });
    assert_eq!(done, 32);
    // Sixteen at a time: the seventeenth is read only once one of the first is answered, so
    // its mount (500 ms) starts 500 ms late. (All 32 at once take about 500 ms.)
    assert!(
        t.elapsed() >= Duration::from_millis(990),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(d.sys.snapshot().mounts.len(), 32);
}

/// A ttrpc request frame calling `Version` (an empty request) on stream `id`.
fn version_frame(id: u32) -> Vec<u8> {
    let (service, method) = (b"katavolume.v1.KataVolume", b"Version");
    // The ttrpc Request message: field 1 the service, field 2 the method (no payload: an
    // empty VersionRequest).
    let mut msg = vec![0x0a, u8::try_from(service.len()).unwrap()];
    msg.extend_from_slice(service);
    msg.extend_from_slice(&[0x12, u8::try_from(method.len()).unwrap()]);
    msg.extend_from_slice(method);
    let mut frame = header(u32::try_from(msg.len()).unwrap()).to_vec();
    frame[4..8].copy_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_after_the_frame_time() {
    let opts = ServeOptions {
        max_connections: 1,
        frame_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let d = Daemon::start(fake(1), &opts);
    let s = raw(&d);
    // The first request is answered: the daemon speaks to this client.
    let mut first = s.try_clone().unwrap();
    first.write_all(&version_frame(1)).unwrap();
    let mut head = [0u8; 10];
    first.read_exact(&mut head).unwrap();
    assert_eq!(head[8], 2, "a response frame");
    // Then requests and never a read: the answers fill the socket and the daemon's writes
    // wait. The sender stops when the daemon closes the connection (or after 200 000).
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u32;
        while sent < 200_000 && w.write_all(&version_frame(3 + 2 * sent)).is_ok() {
            sent += 1;
        }
        sent
    });
    let logged = eventually(Duration::from_secs(20), || {
        !d.logs
            .matching(&["WARN", "did not take its answers in time"])
            .is_empty()
    });
    assert!(logged, "{:#?}", d.logs.lines());
    // Its place under the cap (one) is free again: a new client is served.
    let free = eventually(Duration::from_secs(5), || {
        let addr = d.addr.to_string();
        let Ok(c) =
            d.rt.block_on(async { ttrpc::r#async::Client::connect(&addr).await })
        else {
            return false;
        };
        version_works(&KataVolumeClient::new(c), &d)
    });
    assert!(free, "the connection that never read kept its place");
    let sent = sender.join().unwrap();
    assert!(sent < 200_000, "the daemon read every request: {sent}");
    drop(s);
}
