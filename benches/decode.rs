//! The pure part of every mount request on a realistic volume option: parse the `Storage`
//! (`io.katacontainers.volume=<base64>` → wire struct → typed volume), authorize it against
//! the default policy, and plan it on a resolved device (dm-verity table, device-mapper name,
//! mount spec). The figure to watch is `decode_validate_plan` in requests per second (goal:
//! 500,000 on one core); the other benchmarks split it up.
//!
//! Run: `cargo bench --bench decode` (results: `benches/RESULTS-decode.md`).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kata_volume::plan::{Plan, plan};
use kata_volume::policy::Policy;
use kata_volume::request::{self, Request, Storage};
use kata_volume::resolve::{Resolved, Source, Target};
use kata_volume::system::DevNum;
use kata_volume::verity::units::Bytes;
use kata_volume::volume::{Volume, decode};

/// What nydus-snapshotter (tarfs mode) sends for one verified layer, byte for byte as Go's
/// encoder writes it: 372 bytes of JSON, a 521-byte option.
const LAYER_JSON: &str = concat!(
    r#"{"volume_type":"layer_raw_block","#,
    r#""source":"/var/lib/containerd-nydus/cache/"#,
    r#"4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1.layer.disk","#,
    r#""fs_type":"erofs","options":["ro","noatime"],"#,
    r#""dm_verity":{"hashtype":"sha256","#,
    r#""hash":"c0c3b4a8d29ff7e8a3e57bb8d1ca5f4b22b1d3ccb8a1f5d0e8d5f3c1a9e7b2d4","#,
    r#""blocknum":61440,"blocksize":512,"hashsize":4096,"offset":31457280}}"#
);

fn option() -> String {
    format!("io.katacontainers.volume={}", STANDARD.encode(LAYER_JSON))
}

fn storage(option: &str) -> Storage {
    Storage {
        source: "/dev/vdb".into(),
        options: vec![option.to_owned()],
        mount_point: "/run/kata-containers/sandbox/layers/l1".into(),
        ..Storage::default()
    }
}

fn resolved() -> Resolved {
    Resolved {
        source: Source::Block {
            path: "/dev/vdb".into(),
            dev: DevNum {
                major: 254,
                minor: 16,
            },
            size: Bytes(64 << 20),
            logical_block_size: Bytes(512),
        },
        target: Target {
            path: "/run/kata-containers/sandbox/layers/l1".into(),
            missing_dirs: Vec::new(),
        },
    }
}

/// Parse, authorize and plan one request, as the manager does before it touches anything.
fn pipeline(policy: &Policy, storage: &Storage) -> Option<Plan> {
    let Ok(Request::Volume(req)) = request::parse(storage, &policy.limits()) else {
        return None;
    };
    let auth = policy.authorize(&req).ok()?;
    plan(&auth, resolved()).ok()
}

fn benches(c: &mut Criterion) {
    let option = option();
    let storage = storage(&option);
    let policy = Policy::default();
    // Check once that the case is what it claims to be: a valid request with a verity plan.
    let req = match request::parse(&storage, &policy.limits()) {
        Ok(Request::Volume(r)) => r,
        Ok(other) => fail(&format!(
            "the benchmark's request is not a volume: {other:?}"
        )),
        Err(e) => fail(&format!("the benchmark's request is refused: {e}")),
    };
    match pipeline(&policy, &storage) {
        Some(p) if p.verity.is_some() => {}
        other => fail(&format!(
            "the benchmark's request does not plan a verity device: {other:?}"
        )),
    }

    let mut g = c.benchmark_group("option");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_validate_plan", |b| {
        b.iter(|| pipeline(&policy, black_box(&storage)));
    });
    g.bench_function("decode", |b| b.iter(|| decode(black_box(&option))));
    g.bench_function("decode_validate", |b| {
        b.iter(|| Volume::parse(black_box(&option)))
    });
    g.bench_function("authorize_plan", |b| {
        b.iter(|| plan(&policy.authorize(black_box(&req)).ok()?, resolved()).ok())
    });
    g.finish();
}

fn fail(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(1)
}

criterion_group!(decode_benches, benches);
criterion_main!(decode_benches);
