//! Per-key locks: requests for the same volume (or the same mount point) are serialized,
//! different ones run in parallel. A request takes all its keys at once, or waits, so two
//! requests needing overlapping keys cannot deadlock; or tries, and goes without when one is
//! held (a full read of a device already being read).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, PoisonError};

/// A set of named locks.
#[derive(Debug, Default)]
pub(crate) struct KeyedLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// Held keys; released on drop.
pub(crate) struct Held<'a> {
    locks: &'a KeyedLocks,
    keys: Vec<String>,
}

impl KeyedLocks {
    /// Waits until none of `keys` is held, then holds them all.
    pub(crate) fn lock(&self, keys: &[&str]) -> Held<'_> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        while keys.iter().any(|k| held.contains(*k)) {
            held = self
                .released
                .wait(held)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        held.extend(keys.iter().cloned());
        Held { locks: self, keys }
    }

    /// Holds `keys` if none of them is held; `None` (without waiting) otherwise.
    pub(crate) fn try_lock(&self, keys: &[&str]) -> Option<Held<'_>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.iter().any(|k| held.contains(*k)) {
            return None;
        }
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        held.extend(keys.iter().cloned());
        Some(Held { locks: self, keys })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for k in &self.keys {
            held.remove(k);
        }
        self.locks.released.notify_all();
    }
}
