//! `brook serve` as a child process with its Kafka door on a loopback port, for tests that must
//! kill the broker (`kill -9`) rather than close it, and start it again on the same data
//! directory.

use std::path::Path;

#[path = "../serve_child/mod.rs"]
mod serve_child;

use serve_child::Served;

/// A running `brook serve`.
pub(crate) struct ChildBroker {
    served: Served,
    /// `host:port` of its Kafka door.
    pub bootstrap: String,
}

impl ChildBroker {
    /// Starts `brook serve` on `data` with every door on a loopback port 0 and `extra` flags.
    pub(crate) fn start(data: &Path, extra: &[&str]) -> ChildBroker {
        let data = data.to_str().expect("utf-8 path");
        let mut args = vec!["--data-dir", data, "--kafka-addr", "127.0.0.1:0"];
        args.extend_from_slice(&["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        let served = Served::start(&args);
        ChildBroker {
            bootstrap: served.addr("kafka"),
            served,
        }
    }

    /// SIGKILL: the broker stops dead, nothing flushed, closed or marked.
    pub(crate) fn kill(self) -> String {
        self.served.kill()
    }
}
