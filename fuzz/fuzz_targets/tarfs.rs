//! The tarfs block-info parser on any string: never panics, errors are one line, and whatever
//! parses is rebuilt from its own numbers to the same parameters.
#![no_main]

use kata_volume::verity::parse_tarfs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = std::str::from_utf8(data) else {
        return;
    };
    match parse_tarfs(info) {
        Ok(p) => {
            let again = format!(
                "{},{},sha256:{}",
                p.data_blocks(),
                p.hash_offset(),
                p.root_hash()
            );
            assert_eq!(parse_tarfs(&again).as_ref(), Ok(&p), "{again}");
            assert_eq!(
                (p.data_block_size().bytes(), p.hash_block_size().bytes()),
                (512, 4096)
            );
            assert!(p.hash_offset().0 >= p.data_size().0);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error {e}"),
    }
});
