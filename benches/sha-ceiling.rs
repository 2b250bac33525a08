//! The machine's limit for hash trees: SHA-256 of many messages of one size (512 and 4096
//! bytes, each padded in full: 9 and 65 compressions), hashed by the engine's own code
//! ([`Hasher`]: two messages at a time, their rounds interleaved on the SHA extensions, where
//! the CPU has them), from a buffer that stays in the core's cache, on one thread per core,
//! all at once. No I/O and no tree: only the hashing, as fast as the cores do it.
//!
//! ```text
//! cargo bench --features engine --bench sha-ceiling [-- --seconds S --rounds N --sizes 512,4096]
//! ```
//!
//! Prints, for each size, the median over the rounds of: all cores together, one core alone,
//! and the same for the portable code (`sha2`, one message at a time: what the engine runs
//! without SHA extensions); then, for `benches/verity.sh`, one line per size for the engine's
//! code on all cores: `ceiling <size> <bytes per second> <bytes per CPU second>`. The second
//! rate counts the hashing threads' own time on a CPU (`/proc/thread-self/schedstat`), so
//! that it means something on a machine busy with other work, where the first does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Barrier;
use std::time::{Duration, Instant};

use kata_volume::verity::engine::Hasher;
use kata_volume::verity::{HashAlgorithm, Salt};

/// Bytes of messages each thread hashes over and over (fits a core's L2 cache).
const BUFFER: usize = 128 * 1024;

struct Options {
    seconds: f64,
    rounds: usize,
    sizes: Vec<usize>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 0.5,
        rounds: 5,
        sizes: vec![512, 4096],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                o.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            "--sizes" => {
                o.sizes = args
                    .next()
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.parse().expect("--sizes 512,4096"))
                            .collect()
                    })
                    .expect("--sizes 512,4096");
            }
            // `cargo bench` passes `--bench`; anything else is a mistake.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        o.rounds > 0 && o.seconds > 0.0,
        "--rounds and --seconds must be positive"
    );
    assert!(
        o.sizes.iter().all(|&s| s > 0 && BUFFER.is_multiple_of(s)),
        "sizes must divide {BUFFER}"
    );
    o
}

/// The calling thread's time on a CPU so far, in nanoseconds.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()))
        .expect("/proc/thread-self/schedstat")
}

/// A measure: bytes per second of wall time and per second of CPU time.
#[derive(Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: f64,
}

/// How fast `threads` threads at once hash, each `size`-byte messages out of its own buffer
/// for `seconds`.
fn rate(hasher: &Hasher, size: usize, threads: usize, seconds: f64) -> Rate {
    let barrier = Barrier::new(threads + 1);
    let run = Duration::from_secs_f64(seconds);
    let (start, results) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let messages: Vec<u8> = (0..BUFFER)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13 ^ t).to_le_bytes()[0])
                        .collect();
                    let mut digests = vec![0u8; BUFFER / size * 32];
                    barrier.wait();
                    let (start, cpu) = (Instant::now(), cpu_ns());
                    let mut bytes = 0u64;
                    while start.elapsed() < run {
                        hasher.hash_blocks(&messages, size, &mut digests, 32);
                        bytes += BUFFER as u64;
                    }
                    std::hint::black_box(&digests);
                    (bytes, Instant::now(), cpu_ns() - cpu)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        (
            start,
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .collect::<Vec<_>>(),
        )
    });
    let bytes = results.iter().map(|r| r.0).sum::<u64>() as f64;
    let end = results.iter().map(|r| r.1).max().unwrap();
    let cpu = results.iter().map(|r| r.2).sum::<u64>() as f64 / 1e9;
    Rate {
        wall: bytes / end.duration_since(start).as_secs_f64(),
        cpu: bytes / cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let o = options();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = Hasher::new(HashAlgorithm::Sha256, &Salt::none());
    let portable = Hasher::portable(HashAlgorithm::Sha256, &Salt::none());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "sha-ceiling: {model}, {cores} cores; the engine hashes {} message{} at a time{}",
        engine.lanes(),
        if engine.lanes() == 1 { "" } else { "s" },
        if engine.lanes() > 1 {
            " (SHA extensions)"
        } else {
            " (no SHA extensions)"
        },
    );
    println!(
        "medians of {} rounds of {} s; MB/s of message bytes (1 MB = 10^6 bytes)",
        o.rounds, o.seconds
    );
    println!(
        "| message | engine, {cores} cores | engine, 1 core | sha2, {cores} cores | sha2, 1 core |"
    );
    println!("|---|---|---|---|---|");
    let mut ceilings = Vec::new();
    for &size in &o.sizes {
        // Rounds alternate between the measures, so that a busy moment hits them alike.
        let mut m: [Vec<Rate>; 4] = Default::default();
        for _ in 0..o.rounds {
            m[0].push(rate(&engine, size, cores, o.seconds));
            m[1].push(rate(&engine, size, 1, o.seconds));
            m[2].push(rate(&portable, size, cores, o.seconds));
            m[3].push(rate(&portable, size, 1, o.seconds));
        }
        let wall = m
            .each_ref()
            .map(|r| median(r.iter().map(|r| r.wall).collect()));
        let cpu = median(m[0].iter().map(|r| r.cpu).collect());
        println!(
            "| {size} | {:.0} ({:.0} per CPU s) | {:.0} | {:.0} | {:.0} |",
            wall[0] / 1e6,
            cpu / 1e6,
            wall[1] / 1e6,
            wall[2] / 1e6,
            wall[3] / 1e6
        );
        ceilings.push((size, wall[0], cpu));
    }
    for (size, wall, cpu) in ceilings {
        println!("ceiling {size} {wall:.0} {cpu:.0}");
    }
}
