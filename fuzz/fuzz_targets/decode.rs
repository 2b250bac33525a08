//! The volume decoder on any input: as the option text itself, and as the base64 payload of
//! an option. Never panics; errors are one line; whatever decodes re-encodes to the same wire
//! struct; whatever validates round-trips through `to_wire` and can be planned without panic.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::plan;
use kata_volume::resolve::Source;
use kata_volume::system::DevNum;
use kata_volume::verity::units::Bytes;
use kata_volume::volume::{Volume, decode, encode_option};
use libfuzzer_sys::fuzz_target;

fn check(input: &str) {
    let wire = match decode(input) {
        Ok(w) => w,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
            return;
        }
    };
    assert_eq!(
        decode(&encode_option(&wire)).as_ref(),
        Ok(&wire),
        "wire round trip"
    );
    let volume = match Volume::from_wire(&wire) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
            return;
        }
    };
    assert_eq!(
        Volume::from_wire(&volume.to_wire()).as_ref(),
        Ok(&volume),
        "typed round trip"
    );
    let Some(params) = volume.verity() else {
        return;
    };
    for size in [0, 1 << 20, u64::MAX] {
        let device = Source::Block {
            path: "/dev/vdb".into(),
            dev: DevNum {
                major: 254,
                minor: 16,
            },
            size: Bytes(size),
            logical_block_size: Bytes(512),
        };
        if let Err(e) = plan::verity(params, &device, Vec::new()) {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error {msg:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    check(&format!(
        "io.katacontainers.volume={}",
        STANDARD.encode(data)
    ));
});
