//! Guest addresses and uevents on any bytes: never a panic; errors are one line; an accepted
//! address prints in its canonical form, which parses back to the same address; a parsed
//! uevent has an absolute DEVPATH. The first byte picks the source_type.
#![no_main]

use kata_volume::address::{GuestAddress, Uevent};
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 8] = [
    None,
    Some("virtio_pci"),
    Some("scsi"),
    Some("virtio_mmio"),
    Some("pmem"),
    Some("virtio_ccw"),
    Some("ccw"),
    Some("virtio-blk"),
];

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = Uevent::parse(data) {
        assert!(ev.devpath.starts_with('/'), "{ev:?}");
    }
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(source) = std::str::from_utf8(rest) else {
        return;
    };
    let ty = TYPES[usize::from(first) % TYPES.len()];
    match GuestAddress::parse(ty, source) {
        Ok(a) => {
            let canonical = a.to_string();
            assert_eq!(
                GuestAddress::parse(ty, &canonical).ok().as_ref(),
                Some(&a),
                "{canonical}"
            );
            assert_eq!(a.source_type().map(|t| t.as_str()).is_some(), ty.is_some());
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error {e}"),
    }
});
