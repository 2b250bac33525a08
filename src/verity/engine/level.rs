//! One level of the tree, on every core: hash a run of child blocks (data blocks, or the hash
//! blocks of the level below) and either write the parent hash blocks or compare them with
//! the stored ones.
//!
//! The children are cut into chunks of whole parent blocks (about [`Tuning::chunk`] bytes).
//! One worker per core (rayon's pool) takes chunks in file order from a shared counter, so
//! the files are read and the tree is written front to back: the kernel's read-ahead and
//! writeback see one sequential stream. A chunk is hashed where it sits in the page cache,
//! through a [`Map`] populated before and released after; a file that cannot be mapped is
//! read with `pread` into the worker's buffer instead. Memory: a chunk or two per worker,
//! whatever the image size.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::EngineError;
use super::hasher::BlockHasher;
use super::mapped::Map;
use super::progress::Progress;
use super::writeback::Writeback;

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
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode<'w, 's> {
    /// Compute and write the parent blocks, telling the writeback thread.
    Write(&'w Writeback<'s>),
    /// Compute and compare; report the first child whose digest differs.
    Verify,
}

/// How the blocks are read and cut up; [`Tuning::default`] everywhere but in tests, which
/// use small chunks and both ways of reading to reach every boundary on small images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tuning {
    /// Bytes of child blocks per chunk (rounded to whole parent blocks, at least one). By
    /// default one huge page (2 MiB, a multiple of every parent block's children): a chunk
    /// of the data is then released whole, and a huge page's mapping is dropped in one
    /// piece instead of being split first.
    pub chunk: usize,
    /// Map the files, or copy them out with `pread`.
    pub read: Read,
    /// Bytes of tree written between two background syncs (see [`Writeback`]).
    pub sync_every: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            chunk: 2 << 20,
            read: Read::Map,
            sync_every: 8 << 20,
        }
    }
}

/// How a worker gets at a chunk's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// In place, through a read-only map (`pread` where mapping fails).
    Map,
    /// Copied into a buffer with `pread`.
    #[cfg_attr(not(test), expect(dead_code, reason = "only tests choose to copy"))]
    Copy,
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
    mode: Mode<'_, '_>,
    progress: &Progress<'_>,
    tuning: &Tuning,
) -> Result<Option<Mismatch>, EngineError> {
    let per_parent = (parents.block_size / parents.slot.max(1)).max(1);
    let group = per_parent.saturating_mul(children.block_size).max(1);
    let per_chunk = per_parent * (tuning.chunk / group).max(1);
    let parent_count = children.count.div_ceil(per_parent as u64);
    let pass = Pass {
        hasher,
        children,
        parents,
        mode,
        progress,
        per_parent,
        per_chunk: per_chunk as u64,
        chunks: children.count.div_ceil(per_chunk as u64),
        kids: map(
            tuning,
            children.file,
            children.offset,
            children.count,
            children.block_size,
        ),
        stored: match mode {
            Mode::Verify => map(
                tuning,
                parents.file,
                parents.offset,
                parent_count,
                parents.block_size,
            ),
            Mode::Write(_) => None,
        },
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_bad: AtomicU64::new(u64::MAX),
        first_bad_padding: AtomicU64::new(u64::MAX),
    };
    let results = rayon::broadcast(|_| pass.work());
    results.into_iter().collect::<Result<(), _>>()?;

    let bad = pass.first_bad.into_inner();
    let padding = pass.first_bad_padding.into_inner();
    Ok(if bad != u64::MAX {
        Some(Mismatch::Child(bad))
    } else {
        (padding != u64::MAX).then_some(Mismatch::Padding(padding))
    })
}

/// A map of `count` blocks of `block_size` from `offset`, when `tuning` says to map and the
/// kernel agrees; else `None`, and the blocks are read with `pread`.
fn map<'f>(
    tuning: &Tuning,
    file: &'f File,
    offset: u64,
    count: u64,
    block_size: usize,
) -> Option<Map<'f>> {
    let len = usize::try_from(count).ok()?.checked_mul(block_size)?;
    match tuning.read {
        Read::Map => Map::new(file, offset, len).ok(),
        Read::Copy => None,
    }
}

