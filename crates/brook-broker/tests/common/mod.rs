//! What more than one of the broker's test files needs.
//!
//! Each file under `tests/` is its own crate and uses what it needs of this module.

use std::time::{Duration, Instant};

use brook_broker::{Broker, BrokerConfig, BrokerError};
use brook_log::LogError;

/// How long a dropped broker may take to let go of its directory.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Opens `config`'s directory right after a broker on it was dropped without `close`, as a
/// restart after a crash would. A dropped broker lets go of its directory's lock once its last
/// background task (a read or fsync in flight, a follower) ends, a moment after the drop; a
/// crashed process lets go at once. So an open refused as `Locked` is retried until then; any
/// other error fails the test.
pub(crate) async fn open_after_drop(config: BrokerConfig) -> Broker {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match Broker::open(config.clone()).await {
            Ok(broker) => return broker,
            Err(BrokerError::Storage(LogError::Locked { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen after the drop: {e}"),
        }
    }
}
