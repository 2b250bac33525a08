//! Read-only memory maps of the ranges the engine hashes (the data area, a tree level), so
//! that the blocks are hashed where they sit in the page cache instead of being copied out
//! with `pread` first: on the 2-core machine of `benches/RESULTS.md` the copy cost the kernel
//! about a fifth of what the hashing costs, the mapping about a third of that.
//!
//! Owns `mmap`, `madvise` and `munmap`: with `sha256_ni`, one of the crate's two modules
//! allowed `unsafe`, every block with its reason. Must not hand out a byte it has not mapped,
//! write through a map, or let a map outlive its file's borrow.
//!
//! What a map cannot do as well as `pread`: report an I/O error, or the file shrinking under
//! it (another process truncating it). A page that cannot be read raises `SIGBUS` instead.
//! So the engine [`populate`](Map::populate)s every chunk before hashing it, which reports
//! those as errors; what remains is a page failing in the microseconds between that and the
//! hashing (evicted and then unreadable, or truncated away), which ends the process.
//! Mapped bytes written concurrently by another process are hashed as they happen to be read,
//! as with `pread`: nothing here depends on two reads of a byte agreeing.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::ptr::NonNull;

use rustix::mm::{Advice, MapFlags, ProtFlags};

/// A read-only, shared map of `len` bytes of a file from a byte offset; unmapped on drop.
#[derive(Debug)]
pub(super) struct Map<'f> {
    /// Start of the mapping (page aligned).
    base: NonNull<u8>,
    /// Bytes mapped from `base`: `skip + len`.
    mapped: usize,
    /// Where the requested bytes start, from `base` (the offset's distance to its page).
    skip: usize,
    /// Bytes requested.
    len: usize,
    /// The file the map shows; borrowed so that it stays open while mapped.
    _file: std::marker::PhantomData<&'f File>,
}

// SAFETY: a `Map` only ever gives out shared reads of memory that no thread of this process
// writes (it is mapped read-only), and a mapping belongs to the whole process, so it may be
// used and unmapped from any thread.
#[allow(unsafe_code)]
unsafe impl Send for Map<'_> {}
// SAFETY: as for `Send`: `&Map` only reads, and reads from several threads do not race.
#[allow(unsafe_code)]
unsafe impl Sync for Map<'_> {}

impl<'f> Map<'f> {
    /// Maps bytes `offset..offset + len` of `file` (which must be at least that long). An
    /// empty range is refused (`EINVAL`), as `mmap` would.
    pub(super) fn new(file: &'f File, offset: u64, len: usize) -> io::Result<Self> {
        let end = offset
            .checked_add(len as u64)
            .ok_or(io::ErrorKind::InvalidInput)?;
        // A map past the end of a file raises SIGBUS when read: check, as late as possible.
        let mut f = file;
        let size = f.seek(SeekFrom::End(0))?;
        if len == 0 || size < end {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let page = rustix::param::page_size();
        let skip =
            usize::try_from(offset % page as u64).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mapped = skip.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        #[allow(unsafe_code)]
        // SAFETY: a new mapping at an address the kernel chooses (null hint), so no existing
        // memory is replaced; read-only and shared, so this process never writes it; `offset
        // - skip` is page aligned as `mmap` requires. Nothing refers to it yet.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                mapped,
                ProtFlags::READ,
                MapFlags::SHARED,
                file,
                offset - skip as u64,
            )?
        };
        let base = NonNull::new(base.cast::<u8>()).ok_or(io::ErrorKind::AddrNotAvailable)?;
        let map = Self {
            base,
            mapped,
            skip,
            len,
            _file: std::marker::PhantomData,
        };
        // Huge pages: where the page cache holds the file in 2 MiB folios, each is mapped
        // with one page-table entry instead of 512 (so much less kernel time populating and
        // releasing), and a file not yet cached is read ahead into such folios. Advice: a
        // kernel without transparent huge pages refuses it, and nothing is lost.
        let _ = map.advise(0..mapped, Advice::LinuxHugepage);
        Ok(map)
    }

    /// The mapped bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        #[allow(unsafe_code)]
        // SAFETY: `base + skip .. base + skip + len` lies inside the mapping made in `new`,
        // which lasts until `self` is dropped (the slice borrows `self`), is readable, and is
        // never written by this process (read-only). `skip + len` fits in `isize`: `mmap`
        // would not have made a larger mapping. Changes another process makes to the file
        // show through, as they would through `pread`; they can change which bytes are hashed,
        // never what memory is touched (no address or length is derived from these bytes).
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(self.skip), self.len)
        }
    }

    /// Reads the pages under `range` (of [`bytes`](Self::bytes)) in, returning the error a
    /// failed read gives (`EIO`, or `EFAULT` past the end of a shrunk file) where touching
    /// them would raise SIGBUS. Kernels before 5.14 refuse it (`EINVAL`): that is not an
    /// error, the pages are then faulted in by the hashing.
    pub(super) fn populate(&self, range: Range<usize>) -> io::Result<()> {
        let Some(pages) = self.pages(range, Rounding::Out) else {
            return Ok(());
        };
        match self.advise(pages, Advice::LinuxPopulateRead) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
            other => other,
        }
    }

    /// Drops the page-table entries of the whole pages under `range` (the pages stay in the
    /// page cache): the process's resident size then stays at the chunks in flight, and no
    /// large mapping is torn down at the end. Reading them again would fault them back in.
    pub(super) fn release(&self, range: Range<usize>) {
        if let Some(pages) = self.pages(range, Rounding::In) {
            // Advice: nothing is lost if the kernel declines it.
            let _ = self.advise(pages, Advice::LinuxDontNeed);
        }
    }

    /// The page-aligned range of the mapping (from `base`) under `range` of the bytes,
    /// rounded outwards or inwards; `None` when empty.
    fn pages(&self, range: Range<usize>, rounding: Rounding) -> Option<Range<usize>> {
        if range.start >= range.end {
            return None;
        }
        let page = rustix::param::page_size();
        let start = self.skip.checked_add(range.start.min(self.len))?;
        let end = self.skip.checked_add(range.end.min(self.len))?;
        let (start, end) = match rounding {
            Rounding::Out => (
                start - start % page,
                end.checked_next_multiple_of(page)?.min(self.mapped),
            ),
            Rounding::In => (start.checked_next_multiple_of(page)?, end - end % page),
        };
        (start < end).then_some(start..end)
    }

    fn advise(&self, pages: Range<usize>, advice: Advice) -> io::Result<()> {
        debug_assert!(pages.end <= self.mapped);
        #[allow(unsafe_code)]
        // SAFETY: `pages` is page aligned (its start is; `madvise` rounds the length up)
        // and inside this mapping (`pages` clamps it). The advice given is one of the three
        // below, none of which changes what the memory holds: MADV_HUGEPAGE only chooses how
        // pages are cached and mapped, MADV_POPULATE_READ reads pages in, MADV_DONTNEED on a
        // shared file mapping only unmaps them, and a later read maps the same page-cache
        // pages back.
        unsafe {
            let start = self.base.as_ptr().add(pages.start).cast();
            rustix::mm::madvise(start, pages.end - pages.start, advice)?;
        }
        Ok(())
    }
}