/// One level's work, shared by the workers.
struct Pass<'a, 'w, 's> {
    hasher: &'a BlockHasher,
    children: &'a Blocks<'a>,
    parents: &'a Parents<'a>,
    mode: Mode<'w, 's>,
    progress: &'a Progress<'a>,
    /// Children per parent block.
    per_parent: usize,
    /// Children per chunk (whole parent blocks).
    per_chunk: u64,
    /// Number of chunks.
    chunks: u64,
    /// The children, mapped.
    kids: Option<Map<'a>>,
    /// The stored parent level, mapped ([`Mode::Verify`]).
    stored: Option<Map<'a>>,
    /// The next chunk to take.
    next: AtomicU64,
    /// Set by a worker that failed: the others stop.
    stop: AtomicBool,
    first_bad: AtomicU64,
    first_bad_padding: AtomicU64,
}

/// A worker's buffers, reused across chunks.
#[derive(Default)]
struct Buffers {
    children: Vec<u8>,
    parents: Vec<u8>,
    stored: Vec<u8>,
}

impl Pass<'_, '_, '_> {
    /// Takes chunks until there are none left (or another worker failed, or, verifying, every
    /// chunk left comes after a child already found bad).
    fn work(&self) -> Result<(), EngineError> {
        let mut bufs = Buffers::default();
        while !self.stop.load(Ordering::Relaxed) {
            let chunk = self.next.fetch_add(1, Ordering::Relaxed);
            if chunk >= self.chunks {
                break;
            }
            let first = chunk * self.per_chunk;
            if matches!(self.mode, Mode::Verify) && first > self.first_bad.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = self.chunk(first, &mut bufs) {
                self.stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Hashes the chunk starting at child `first`, then writes or checks its parents.
    fn chunk(&self, first: u64, bufs: &mut Buffers) -> Result<(), EngineError> {
        let (children, parents) = (self.children, self.parents);
        // At most `per_chunk`, and the whole run fits in memory when mapped.
        let n = usize::try_from((children.count - first).min(self.per_chunk)).unwrap_or(0);
        let bytes = n * children.block_size;
        let at = first * children.block_size as u64;
        let kids = read(
            self.kids.as_ref(),
            children.file,
            children.offset,
            at..at + bytes as u64,
            &mut bufs.children,
        )
        .map_err(EngineError::io("read", children.path))?;

        let out_len = n.div_ceil(self.per_parent) * parents.block_size;
        bufs.parents.clear();
        bufs.parents.resize(out_len, 0);
        self.hasher
            .hash_blocks(kids, children.block_size, &mut bufs.parents, parents.slot);
        if let Some(map) = &self.kids {
            map.release(span(at..at + bytes as u64));
        }

        let parent_at = (first / self.per_parent as u64) * parents.block_size as u64;
        let out_at = parents.offset + parent_at;
        match self.mode {
            Mode::Write(writeback) => {
                parents
                    .file
                    .write_all_at(&bufs.parents, out_at)
                    .map_err(EngineError::io("write", parents.path))?;
                writeback.wrote(out_len as u64);
            }
            Mode::Verify => {
                let range = parent_at..parent_at + out_len as u64;
                let stored = read(
                    self.stored.as_ref(),
                    parents.file,
                    parents.offset,
                    range.clone(),
                    &mut bufs.stored,
                )
                .map_err(EngineError::io("read", parents.path))?;
                let found = first_mismatch(&bufs.parents, stored, parents, n);
                if let Some(map) = &self.stored {
                    map.release(span(range));
                }
                match found {
                    Some(Mismatch::Child(j)) => {
                        self.first_bad.fetch_min(first + j, Ordering::Relaxed);
                    }
                    Some(Mismatch::Padding(at)) => {
                        self.first_bad_padding
                            .fetch_min(out_at + at, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
        }
        self.progress.advance(bytes as u64);
        Ok(())
    }
}

/// Bytes `range` of a run that starts at `offset` in `file`: in `map` (populated, so that a
/// failed read is an error), or read into `buffer`.
fn read<'b>(
    map: Option<&'b Map<'_>>,
    file: &File,
    offset: u64,
    range: Range<u64>,
    buffer: &'b mut Vec<u8>,
) -> std::io::Result<&'b [u8]> {
    match map {
        Some(map) => {
            let span = span(range);
            map.populate(span.clone())?;
            map.bytes()
                .get(span)
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        }
        None => {
            let len = usize::try_from(range.end - range.start).unwrap_or(0);
            buffer.resize(len, 0);
            file.read_exact_at(buffer, offset + range.start)?;
            Ok(buffer)
        }
    }
}

/// A range within a mapped run as indices (the run fits in memory: it is mapped).
fn span(range: Range<u64>) -> Range<usize> {
    let index = |i: u64| usize::try_from(i).unwrap_or(usize::MAX);
    index(range.start)..index(range.end)
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
