//! Call slots: the bound on top-level calls running at once
//! (`--max-concurrent-calls`), how a call takes one ([`Slots::take`]), and
//! how a call tree lends its slot to others while it waits on storage
//! ([`Slots::lend_while`]), so that calls waiting for a disk do not hold
//! the slots CPU-bound calls need.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::call::CallError;
use crate::config::OVERLOAD_WAIT;

/// The call slots and the bound on lent ones.
pub struct Slots {
    calls: Arc<Semaphore>,
    /// Slots lent at once: each lent slot lets one more instance live, so
    /// the pool keeps room for this many more call trees.
    lendable: Semaphore,
    max: usize,
}

impl Slots {
    /// `max` slots, and as many that may be lent.
    pub(super) fn new(max: usize) -> Slots {
        Slots { calls: Arc::new(Semaphore::new(max)), lendable: Semaphore::new(max), max }
    }

    /// A slot for a top-level call: a free one at once, else the first to
    /// come free within [`OVERLOAD_WAIT`] (only a full server pays for the
    /// timer), else -32003.
    pub(super) async fn take(&self) -> Result<SemaphorePermit<'_>, CallError> {
        if let Ok(slot) = self.calls.try_acquire() {
            return Ok(slot);
        }
        tokio::time::timeout(OVERLOAD_WAIT, self.calls.acquire())
            .await
            .map_err(|_| CallError::Overloaded(self.max))?
            .map_err(|_| CallError::Overloaded(self.max))
    }

    /// Runs `work` (a wait on storage) with the calling tree's slot lent to
    /// other calls, and takes a slot back before the guest runs on: the
    /// tree's top-level call still holds its permit, so lending adds one
    /// and taking back forgets one. Past the bound of lent slots the tree
    /// keeps its slot while it waits. Only for calls that hold a slot
    /// (every call with a dispatcher: a top-level call or one nested in it).
    pub(crate) async fn lend_while<T>(&self, work: impl Future<Output = T>) -> T {
        let Ok(_lent) = self.lendable.try_acquire() else { return work.await };
        self.calls.add_permits(1);
        let mut loan = Loan { calls: self.calls.clone(), repaid: false };
        let out = work.await;
        if let Ok(slot) = self.calls.acquire().await {
            slot.forget();
            loan.repaid = true;
        }
        out
    }
}

/// A lent slot not yet taken back: if the call ends first (its deadline
/// dropped it), the slot added for it is taken away again.
struct Loan {
    calls: Arc<Semaphore>,
    repaid: bool,
}

impl Drop for Loan {
    fn drop(&mut self) {
        if self.repaid || self.calls.forget_permits(1) == 1 {
            return;
        }
        // Every slot is in use: take the next one to come free.
        let calls = self.calls.clone();
        tokio::spawn(async move {
            if let Ok(slot) = calls.acquire().await {
                slot.forget();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lent_slot_serves_another_call_and_comes_back() {
        let slots = Slots::new(1);
        let held = slots.take().await.expect("a free slot");
        let lent = slots.lend_while(async {
            // While lent, another call gets the slot.
            let other = slots.take().await.expect("the lent slot");
            drop(other);
            7
        });
        assert_eq!(lent.await, 7);
        assert_eq!(slots.calls.available_permits(), 0, "taken back");
        drop(held);
        assert_eq!(slots.calls.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_loan_cut_short_gives_the_slot_back() {
        let slots = Slots::new(1);
        let held = slots.take().await.expect("a free slot");
        let lent = slots.lend_while(std::future::pending::<()>());
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), lent).await.is_err());
        assert_eq!(slots.calls.available_permits(), 0, "the loan ended with the call");
        drop(held);
        assert_eq!(slots.calls.available_permits(), 1);
    }
}
