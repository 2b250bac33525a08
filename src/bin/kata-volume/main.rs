//! `kata-volume`: the command-line interface (placeholder while the CLI is written).

fn main() {}
