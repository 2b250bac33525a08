//! Decode + validate + plan of a realistic volume option, as the guest does for every mount
//! request: `io.katacontainers.volume=<base64>` → wire struct → typed `Volume` → dm-verity
//! table, device-mapper name and mount spec. The figure to watch is `decode_validate_plan`
//! in options per second (goal: 500,000 on one core); the other benchmarks split it up.
//!
//! Run: `cargo bench --bench decode` (results: `benches/RESULTS-decode.md`).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kata_volume::plan::{BlockDevice, DEFAULT_FS_OPTIONS, plan};
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

fn device() -> BlockDevice {
    BlockDevice {
        path: "/dev/vdb".into(),
        identity: "254:16".into(),
        size: Bytes(64 << 20),
        logical_block_size: Bytes(512),
    }
}

fn benches(c: &mut Criterion) {
    let option = option();
    // Check once that the case is what it claims to be: a valid volume with a verity plan.
    let v = match Volume::parse(&option) {
        Ok(v) => v,
        Err(e) => fail(&format!("the benchmark's option is refused: {e}")),
    };
    match plan(&v, device(), Vec::new(), DEFAULT_FS_OPTIONS) {
        Ok(p) if p.verity.is_some() => {}
        other => fail(&format!(
            "the benchmark's volume does not plan a verity device: {other:?}"
        )),
    }

    let mut g = c.benchmark_group("option");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_validate_plan", |b| {
        b.iter(|| {
            let v = Volume::parse(black_box(&option)).ok()?;
            plan(&v, device(), Vec::new(), DEFAULT_FS_OPTIONS).ok()
        });
    });
    g.bench_function("decode", |b| b.iter(|| decode(black_box(&option))));
    g.bench_function("decode_validate", |b| {
        b.iter(|| Volume::parse(black_box(&option)))
    });
    g.bench_function("plan", |b| {
        b.iter(|| plan(black_box(&v), device(), Vec::new(), DEFAULT_FS_OPTIONS))
    });
    g.finish();
}

fn fail(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(1)
}

criterion_group!(decode_benches, benches);
criterion_main!(decode_benches);
