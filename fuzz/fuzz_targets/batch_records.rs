//! The batch validator and the read path every decoding door shares, on arbitrary bytes:
//! `brook_log::batch::validate` (what a produced batch must pass), the `Batches` walk and
//! `records` decoding, and the broker's mapping of fetched bytes to `ConsumerRecord`s. None
//! may panic or allocate beyond its bounds, whatever the input.
#![no_main]

use brook_broker::Fetched;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = brook_log::batch::validate(data, 1 << 20);
    for batch in brook_log::batch::Batches::new(data) {
        let Ok(batch) = batch else { break };
        if let Ok(records) = brook_log::batch::records(Bytes::copy_from_slice(batch.bytes)) {
            for record in records {
                if record.is_err() {
                    break;
                }
            }
        }
    }
    let fetched = Fetched {
        topic: "fuzz".into(),
        partition: 0,
        offset: 0,
        batches: Bytes::copy_from_slice(data),
        high_watermark: u64::MAX,
        last_stable_offset: u64::MAX,
        log_start_offset: 0,
        aborted: Vec::new(),
    };
    let _ = fetched.records();
    let _ = fetched.next_offset();
});
