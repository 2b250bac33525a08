//! Writing the tree back to disk while it is being made. `format` ends with the tree on disk
//! (it syncs, as `veritysetup` does); a single sync at the end would wait for all of it to be
//! written. Instead a helper thread syncs the hash device each time another `step` bytes of
//! tree have been written, while the workers go on hashing, and the final sync finds little
//! left to do.
//!
//! Owns that thread (scoped to the `format` that starts it); does not write anything itself.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use super::EngineError;

/// The background syncs of one `format`.
#[derive(Debug)]
pub(super) struct Writeback<'s> {
    file: &'s File,
    path: &'s Path,
    /// Wakes the thread; holds one request at most (a sync asked for while one is pending
    /// is covered by it).
    wake: Option<SyncSender<()>>,
    thread: Option<ScopedJoinHandle<'s, std::io::Result<()>>>,
    written: AtomicU64,
    step: u64,
}

impl<'s> Writeback<'s> {
    /// Starts the thread in `scope`, syncing `file` every `step` bytes written (never, for
    /// a step of 0).
    pub(super) fn start<'e>(
        scope: &'s Scope<'s, 'e>,
        file: &'s File,
        path: &'s Path,
        step: u64,
    ) -> Self {
        let (wake, thread) = if step == 0 {
            (None, None)
        } else {
            let (tx, rx) = sync_channel(1);
            (
                Some(tx),
                Some(scope.spawn(move || sync_on_request(file, &rx))),
            )
        };
        Self {
            file,
            path,
            wake,
            thread,
            written: AtomicU64::new(0),
            step,
        }
    }

    /// Records `bytes` more written; asks for a sync when that crosses a multiple of `step`.
    pub(super) fn wrote(&self, bytes: u64) {
        let before = self.written.fetch_add(bytes, Ordering::Relaxed);
        let after = before.saturating_add(bytes);
        if let Some(wake) = &self.wake
            && before / self.step != after / self.step
        {
            // Full: a sync is already pending, and covers these bytes too. Disconnected:
            // the thread stopped on an error, which `finish` reports.
            let _ = wake.try_send(());
        }
    }

    /// Stops the thread, then syncs what is left; the first error of either.
    pub(super) fn finish(mut self) -> Result<(), EngineError> {
        drop(self.wake.take());
        let background = match self.thread.take().map(ScopedJoinHandle::join) {
            Some(Ok(result)) => result,
            // The thread cannot panic; were it to, the final sync still covers everything.
            Some(Err(_)) | None => Ok(()),
        };
        background
            .and_then(|()| self.file.sync_data())
            .map_err(EngineError::io("sync", self.path))
    }
}

/// The thread: one `fdatasync` per request, until the sender is dropped or a sync fails.
fn sync_on_request(file: &File, wake: &Receiver<()>) -> std::io::Result<()> {
    while wake.recv().is_ok() {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_file_in_the_background_and_at_the_end() {
        let file = tempfile::tempfile().unwrap();
        for step in [0, 1, 10, u64::MAX] {
            let result = std::thread::scope(|scope| {
                let w = Writeback::start(scope, &file, Path::new("t"), step);
                for _ in 0..100 {
                    w.wrote(3);
                }
                w.finish()
            });
            assert!(result.is_ok(), "step {step}: {result:?}");
        }
    }

    #[test]
    fn a_failed_sync_is_reported_as_a_sync_error() {
        // A pipe cannot be synced (EINVAL): the background sync fails, then the final one.
        let (reader, _writer) = std::io::pipe().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(reader));
        for step in [0, 1] {
            let result = std::thread::scope(|scope| {
                let w = Writeback::start(scope, &file, Path::new("/the/pipe"), step);
                w.wrote(5);
                w.finish()
            });
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains("sync") && message.contains("/the/pipe"),
                "{message}"
            );
        }
    }
}
