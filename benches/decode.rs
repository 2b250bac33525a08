//! Placeholder: the decode benchmark is being written.
fn main() {}
