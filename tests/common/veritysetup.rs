//! Test helpers around the real `veritysetup` (cryptsetup-bin): format and verify plain files
//! with the same parameters as the engine, and deterministic test images.
//!
//! A missing `veritysetup` fails the test with a clear message: the cross-checks are the
//! point of these tests, so they must not pass silently without it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Parameters, as veritysetup's flags.
#[derive(Debug, Clone)]
pub struct Flags {
    /// `--hash`.
    pub hash: &'static str,
    /// `--data-block-size`.
    pub data_block_size: u64,
    /// `--hash-block-size`.
    pub hash_block_size: u64,
    /// `--data-blocks`.
    pub data_blocks: u64,
    /// `--hash-offset`.
    pub hash_offset: u64,
    /// `--salt` (`-` for none).
    pub salt: String,
}

/// The hash format and the superblock: what [`Flags`] alone leaves at `--format=1
/// --no-superblock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `--format` (0 or 1).
    pub format: u32,
    /// Whether veritysetup writes a superblock at `--hash-offset` (no `--no-superblock`).
    pub superblock: bool,
}

impl Layout {
    /// `--format=1 --no-superblock`, the layout of the Kata volumes.
    pub const PLAIN: Layout = Layout {
        format: 1,
        superblock: false,
    };
}

impl Flags {
    fn args(&self) -> Vec<String> {
        self.args_with(Layout::PLAIN)
    }

    fn args_with(&self, layout: Layout) -> Vec<String> {
        let mut args = Vec::new();
        if !layout.superblock {
            args.push("--no-superblock".into());
        }
        args.extend([
            format!("--format={}", layout.format),
            format!("--hash={}", self.hash),
            format!("--data-block-size={}", self.data_block_size),
            format!("--hash-block-size={}", self.hash_block_size),
            format!("--data-blocks={}", self.data_blocks),
            format!("--hash-offset={}", self.hash_offset),
            format!("--salt={}", self.salt),
        ]);
        args
    }
}

/// The `veritysetup` binary; panics with instructions when it is not installed.
pub fn veritysetup() -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join("veritysetup");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "veritysetup not found: these tests cross-check against cryptsetup's veritysetup; \
         install it (apt-get install cryptsetup-bin) — they must not be skipped"
    );
}

/// `veritysetup format`; returns the root hash (hex).
pub fn format(data: &Path, hash: &Path, flags: &Flags) -> String {
    format_with(data, hash, flags, Layout::PLAIN)
}

/// `veritysetup format` in the given layout; returns the root hash (hex).
pub fn format_with(data: &Path, hash: &Path, flags: &Flags, layout: Layout) -> String {
    let out = Command::new(veritysetup())
        .arg("format")
        .args(flags.args_with(layout))
        .arg(data)
        .arg(hash)
        .output()
        .expect("run veritysetup");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "veritysetup format {flags:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| panic!("no root hash in veritysetup output: {stdout}"))
}

/// Whether `veritysetup verify` accepts the tree.
pub fn verify(data: &Path, hash: &Path, root: &str, flags: &Flags) -> bool {
    verify_with(data, hash, root, flags, Layout::PLAIN)
}

/// Whether `veritysetup verify` accepts the tree in the given layout.
pub fn verify_with(data: &Path, hash: &Path, root: &str, flags: &Flags, layout: Layout) -> bool {
    Command::new(veritysetup())
        .arg("verify")
        .args(flags.args_with(layout))
        .arg(data)
        .arg(hash)
        .arg(root)
        .output()
        .expect("run veritysetup")
        .status
        .success()
}

/// `veritysetup dump` of the superblock at `offset` of `hash`: its `Key: value` lines.
pub fn dump(hash: &Path, offset: u64) -> Vec<(String, String)> {
    let out = Command::new(veritysetup())
        .arg("dump")
        .arg(format!("--hash-offset={offset}"))
        .arg(hash)
        .output()
        .expect("run veritysetup");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "veritysetup dump failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `len` deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes `[offset, offset + len)` of a file.
pub fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let all = std::fs::read(path).unwrap();
    let start = usize::try_from(offset).unwrap();
    let end = start + usize::try_from(len).unwrap();
    assert!(
        all.len() >= end,
        "{} is {} bytes, want {end}",
        path.display(),
        all.len()
    );
    all[start..end].to_vec()
}

/// Flips the lowest bit of the byte at `offset`.
pub fn flip(path: &Path, offset: u64) {
    let mut all = std::fs::read(path).unwrap();
    all[usize::try_from(offset).unwrap()] ^= 1;
    std::fs::write(path, all).unwrap();
}
