//! One level of the tree, in parallel: hash a run of child blocks (data blocks, or the hash
//! blocks of the level below) and either write the parent hash blocks or compare them with
//! the stored ones.
//!
//! The children are cut into chunks of whole parent blocks (about [`TARGET_CHUNK`] bytes, so
//! a chunk stays in the core's cache between `pread` and hashing); rayon spreads the chunks
//! over the cores, each worker reading with positional I/O into its own reused buffers. The
//! memory used is a few chunks per thread, whatever the image size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::EngineError;
use super::hasher::BlockHasher;
use super::progress::Progress;

/// Bytes of child blocks hashed per chunk (rounded to whole parent blocks, at least one).
const TARGET_CHUNK: usize = 256 * 1024;

/// A run of equally sized blocks in a file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Blocks<'a> {
    /// The file.
    pub file: &'a File,
    /// Its path, for error messages.
    pub path: &'a Path,
    /// Byte offset of the first block.
    pub offset: u64,
    /// Block size in bytes.
    pub block_size: usize,
    /// Number of blocks.
    pub count: u64,
}

/// Where the parent level lives and how its blocks are laid out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parents<'a> {
    /// The hash file (or the image).
    pub file: &'a File,
    /// Its path, for error messages.
    pub path: &'a Path,
    /// Byte offset of the level's first hash block.
    pub offset: u64,
    /// Hash block size in bytes.
    pub block_size: usize,
    /// Bytes per digest slot (`block_size / slot` digests per block).
    pub slot: usize,
    /// Digest size in bytes (at most `slot`; the rest of the slot is zero).
    pub digest: usize,
}

/// Write the parent level, or compare it with what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Compute and write the parent blocks.
    Write,
    /// Compute and compare; report the first child whose digest differs.
    Verify,
}

/// Per-worker buffers, reused across chunks.
#[derive(Default)]
struct Buffers {
    children: Vec<u8>,
    parents: Vec<u8>,
    stored: Vec<u8>,
}

/// What [`Mode::Verify`] found wrong in a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// The first child whose digest does not match its stored slot.
    Child(u64),
    /// Every digest matches, but a parent block is not what `format` writes: the byte at
    /// this offset of the hash device, in a slot's padding or in a slot past the last child,
    /// is not zero (the kernel never reads it; veritysetup's verify refuses it too).
    Padding(u64),
}

/// Hashes `children` into `parents`. In [`Mode::Verify`], returns the first mismatch: a
/// child's digest, else a parent block's padding.
pub(super) fn run(
    hasher: &BlockHasher,
    children: &Blocks<'_>,
    parents: &Parents<'_>,
    mode: Mode,
    progress: &Progress<'_>,
) -> Result<Option<Mismatch>, EngineError> {
    let per_parent = (parents.block_size / parents.slot.max(1)).max(1);
    let group = per_parent.saturating_mul(children.block_size).max(1);
    let per_chunk = per_parent * (TARGET_CHUNK / group).max(1);
    let per_chunk_u64 = per_chunk as u64;
    let chunks = children.count.div_ceil(per_chunk_u64);
    let first_bad = AtomicU64::new(u64::MAX);
    let first_bad_padding = AtomicU64::new(u64::MAX);

    (0..chunks).into_par_iter().try_for_each_init(
        Buffers::default,
        |bufs, chunk| -> Result<(), EngineError> {
            let first = chunk * per_chunk_u64;
            if mode == Mode::Verify && first > first_bad.load(Ordering::Relaxed) {
                return Ok(());
            }
            // At most `per_chunk`, so it fits.
            let n = usize::try_from((children.count - first).min(per_chunk_u64)).unwrap_or(0);
            let bytes = n * children.block_size;
            bufs.children.resize(bytes, 0);
            let at = children.offset + first * children.block_size as u64;
            children
                .file
                .read_exact_at(&mut bufs.children, at)
                .map_err(EngineError::io("read", children.path))?;

            let out_len = n.div_ceil(per_parent) * parents.block_size;
            bufs.parents.clear();
            bufs.parents.resize(out_len, 0);
            hasher.hash_blocks(
                &bufs.children,
                children.block_size,
                &mut bufs.parents,
                parents.slot,
            );

            let out_at = parents.offset + (first / per_parent as u64) * parents.block_size as u64;
            match mode {
                Mode::Write => parents
                    .file
                    .write_all_at(&bufs.parents, out_at)
                    .map_err(EngineError::io("write", parents.path))?,
                Mode::Verify => {
                    bufs.stored.resize(out_len, 0);
                    parents
                        .file
                        .read_exact_at(&mut bufs.stored, out_at)
                        .map_err(EngineError::io("read", parents.path))?;
                    match first_mismatch(&bufs.parents, &bufs.stored, parents, n) {
                        Some(Mismatch::Child(j)) => {
                            first_bad.fetch_min(first + j, Ordering::Relaxed);
                        }
                        Some(Mismatch::Padding(at)) => {
                            first_bad_padding.fetch_min(out_at + at, Ordering::Relaxed);
                        }
                        None => {}
                    }
                }
            }
            progress.advance(bytes as u64);
            Ok(())
        },
    )?;

    let bad = first_bad.into_inner();
    let padding = first_bad_padding.into_inner();
    Ok(if bad != u64::MAX {
        Some(Mismatch::Child(bad))
    } else {
        (padding != u64::MAX).then_some(Mismatch::Padding(padding))
    })
}

/// The first of `n` digest slots that differs between `computed` and `stored`, else the
/// offset of the first other byte that differs (padding: `computed` has zeros there).
fn first_mismatch(
    computed: &[u8],
    stored: &[u8],
    parents: &Parents<'_>,
    n: usize,
) -> Option<Mismatch> {
    if computed == stored {
        return None;
    }
    let child = computed
        .chunks_exact(parents.slot)
        .zip(stored.chunks_exact(parents.slot))
        .take(n)
        .position(|(c, s)| c.get(..parents.digest) != s.get(..parents.digest));
    match child {
        Some(j) => Some(Mismatch::Child(j as u64)),
        None => computed
            .iter()
            .zip(stored)
            .position(|(c, s)| c != s)
            .map(|at| Mismatch::Padding(at as u64)),
    }
}
