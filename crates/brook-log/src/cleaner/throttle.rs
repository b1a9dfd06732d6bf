//! The cleaner's I/O throttle: at most so many bytes per second read and written, so a big
//! clean never starves producers of the disk (Kafka's `log.cleaner.io.max.bytes.per.second`).

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Paces a cleaner thread to `bytes_per_sec`; waits end early when [`Throttle::interrupt`] is
/// called (the cleaner stopping).
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_sec: Option<u64>,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    /// Start of the current measuring window.
    since: Instant,
    /// Bytes counted in it.
    bytes: u64,
    interrupted: bool,
}

/// The measuring window: the rate is held over about this long, so a pause now and then is
/// not made up for by a burst.
const WINDOW: Duration = Duration::from_secs(1);

impl Throttle {
    /// No limit when `bytes_per_sec` is `None`.
    pub(crate) fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.filter(|b| *b > 0),
            state: Mutex::new(State {
                since: Instant::now(),
                bytes: 0,
                interrupted: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// Counts `bytes` read or written and sleeps as long as it takes to bring the rate back
    /// to the limit.
    pub(crate) fn pace(&self, bytes: u64) {
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        let mut state = self.state.lock();
        if state.since.elapsed() > WINDOW {
            state.since = Instant::now();
            state.bytes = 0;
        }
        state.bytes += bytes;
        let due = Duration::from_secs_f64(state.bytes as f64 / rate as f64);
        let deadline = state.since + due;
        while !state.interrupted && Instant::now() < deadline {
            self.wake.wait_until(&mut state, deadline);
        }
    }

    /// Ends every wait now and from now on.
    pub(crate) fn interrupt(&self) {
        self.state.lock().interrupted = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits_and_a_limit_paces() {
        // Without a limit this would take years if it waited at all.
        Throttle::new(None).pace(u64::MAX / 2);

        let paced = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            paced.pace(10_000); // 100 KB at 1 MB/s: about 100 ms
        }
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn an_interrupt_ends_a_wait() {
        let paced = std::sync::Arc::new(Throttle::new(Some(1)));
        let waiter = std::sync::Arc::clone(&paced);
        let handle = std::thread::spawn(move || waiter.pace(1_000_000));
        std::thread::sleep(Duration::from_millis(20));
        paced.interrupt();
        handle.join().expect("the wait ended");
    }
}
