//! Control batches: the transaction markers (commit or abort) the broker writes into every
//! partition a transaction touched, as Kafka does (KIP-98).
//!
//! A control batch has the transactional and control attribute bits set, the producer id and
//! epoch of the transaction it ends, base sequence -1, and exactly one record, whose key and
//! value are:
//!
//! | part  | field               | type | notes                          |
//! |-------|---------------------|------|--------------------------------|
//! | key   | `version`           | i16  | 0                              |
//! | key   | `type`              | i16  | 0 abort, 1 commit              |
//! | value | `version`           | i16  | 0                              |
//! | value | `coordinatorEpoch`  | i32  | the coordinator that wrote it  |
//!
//! Only the broker writes these (`PartitionLog::append_marker`); a client's batch with the
//! control bit set is refused. Readers that decode records skip them; the Kafka door hands them
//! to clients, which skip them too.

use bytes::Bytes;

use super::builder::{BatchBuilder, RecordRef};
use super::records::records;
use super::Compression;
use crate::error::BatchError;

/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit 5: the batch is a control batch.
pub const CONTROL_BIT: i16 = 0x20;

/// Which way a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort = 0,
    Commit = 1,
}

impl ControlType {
    /// "abort" or "commit".
    pub fn name(self) -> &'static str {
        match self {
            Self::Abort => "abort",
            Self::Commit => "commit",
        }
    }
}

/// The one record of a transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTxnMarker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    pub fn commit(coordinator_epoch: i32) -> Self {
        Self {
            control: ControlType::Commit,
            coordinator_epoch,
        }
    }

    pub fn abort(coordinator_epoch: i32) -> Self {
        Self {
            control: ControlType::Abort,
            coordinator_epoch,
        }
    }

    /// The record key: version 0, then the control type.
    pub fn key(&self) -> [u8; 4] {
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&(self.control as i16).to_be_bytes());
        key
    }

    /// The record value: version 0, then the coordinator epoch.
    pub fn value(&self) -> [u8; 6] {
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    /// Decodes a control record's key and value (a null value reads as coordinator epoch -1,
    /// as Kafka's reader allows for it).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, BatchError> {
        let bad = |reason| BatchError::BadRecord { offset: 0, reason };
        if key.len() < 4 {
            return Err(bad("control record key shorter than 4 bytes"));
        }
        if i16::from_be_bytes([key[0], key[1]]) != 0 {
            return Err(bad("control record key version is not 0"));
        }
        let control = match i16::from_be_bytes([key[2], key[3]]) {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            _ => return Err(bad("control record type is neither abort nor commit")),
        };
        let coordinator_epoch = match value {
            None => -1,
            Some(v) if v.len() >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
            Some(_) => return Err(bad("control record value shorter than 6 bytes")),
        };
        Ok(Self {
            control,
            coordinator_epoch,
        })
    }

    /// The marker carried by a whole stored control batch.
    pub fn from_batch(batch: Bytes) -> Result<Self, BatchError> {
        let mut decoded = records(batch)?;
        if !decoded.header().is_control() {
            return Err(BatchError::BadRecord {
                offset: 0,
                reason: "not a control batch",
            });
        }
        let record = decoded.next().ok_or(BatchError::BadRecord {
            offset: 0,
            reason: "control batch without a record",
        })??;
        let key = record.key.ok_or(BatchError::BadRecord {
            offset: 0,
            reason: "control record without a key",
        })?;
        Self::decode(&key, record.value.as_deref())
    }
}

/// A control batch ending `producer_id`'s transaction: one record, base offset 0 (the log
/// assigns it), transactional and control bits set, base sequence -1.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp_ms: i64,
) -> Vec<u8> {
    let key = marker.key();
    let value = marker.value();
    let mut builder = BatchBuilder::new(Compression::None)
        .with_producer(producer_id, producer_epoch, -1)
        .with_attributes(TRANSACTIONAL_BIT | CONTROL_BIT);
    builder.push(RecordRef {
        key: Some(&key),
        value: Some(&value),
        headers: &[],
        timestamp: timestamp_ms,
    });
    // One small uncompressed record cannot fail to build.
    builder
        .build()
        .map(|b| b.to_vec())
        .unwrap_or_else(|_| unreachable!("a one-record control batch always builds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchHeader;

    #[test]
    fn markers_round_trip_through_a_batch() {
        for marker in [EndTxnMarker::commit(7), EndTxnMarker::abort(-1)] {
            let batch = control_batch(42, 3, marker, 1_000);
            let header = BatchHeader::parse_checked(&batch, 1 << 20).expect("a valid batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!(header.records_count, 1);
            assert_eq!(EndTxnMarker::from_batch(Bytes::from(batch)), Ok(marker));
        }
    }

    #[test]
    fn key_and_value_are_kafkas_bytes() {
        let marker = EndTxnMarker::commit(5);
        assert_eq!(marker.key(), [0, 0, 0, 1]);
        assert_eq!(marker.value(), [0, 0, 0, 0, 0, 5]);
        assert_eq!(EndTxnMarker::abort(0).key(), [0, 0, 0, 0]);
    }

    #[test]
    fn bad_control_records_are_errors() {
        assert!(EndTxnMarker::decode(&[0, 0, 0], None).is_err());
        assert!(EndTxnMarker::decode(&[0, 1, 0, 0], None).is_err());
        assert!(EndTxnMarker::decode(&[0, 0, 0, 2], None).is_err());
        assert!(EndTxnMarker::decode(&[0, 0, 0, 1], Some(&[0, 0])).is_err());
        assert_eq!(
            EndTxnMarker::decode(&[0, 0, 0, 0], None),
            Ok(EndTxnMarker::abort(-1))
        );
        let mut plain = BatchBuilder::new(Compression::None);
        plain.push(RecordRef {
            key: Some(b"k"),
            value: None,
            headers: &[],
            timestamp: 0,
        });
        let plain = plain.build().expect("build").freeze();
        assert!(EndTxnMarker::from_batch(plain).is_err());
    }
}
