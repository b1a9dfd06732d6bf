//! Walks consecutive whole batches in a byte buffer: what a partition log read returns, what a
//! segment holds, what a Kafka fetch response carries.
//!
//! Only headers are read (length, magic, counts; not the CRC and not the records), so walking
//! is cheap. A batch cut off by the end of the buffer ends the walk cleanly and is left in
//! [`Batches::remainder`]: a fetch bounded by bytes may end mid-batch. A header that cannot be
//! right (bad length, magic, counts or codec) is an error, after which the walk ends.

use super::header::{BatchHeader, HEADER_LEN};
use crate::error::BatchError;

/// One whole batch found by [`Batches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef<'a> {
    pub header: BatchHeader,
    /// The batch's bytes, exactly `header.total_len()` of them.
    pub bytes: &'a [u8],
    /// Where the batch starts in the buffer being walked.
    pub position: usize,
}

/// Iterator over the whole batches at the start of a buffer.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// The bytes not yet walked: once the iterator has ended without an error, the partial
    /// batch at the end of the buffer (empty when the buffer ended on a batch boundary).
    pub fn remainder(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Position in the buffer of the next batch (the end of the last one returned).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchRef<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.remainder();
        if self.failed || rest.len() < HEADER_LEN {
            return None;
        }
        let header =
            match BatchHeader::parse(rest).and_then(|h| h.check_shape(usize::MAX).map(|()| h)) {
                Ok(header) => header,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
        let total = header.total_len();
        if total > rest.len() {
            return None;
        }
        let position = self.pos;
        self.pos += total;
        Some(Ok(BatchRef {
            header,
            bytes: &rest[..total],
            position,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{BatchBuilder, RecordRef};
    use crate::header::{patch_base_offset, MAGIC_AT};
    use crate::Compression;

    /// Three batches of 1, 2 and 3 records at offsets 0, 1 and 3, back to back.
    fn log() -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut next = 0;
        for n in 1..=3 {
            let mut builder = BatchBuilder::new(Compression::None);
            for i in 0..n {
                builder.push(RecordRef {
                    key: None,
                    value: Some(&[i as u8; 10]),
                    headers: &[],
                    timestamp: i,
                });
            }
            let mut batch = builder.build().expect("build");
            patch_base_offset(&mut batch, next);
            next += n;
            buf.extend_from_slice(&batch);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn walks_whole_batches_in_order() {
        let (buf, ends) = log();
        let mut walk = Batches::new(&buf);
        let found: Vec<_> = walk.by_ref().collect::<Result<_, _>>().expect("walk");
        let offsets: Vec<_> = found
            .iter()
            .map(|b| (b.header.base_offset, b.header.records_count))
            .collect();
        assert_eq!(offsets, [(0, 1), (1, 2), (3, 3)]);
        let positions: Vec<_> = found.iter().map(|b| b.position).collect();
        assert_eq!(positions, [0, ends[0], ends[1]]);
        assert!(found.iter().all(|b| b.bytes.len() == b.header.total_len()));
        assert!(walk.remainder().is_empty());
        assert_eq!(walk.position(), buf.len());
    }

    #[test]
    fn stops_cleanly_at_a_partial_trailing_batch_at_every_cut() {
        let (buf, ends) = log();
        for cut in 0..=buf.len() {
            let mut walk = Batches::new(&buf[..cut]);
            let whole: Vec<_> = walk
                .by_ref()
                .collect::<Result<_, _>>()
                .expect("whole batches");
            assert_eq!(
                whole.len(),
                ends.iter().filter(|&&end| end <= cut).count(),
                "cut at {cut}"
            );
            let boundary = ends
                .iter()
                .copied()
                .filter(|&end| end <= cut)
                .max()
                .unwrap_or(0);
            assert_eq!(walk.remainder(), &buf[boundary..cut]);
        }
    }

    #[test]
    fn a_bad_header_is_an_error_and_ends_the_walk() {
        let (mut buf, ends) = log();
        buf[ends[0] + MAGIC_AT] = 1;
        let mut walk = Batches::new(&buf);
        assert!(walk.next().expect("first").is_ok());
        assert_eq!(walk.next(), Some(Err(BatchError::BadMagic(1))));
        assert_eq!(walk.next(), None);
        assert_eq!(walk.position(), ends[0]);
    }
}
