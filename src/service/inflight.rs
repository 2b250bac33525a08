//! What a request holds while it runs: a slot (at most `max_in_flight` requests run at once;
//! the rest wait for one, for a bounded time) and an in-flight mark (shutdown's drain waits
//! until none is left, and refuses new requests meanwhile). Both are owned values, moved into
//! the blocking work, so they last as long as the work does, not as long as the client waits.
//! Counts and waits only: what runs is the handler's business.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotStarted {
    /// Every slot stayed taken for the longest wait.
    #[error(
        "The daemon is busy: {running} requests in progress, none finished within {:.1} s; try again",
        .waited.as_secs_f64()
    )]
    Busy {
        /// The number of slots.
        running: usize,
        /// How long the request waited.
        waited: Duration,
    },
    /// The daemon is draining.
    #[error("The daemon is shutting down")]
    ShuttingDown,
}

impl NotStarted {
    /// The status this goes back as.
    pub(super) fn code(&self) -> ttrpc::Code {
        match self {
            Self::Busy { .. } => ttrpc::Code::RESOURCE_EXHAUSTED,
            Self::ShuttingDown => ttrpc::Code::UNAVAILABLE,
        }
    }
}

/// The slots: a semaphore of `max_in_flight` permits.
pub(super) struct Slots {
    sem: Arc<Semaphore>,
    size: usize,
    max_wait: Duration,
}

impl Slots {
    /// `size` slots (at least one); a request waits at most `max_wait` for one.
    pub(super) fn new(size: usize, max_wait: Duration) -> Self {
        let size = size.max(1);
        Self {
            sem: Arc::new(Semaphore::new(size)),
            size,
            max_wait,
        }
    }

    /// Waits for a slot, at most the longest wait (and, since ttrpc drops the request's future
    /// at its deadline, at most the client's deadline).
    pub(super) async fn acquire(&self) -> Result<OwnedSemaphorePermit, NotStarted> {
        match tokio::time::timeout(self.max_wait, self.sem.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one means nothing more may start.
            Ok(Err(_)) => Err(NotStarted::ShuttingDown),
            Err(_) => Err(NotStarted::Busy {
                running: self.size,
                waited: self.max_wait,
            }),
        }
    }
}

/// Counts requests in flight; once draining, refuses new ones.
#[derive(Default)]
pub(super) struct Inflight {
    state: Mutex<(usize, bool)>,
    idle: tokio::sync::Notify,
}

/// Held while a request runs; owned, so the blocking work keeps it to its end.
pub(super) struct InflightGuard(Arc<Inflight>);

impl Inflight {
    /// Marks a request in flight, or refuses it when draining.
    pub(super) fn enter(self: &Arc<Self>) -> Result<InflightGuard, NotStarted> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.1 {
            return Err(NotStarted::ShuttingDown);
        }
        s.0 += 1;
        Ok(InflightGuard(self.clone()))
    }

    /// Refuses new requests from now on and waits for those in flight to finish.
    pub(super) async fn drain(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                s.1 = true;
                if s.0 == 0 {
                    return;
                }
            }
            idle.await;
        }
    }

    /// How many requests are running.
    pub(super) fn count(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 = s.0.saturating_sub(1);
        if s.0 == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_requests_in_flight_and_refuses_new_ones() {
        let inflight = Arc::new(Inflight::default());
        let guard = inflight.enter().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let drained = {
            let inflight = inflight.clone();
            tokio::spawn(async move {
                inflight.drain().await;
                let _ = tx.send(());
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !drained.is_finished(),
            "drain returned with a request in flight"
        );
        assert_eq!(inflight.enter().err(), Some(NotStarted::ShuttingDown));
        // The guard is owned: it may end on another thread, after its request's future.
        std::thread::spawn(move || drop(guard)).join().unwrap();
        rx.await.unwrap();
        assert_eq!(inflight.count(), 0);
    }

    #[tokio::test]
    async fn a_request_waits_for_a_slot_at_most_the_longest_wait() {
        let slots = Slots::new(1, Duration::from_millis(100));
        let held = slots.acquire().await.unwrap();
        let e = slots.acquire().await.unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::RESOURCE_EXHAUSTED);
        assert_eq!(
            e.to_string(),
            "The daemon is busy: 1 requests in progress, none finished within 0.1 s; try again"
        );
        drop(held);
        assert!(slots.acquire().await.is_ok());
        // No slots is one slot: nothing could ever run otherwise.
        assert!(
            Slots::new(0, Duration::from_millis(50))
                .acquire()
                .await
                .is_ok()
        );
    }
}
