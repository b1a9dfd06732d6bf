//! Kafka RecordBatch v2, the unit brook stores: the format itself lives in the `brook-batch`
//! crate (shared with the doors and with brook-client) and is re-exported here whole, so
//! `brook_log::batch::X` names the same item everywhere. What stays in this crate is storage's
//! own use of the format: `retain`, the record filter compaction rewrites batches with.

pub use brook_batch::*;
pub(crate) mod retain;
