//! The transaction coordinator's settings, with Kafka's names where Kafka has them.

use std::time::Duration;

use brook_log::bounds::{check_bounds, Bounded, Bounds, DAY_MS};

use crate::error::{BrokerError, Result};

/// How transactions are bounded and cleaned up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnConfig {
    /// The longest transaction timeout a producer may ask for (`transaction.max.timeout.ms`);
    /// InitProducerId with a longer one is refused. Default 15 minutes, as Kafka. Ranges:
    /// [`TxnConfig::BOUNDS`].
    pub max_timeout_ms: u64,
    /// How often open transactions are checked against their timeouts (Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`): a transaction is aborted
    /// at most this long after its timeout passed. Default 10 s.
    pub abort_check_ms: u64,
    /// How long a transactional id with no transaction open is remembered after its last
    /// change (`transactional.id.expiration.ms`). Default 7 days.
    pub id_expiration_ms: u64,
    /// The timeout of brook's own atomic writes (`Broker::transaction`, gRPC `ProduceAtomic`,
    /// HTTP `POST /v1/transactions`): one that has not committed by then is aborted. Default
    /// 60 s; at most `max_timeout_ms` (`transaction.atomic.timeout.ms`).
    pub atomic_timeout_ms: u64,
}

impl TxnConfig {
    /// The greatest timeout the protocol can carry (an i32 of milliseconds).
    pub const TIMEOUT_MS_CEILING: u64 = i32::MAX as u64;

    /// Every numeric setting with its range, by the key `brook serve` gives it.
    pub const BOUNDS: &'static [Bounded<TxnConfig>] = &[
        Bounded::new(
            "transaction_max_timeout_ms",
            Bounds::new(1, Self::TIMEOUT_MS_CEILING),
            |c| Some(c.max_timeout_ms),
        ),
        Bounded::new(
            "transaction_abort_check_ms",
            Bounds::new(1, 3_600_000),
            |c| Some(c.abort_check_ms),
        ),
        Bounded::new(
            "transactional_id_expiration_ms",
            Bounds::new(1000, 365 * DAY_MS),
            |c| Some(c.id_expiration_ms),
        ),
        Bounded::new(
            "transaction_atomic_timeout_ms",
            Bounds::new(1, Self::TIMEOUT_MS_CEILING),
            |c| Some(c.atomic_timeout_ms),
        ),
    ];

    /// The abort check interval, as a duration.
    pub fn abort_check(&self) -> Duration {
        Duration::from_millis(self.abort_check_ms)
    }

    /// Rejects a number out of its range, and an atomic write timeout above the longest one
    /// allowed.
    pub(crate) fn validate(&self) -> Result<()> {
        check_bounds(self, Self::BOUNDS).map_err(|reason| BrokerError::InvalidConfig { reason })?;
        if self.atomic_timeout_ms > self.max_timeout_ms {
            return Err(BrokerError::InvalidConfig {
                reason: format!(
                    "transaction_atomic_timeout_ms {} is above transaction_max_timeout_ms {}",
                    self.atomic_timeout_ms, self.max_timeout_ms
                ),
            });
        }
        Ok(())
    }
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            abort_check_ms: 10_000,
            id_expiration_ms: 7 * 24 * 3_600_000,
            atomic_timeout_ms: 60_000,
        }
    }
}
