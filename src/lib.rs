//! brook: a single-node log-based streaming broker.
pub use brook_log as log;
