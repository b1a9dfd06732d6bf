//! Zig-zag varints, the integer encoding inside Kafka records (protobuf's `sint32` / `sint64`).
//!
//! A varint (i32) takes at most 5 bytes and a varlong (i64) at most 10. Zig-zag encoding maps
//! small magnitudes of either sign to small unsigned numbers, so `-1` (a null key) is one byte.
//! For a value in the i32 range both encodings produce the same bytes, which lets the writer use
//! one routine for both.
//!
//! Every read is checked against the bytes present and reports where it failed: a varint cut off
//! by the end of the input is [`BatchError::Truncated`] (`offset` is where the varint starts,
//! `need` the bytes it needs at least, `have` the bytes there are); one that is too long or
//! overflows its type is [`BatchError::BadRecord`]. Positions are indexes into the slice given,
//! so a caller that parses a prefix-sliced frame gets positions in the whole frame.

use bytes::BufMut;

use crate::error::BatchError;

/// The most bytes a varint (i32) may take.
pub const VARINT_MAX_BYTES: usize = 5;
/// The most bytes a varlong (i64) may take.
pub const VARLONG_MAX_BYTES: usize = 10;

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// Encoded size of `value` as a varlong (also right for a varint when it fits in i32).
#[inline]
pub fn varlong_len(value: i64) -> usize {
    // ceil(significant bits / 7) without a division: protobuf's VarintSize64.
    let log2 = 63 - (zigzag(value) | 1).leading_zeros() as usize;
    (log2 * 9 + 73) / 64
}

/// Encoded size of `value` as a varint (the writer encodes every integer as a varlong; this
/// and [`put_varint`] are the other half of [`read_varint`]'s round trip tests).
#[cfg(test)]
pub fn varint_len(value: i32) -> usize {
    varlong_len(value as i64)
}

/// Appends `value` as a varlong.
#[inline]
pub fn put_varlong(buf: &mut impl BufMut, value: i64) {
    // Byte by byte: most varints in a record are one or two bytes, and `put_u8` is a capacity
    // check and a store, where a slice copy would be a call to memcpy.
    let mut raw = zigzag(value);
    while raw >= 0x80 {
        buf.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.put_u8(raw as u8);
}

/// Appends `value` as a varint.
#[cfg(test)]
pub fn put_varint(buf: &mut impl BufMut, value: i32) {
    put_varlong(buf, value as i64);
}

/// Reads the varint at `*pos` and moves `*pos` past it.
#[inline]
pub fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<i32, BatchError> {
    let mut end = *pos;
    let raw = read_unsigned(bytes, &mut end, VARINT_MAX_BYTES)?;
    let raw = u32::try_from(raw).map_err(|_| BatchError::BadRecord {
        offset: *pos,
        reason: "varint overflows 32 bits",
    })?;
    *pos = end;
    Ok(unzigzag(raw as u64) as i32)
}

/// Reads the varlong at `*pos` and moves `*pos` past it.
#[inline]
pub fn read_varlong(bytes: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    Ok(unzigzag(read_unsigned(bytes, pos, VARLONG_MAX_BYTES)?))
}

/// Reads a little-endian base-128 number of at most `max_bytes` bytes.
fn read_unsigned(bytes: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, BatchError> {
    let start = *pos;
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some(&byte) = bytes.get(start + i) else {
            return Err(BatchError::Truncated {
                offset: start,
                need: i + 1,
                have: bytes.len().saturating_sub(start),
            });
        };
        let payload = (byte & 0x7f) as u64;
        let shift = 7 * i as u32;
        // The last byte of a varlong holds one bit (63 = 9 * 7); more would be lost.
        if shift == 63 && payload > 1 {
            return Err(BatchError::BadRecord {
                offset: start,
                reason: "varlong overflows 64 bits",
            });
        }
        value |= payload << shift;
        if byte & 0x80 == 0 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(BatchError::BadRecord {
        offset: start,
        reason: if max_bytes == VARINT_MAX_BYTES {
            "varint longer than 5 bytes"
        } else {
            "varlong longer than 10 bytes"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_long(value: i64) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varlong(&mut buf, value);
        buf
    }

    #[test]
    fn known_encodings_match_kafka() {
        // From Kafka's ByteUtilsTest: zig-zag maps 0, -1, 1, -2, 2 to 0, 1, 2, 3, 4.
        assert_eq!(encode_long(0), [0x00]);
        assert_eq!(encode_long(-1), [0x01]);
        assert_eq!(encode_long(1), [0x02]);
        assert_eq!(encode_long(-2), [0x03]);
        assert_eq!(encode_long(63), [0x7e]);
        assert_eq!(encode_long(64), [0x80, 0x01]);
        assert_eq!(encode_long(i32::MAX as i64), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encode_long(i32::MIN as i64), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encode_long(i64::MIN).len(), VARLONG_MAX_BYTES);
    }

    #[test]
    fn truncation_reports_where_and_how_much() {
        let bytes = [0x00, 0x80, 0x80];
        let mut pos = 1;
        assert_eq!(
            read_varint(&bytes, &mut pos),
            Err(BatchError::Truncated {
                offset: 1,
                need: 3,
                have: 2
            })
        );
        assert_eq!(pos, 1, "a failed read does not move the position");
        let mut pos = 3;
        assert_eq!(
            read_varlong(&bytes, &mut pos),
            Err(BatchError::Truncated {
                offset: 3,
                need: 1,
                have: 0
            })
        );
    }

    #[test]
    fn overlong_and_overflowing_varints_are_rejected() {
        let mut pos = 0;
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(matches!(
            read_varint(&six, &mut pos),
            Err(BatchError::BadRecord { offset: 0, .. })
        ));
        // Five bytes whose value needs more than 32 bits.
        let wide = [0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(matches!(
            read_varint(&wide, &mut pos),
            Err(BatchError::BadRecord { .. })
        ));
        assert_eq!(pos, 0, "a failed read does not move the position");
        let eleven = [0x80u8; 11];
        assert!(matches!(
            read_varlong(&eleven, &mut pos),
            Err(BatchError::BadRecord { .. })
        ));
        let mut tenth_too_big = [0xffu8; 10];
        tenth_too_big[9] = 0x02;
        assert!(matches!(
            read_varlong(&tenth_too_big, &mut pos),
            Err(BatchError::BadRecord { .. })
        ));
    }

    proptest! {
        #[test]
        fn varlong_round_trips(value: i64, prefix in 0usize..4) {
            let mut buf = vec![0xaa; prefix];
            put_varlong(&mut buf, value);
            prop_assert_eq!(buf.len() - prefix, varlong_len(value));
            let mut pos = prefix;
            prop_assert_eq!(read_varlong(&buf, &mut pos)?, value);
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn varint_round_trips(value: i32) {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            prop_assert_eq!(buf.len(), varint_len(value));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&buf, &mut pos)?, value);
        }

        #[test]
        fn every_cut_of_a_varlong_is_truncated(value: i64) {
            let buf = encode_long(value);
            for cut in 0..buf.len() {
                let mut pos = 0;
                let is_truncated = matches!(
                    read_varlong(&buf[..cut], &mut pos),
                    Err(BatchError::Truncated { .. })
                );
                prop_assert!(is_truncated);
            }
        }
    }
}
