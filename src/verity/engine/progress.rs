//! Progress reporting: a caller's callback, fed from the worker threads with the bytes hashed
//! so far and the total to hash.

use std::sync::atomic::{AtomicU64, Ordering};

/// A progress callback: `(bytes_done, bytes_total)`. Called from worker threads, possibly
/// concurrently and slightly out of order, after each chunk; it should be cheap (a CLI
/// redraws only when the visible value changes).
pub type ProgressFn<'f> = dyn Fn(u64, u64) + Sync + 'f;

/// Counts bytes hashed and forwards to the callback, if any.
pub(super) struct Progress<'a> {
    callback: Option<&'a ProgressFn<'a>>,
    done: AtomicU64,
    total: u64,
}

impl<'a> Progress<'a> {
    /// A counter towards `total` bytes.
    pub(super) fn new(callback: Option<&'a ProgressFn<'a>>, total: u64) -> Self {
        Self {
            callback,
            done: AtomicU64::new(0),
            total,
        }
    }

    /// Records `bytes` more hashed.
    pub(super) fn advance(&self, bytes: u64) {
        if let Some(callback) = self.callback {
            let done = self
                .done
                .fetch_add(bytes, Ordering::Relaxed)
                .saturating_add(bytes);
            callback(done.min(self.total), self.total);
        }
    }
}