impl Drop for Map<'_> {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: unmaps exactly the mapping made in `new`, once; no slice of it outlives
        // `self` (they borrow it).
        unsafe {
            // Nothing to do if it fails: the mapping is valid, so it does not.
            let _ = rustix::mm::munmap(self.base.as_ptr().cast(), self.mapped);
        }
    }
}

/// Which pages of a byte range: every page it touches, or only those it covers.
#[derive(Clone, Copy)]
enum Rounding {
    Out,
    In,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn maps_the_bytes_at_any_offset() {
        let data: Vec<u8> = (0..3 * 4096 + 100usize)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let f = file(&data);
        for (offset, len) in [(0, 1), (0, data.len()), (1, 4095), (4095, 2), (5000, 7000)] {
            let map = Map::new(&f, offset as u64, len).unwrap();
            assert_eq!(map.bytes(), &data[offset..offset + len], "{offset}+{len}");
            map.populate(0..len).unwrap();
            map.release(0..len);
            // Released pages come back with the same bytes.
            assert_eq!(map.bytes(), &data[offset..offset + len], "{offset}+{len}");
        }
    }

    #[test]
    fn refuses_empty_and_past_the_end() {
        let f = file(&[1u8; 5000]);
        assert!(Map::new(&f, 0, 0).is_err());
        assert!(Map::new(&f, 0, 5001).is_err());
        assert!(Map::new(&f, 4999, 2).is_err());
        assert!(Map::new(&f, u64::MAX, 2).is_err());
        assert_eq!(Map::new(&f, 4999, 1).unwrap().bytes(), &[1]);
    }

    /// Resident bytes of this process's mapping that starts at `addr`.
    fn resident(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let start = line.split('-').next().map(|a| usize::from_str_radix(a, 16));
            if start == Some(Ok(addr)) {
                let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
                let kb: usize = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
                return kb * 1024;
            }
        }
        panic!("no mapping at {addr:#x}");
    }

    /// What keeps memory flat: the pages a chunk was hashed from leave the process when it
    /// is released (they stay in the page cache).
    #[test]
    fn released_pages_leave_the_process() {
        let len = 64 * 4096;
        let f = file(&vec![7u8; len]);
        let map = Map::new(&f, 0, len).unwrap();
        let base = map.base.as_ptr() as usize;
        map.populate(0..len).unwrap();
        // Read, so the pages are mapped on any kernel (populating needs 5.14).
        assert_eq!(
            map.bytes().iter().map(|&b| usize::from(b)).sum::<usize>(),
            7 * len
        );
        assert_eq!(resident(base), len);
        map.release(0..len / 2);
        assert_eq!(resident(base), len / 2);
        map.release(0..len);
        assert_eq!(resident(base), 0);
    }

    #[test]
    fn page_ranges_round_out_and_in() {
        let f = file(&[0u8; 5 * 4096]);
        let page = rustix::param::page_size();
        let map = Map::new(&f, 100, 4 * 4096).unwrap();
        // Bytes 0..10 of the map are 100..110 of the file: page 0, none wholly covered.
        assert_eq!(map.pages(0..10, Rounding::Out), Some(0..page));
        assert_eq!(map.pages(0..10, Rounding::In), None);
        assert_eq!(map.pages(0..2 * page, Rounding::In), Some(page..2 * page));
        assert_eq!(map.pages(5..5, Rounding::Out), None);
        // Clamped to the mapping.
        assert_eq!(
            map.pages(0..usize::MAX, Rounding::Out),
            Some(0..100 + 4 * 4096)
        );
    }
}
