//! The messages, client and server glue generated from `proto/kata_volume.proto` by
//! `build.rs` (ttrpc-codegen, into `OUT_DIR`). Generated code: lints do not apply.

#![allow(
    missing_docs,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::undocumented_unsafe_blocks
)]

include!(concat!(env!("OUT_DIR"), "/modules.rs"));
