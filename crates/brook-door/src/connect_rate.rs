//! How fast one client address may open connections: the check that refuses a connection
//! storm before the door spends anything on it.
//!
//! A door under a storm of connects (a client reconnecting in a loop, or an attacker) pays for
//! every connection it lets in: registering it, a task, the protocol's setup, closing another
//! to make room. While it pays, the listen backlog fills with the storm's connections and a
//! normal client's connect waits behind all of them (the accept queue is first in, first out).
//! [`ConnectRate`] bounds that: each address may open
//! [`crate::ConnectionLimits::connection_rate_per_addr_max`] connections per second, with a
//! burst of one second's worth, and a connection past it is closed as soon as it is accepted
//! (with a reset, so neither side keeps the socket in a closing state): no task, no
//! registration, no per-connection log line. The refusals are counted and reported in one
//! line per door at most every [`REPORT_EVERY`], and in total when the door stops. This is
//! Kafka's per-IP `connection_creation_rate` quota (KIP-612), which is likewise off by default.
//!
//! The rule is a generic cell rate algorithm: per address, the time at which its bucket would
//! be empty again ("theoretical arrival time"); a connection is let in when that time is at
//! most one second (less one interval) ahead of now, and moves it one interval
//! (`1 s / rate`) further. It is kept only by the accept loop, so it needs no lock. Addresses
//! whose time is past are forgotten when the table grows; the table holds at most
//! [`ADDRESSES_MAX`] addresses, and past that (addresses all within their last second) it is
//! cleared: forgetting errs on letting clients in, never on locking one out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// The most addresses remembered at once (a few MiB at most).
pub(crate) const ADDRESSES_MAX: usize = 1 << 16;
/// Fewest addresses before the table looks for ones to forget.
const PRUNE_FIRST: usize = 1024;
/// How often, at most, a door logs the connections it refused for their rate.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(10);

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The connect rate allowed per client address, and what each address has used of it.
#[derive(Debug)]
pub(crate) struct ConnectRate {
    door: &'static str,
    rate: u32,
    /// Nanoseconds one connection uses of an address's budget.
    interval: u64,
    /// How far ahead of now an address's time may be and still let a connection in.
    tolerance: u64,
    epoch: Instant,
    /// Per address, when (nanoseconds since `epoch`) its budget is whole again.
    full_at: HashMap<IpAddr, u64>,
    /// The size at which the table next looks for addresses to forget.
    prune_at: usize,
    /// Connections refused since the last report, and from how many addresses at most.
    refused_unreported: u64,
    last_report: Instant,
    /// Connections refused since the door started.
    refused_total: u64,
}

impl ConnectRate {
    /// `rate` connections per second per address (at least 1), a second's worth at once.
    pub(crate) fn new(door: &'static str, rate: u32) -> Self {
        let rate = rate.max(1);
        let interval = NANOS_PER_SEC / u64::from(rate);
        let now = Instant::now();
        Self {
            door,
            rate,
            interval,
            tolerance: NANOS_PER_SEC.saturating_sub(interval),
            epoch: now,
            full_at: HashMap::new(),
            prune_at: PRUNE_FIRST,
            refused_unreported: 0,
            last_report: now,
            refused_total: 0,
        }
    }

    /// Whether `ip` may open one more connection now; counts it either way. A refusal is
    /// counted and, at most every [`REPORT_EVERY`], logged with the count since the last line.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> bool {
        let now = self.nanos();
        if self.full_at.len() >= self.prune_at {
            self.prune(now);
        }
        let full_at = self.full_at.get(&ip).copied().unwrap_or(0).max(now);
        if full_at - now > self.tolerance {
            self.refused(ip);
            return false;
        }
        self.full_at.insert(ip, full_at + self.interval);
        true
    }

    /// Connections refused for their rate since the door started.
    pub(crate) fn refused_total(&self) -> u64 {
        self.refused_total
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Forgets the addresses whose budget is whole again; clears the table if it is still too
    /// big (see the module doc).
    fn prune(&mut self, now: u64) {
        self.full_at.retain(|_, full_at| *full_at > now);
        if self.full_at.len() >= ADDRESSES_MAX {
            tracing::warn!(
                door = self.door,
                addresses = self.full_at.len(),
                "more client addresses opened connections within a second than the connect \
                 rate table holds: forgetting them all"
            );
            self.full_at.clear();
        }
        self.prune_at = (self.full_at.len() * 2).clamp(PRUNE_FIRST, ADDRESSES_MAX);
    }

    fn refused(&mut self, ip: IpAddr) {
        self.refused_total += 1;
        self.refused_unreported += 1;
        if self.last_report.elapsed() >= REPORT_EVERY {
            tracing::warn!(
                door = self.door,
                refused = self.refused_unreported,
                last = %ip,
                connection_rate_per_addr_max = self.rate,
                "refused connections from addresses opening more than \
                 connection_rate_per_addr_max a second"
            );
            self.refused_unreported = 0;
            self.last_report = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_gets_a_seconds_worth_at_once_then_its_rate() {
        let mut rate = ConnectRate::new("test", 10);
        let storm = ip(2);
        assert!(
            (0..10).all(|_| rate.admit(storm)),
            "a burst of one second's worth"
        );
        assert!(!rate.admit(storm), "the eleventh at once is refused");
        assert!(rate.admit(ip(1)), "another address has its own budget");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(rate.admit(storm), "one interval later, one more");
        assert!(!rate.admit(storm));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            (0..10).all(|_| rate.admit(storm)),
            "a quiet second refills it"
        );
        assert!(!rate.admit(storm));
        assert_eq!(rate.refused_total(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connects_do_not_use_up_the_budget() {
        let mut rate = ConnectRate::new("test", 5);
        for _ in 0..1000 {
            rate.admit(ip(2));
        }
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(
            rate.admit(ip(2)),
            "an address storming on is let in at its rate, not locked out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_forgets_quiet_addresses_and_stays_bounded() {
        let mut rate = ConnectRate::new("test", 1);
        for i in 0..(PRUNE_FIRST as u32 * 3) {
            assert!(rate.admit(IpAddr::from(i.to_be_bytes())));
        }
        assert!(rate.full_at.len() <= PRUNE_FIRST * 4);
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..(PRUNE_FIRST as u32 * 2) {
            rate.admit(IpAddr::from((u32::MAX - i).to_be_bytes()));
        }
        assert!(
            rate.full_at.len() <= PRUNE_FIRST * 4,
            "the quiet addresses were forgotten: {}",
            rate.full_at.len()
        );
        let mut many = ConnectRate::new("test", 1);
        for i in 0..(ADDRESSES_MAX as u32 + 10) {
            many.admit(IpAddr::from(i.to_be_bytes()));
        }
        assert!(many.full_at.len() <= ADDRESSES_MAX);
    }
}
