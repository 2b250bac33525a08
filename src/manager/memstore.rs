//! State kept in memory: for an embedder that keeps no state across restarts, and for tests
//! (which can make saves fail from the n-th on, as a full disk would). Owns nothing else.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::state::{State, StateStore};

/// A [`StateStore`] in memory; its state is lost with it.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<Option<State>>,
    /// Saves from this one on (counting from 0) fail; 0: none fails.
    fail_from: AtomicUsize,
    saves: AtomicUsize,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose saves fail from the `n`-th on (counting from 0; `0` means never), with
    /// the error a full disk gives.
    pub fn failing_from(n: usize) -> Self {
        let s = Self::default();
        s.fail_from(n);
        s
    }

    /// From now on, saves fail from the `n`-th on (counting all saves from the store's
    /// start; `0`: none fails any more).
    pub fn fail_from(&self, n: usize) {
        self.fail_from.store(n, Ordering::SeqCst);
    }

    /// Saves asked for so far (failed ones included).
    pub fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("The in-memory state's lock is poisoned (a thread panicked holding it)")
}

impl StateStore for MemStore {
    fn load(&self) -> io::Result<State> {
        Ok(self
            .state
            .lock()
            .map_err(poisoned)?
            .clone()
            .unwrap_or_else(State::empty))
    }

    fn save(&self, state: &State) -> io::Result<()> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst);
        let from = self.fail_from.load(Ordering::SeqCst);
        if from != 0 && n >= from {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (MemStore::failing_from)",
            ));
        }
        *self.state.lock().map_err(poisoned)? = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_save_and_fails_from_the_nth() {
        let store = MemStore::failing_from(2);
        assert_eq!(store.saves(), 0);
        let mut state = State::empty();
        store.save(&state).unwrap();
        state.leftover_dirs.push("/run/x".into());
        store.save(&state).unwrap();
        assert_eq!(store.saves(), 2);
        let e = store.save(&State::empty()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(store.saves(), 3, "a failed save is counted too");
        assert_eq!(
            store.load().unwrap(),
            state,
            "the failed save changed nothing"
        );
        store.fail_from(0);
        store.save(&State::empty()).unwrap();
        assert_eq!(store.load().unwrap(), State::empty());
    }
}
