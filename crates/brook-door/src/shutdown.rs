//! The signal that tells a door, and the work inside it, to wind down.
//!
//! Each [`crate::RunningDoor`] holds one and triggers it on `stop()` (or when the handle is
//! dropped); the door's serve loop waits on [`Shutdown::wait`] (a `'static` future, so it can be
//! handed to a server task) and stops accepting. Inside a door the same type tells long-lived
//! work to wind down: subscriptions end, long polls answer early, produce streams stop taking
//! new requests and finish the ones in flight. Triggering is idempotent and never blocks.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// A cloneable, trigger-once shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal: every current and future [`Shutdown::wait`] resolves.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the signal fires (at once if it already has).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_before_and_after_the_trigger_all_resolve() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn(shutdown.wait());
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        early.await.expect("early waiter resolves");
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
