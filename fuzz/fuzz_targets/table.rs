//! The dm-verity table parsers on any string: never panic, errors are one line, and whatever
//! parses prints to text that parses back to the same table.
#![no_main]

use kata_volume::verity::{VerityTable, VerityTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<VerityTable>() {
        Ok(t) => {
            let printed = t.to_string();
            assert_eq!(printed.parse::<VerityTable>().as_ref(), Ok(&t), "{printed}");
            assert!(t.length.0 >= 1 && t.target.length().is_some_and(|l| t.length <= l));
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error {e}"),
    }
    match text.parse::<VerityTarget>() {
        Ok(t) => {
            let printed = t.to_string();
            assert_eq!(
                printed.parse::<VerityTarget>().as_ref(),
                Ok(&t),
                "{printed}"
            );
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error {e}"),
    }
});
