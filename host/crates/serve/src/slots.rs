//! Concurrency per model version: a number of slots (requests running at once) and a bounded
//! queue of requests waiting for one. A version whose requests spin holds only its own slots,
//! so every other version keeps answering; a request that finds the queue full is refused at
//! once (503) rather than waiting without bound.

use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Slots {
    running: Arc<Semaphore>,
    slots: usize,
    waiting: AtomicUsize,
    queue: usize,
    /// Requests waiting, all versions together (`weft_requests_queued`).
    queued: Gauge,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum SlotError {
    #[error("{slots} request(s) running and {queue} waiting, the queue is full (raise --queue or --concurrency)")]
    Full { slots: usize, queue: usize },
    #[error("shutting down")]
    Closed,
}

/// One place in the queue, given back when the request gets a slot or goes away.
struct Waiting<'a>(&'a Slots);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.queued.dec();
    }
}

impl Slots {
    /// `slots` requests at once (at least one), and up to `queue` waiting, counted in `queued`.
    pub(crate) fn new(slots: usize, queue: usize, queued: Gauge) -> Self {
        let slots = slots.max(1);
        Slots {
            running: Arc::new(Semaphore::new(slots)),
            slots,
            waiting: AtomicUsize::new(0),
            queue,
            queued,
        }
    }

    /// A slot: at once if one is free, else after waiting in the queue, if it has room.
    pub(crate) async fn acquire(&self) -> Result<OwnedSemaphorePermit, SlotError> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queue = self.queue;
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < queue).then_some(n + 1)
            })
            .map_err(|_| SlotError::Full {
                slots: self.slots,
                queue,
            })?;
        self.queued.inc();
        let _place = Waiting(self);
        self.running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SlotError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_freed_place_is_taken_again() {
        let slots = Arc::new(Slots::new(1, 1, Gauge::default()));
        let running = slots.acquire().await.unwrap();
        let queued = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await.map(drop) }
        });
        while slots.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            slots.acquire().await.unwrap_err(),
            SlotError::Full { slots: 1, queue: 1 }
        );
        drop(running);
        queued.await.unwrap().unwrap();
        assert_eq!(slots.waiting.load(Ordering::Acquire), 0);
        let _again = slots.acquire().await.unwrap();
    }

    #[tokio::test]
    async fn no_queue_means_only_the_slots() {
        let slots = Slots::new(2, 0, Gauge::default());
        let _a = slots.acquire().await.unwrap();
        let _b = slots.acquire().await.unwrap();
        assert!(matches!(
            slots.acquire().await,
            Err(SlotError::Full { slots: 2, queue: 0 })
        ));
    }
}
