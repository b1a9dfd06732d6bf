//! The four codecs Kafka compresses a batch's records with, framed exactly as Kafka frames them.
//!
//! - gzip: an RFC 1952 stream (several members are accepted, as Java's `GZIPInputStream` does).
//! - snappy: written in the xerial block framing the Java client uses (a 16-byte header, then
//!   big-endian u32 length + raw snappy block for each 32 KiB of input). Read in that framing or
//!   as one raw snappy block, which librdkafka writes; like Java, the header decides.
//! - lz4: the LZ4 *frame* format (magic `04 22 4d 18`), 64 KiB independent blocks, no checksums
//!   (the batch CRC covers the bytes), as Kafka's `Lz4BlockOutputStream` writes it.
//! - zstd: a zstd frame stream.
//!
//! Decompression never trusts a size in the input: the output is capped at a limit the caller
//! passes (see [`decompressed_bytes_max`]), memory grows only with what was really produced,
//! and a stream that would exceed the limit is refused. That keeps a zip bomb in a 1 MiB produce
//! request from taking the broker's memory.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};

use super::Compression;
use crate::error::BatchError;

/// The most a batch may inflate: decompressed records may take this many times the batch's
/// size on the wire (but see [`DECOMPRESSED_BYTES_FLOOR`]). Real data rarely passes 20x.
pub const DECOMPRESSION_RATIO_MAX: usize = 64;
/// Small batches may always inflate to this many bytes, whatever their size.
pub const DECOMPRESSED_BYTES_FLOOR: usize = 16 << 20;

/// The decompressed size allowed for the records of a batch of `batch_len` bytes.
///
/// A function of the batch alone, so a batch that passed validation on append can always be
/// read back, whatever limits are configured later.
pub fn decompressed_bytes_max(batch_len: usize) -> usize {
    batch_len
        .saturating_mul(DECOMPRESSION_RATIO_MAX)
        .max(DECOMPRESSED_BYTES_FLOOR)
}

/// The xerial snappy stream header: magic, version 1, minimum compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The part of the header that identifies the framing (what Java's `SnappyInputStream` checks).
const XERIAL_MAGIC_LEN: usize = 8;
/// Uncompressed bytes per xerial block, as snappy-java writes them.
const XERIAL_BLOCK: usize = 32 * 1024;
/// Kafka's default gzip level (`compression.gzip.level`).
const GZIP_LEVEL: u32 = 6;
/// Kafka's default zstd level (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;
/// liblz4's fast mode. Kafka's default is 9 (HC); brook builds batches on the produce path of
/// its own doors, where speed is worth more than the last few percent of ratio.
const LZ4_LEVEL: u32 = 0;
/// zstd's own default cap on the window a frame may ask for (128 MiB, what level 22 uses).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// Appends `input` compressed with `codec` to `out`. `Compression::None` copies.
pub fn compress(codec: Compression, input: &[u8], out: &mut BytesMut) -> Result<(), BatchError> {
    let failed = |e: std::io::Error| BatchError::Compress {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
        Compression::Snappy => snappy_compress_xerial(input, out)?,
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .level(LZ4_LEVEL)
                .build(out.writer())
                .map_err(failed)?;
            encoder.write_all(input).map_err(failed)?;
            let (_, finished) = encoder.finish();
            finished.map_err(failed)?;
        }
        Compression::Zstd => {
            let mut encoder =
                zstd::stream::write::Encoder::new(out.writer(), ZSTD_LEVEL).map_err(failed)?;
            encoder.write_all(input).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
    }
    Ok(())
}

/// Decompresses `input` (a batch's records section) into a new buffer of at most `limit` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let failed = |e: std::io::Error| BatchError::Decompress {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => {
            check_limit(codec, input.len(), limit)?;
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Compression::Snappy => snappy_decompress(input, limit),
        Compression::Lz4 => {
            let mut decoder = lz4::Decoder::new(input).map_err(failed)?;
            let out = read_bounded(codec, &mut decoder, limit)?;
            // The decoder reports a frame cut short as a clean end of stream; only `finish`
            // tells whether the frame's end mark was reached.
            let (_, finished) = decoder.finish();
            finished.map_err(|_| BatchError::Decompress {
                codec,
                reason: "lz4 frame ends before its end mark".to_string(),
            })?;
            Ok(out)
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(failed)?;
            // A frame may ask for a window of up to 2^27 bytes, which the decoder allocates
            // up front; never allow one larger than the output we would accept anyway.
            decoder
                .window_log_max(zstd_window_log_max(limit))
                .map_err(failed)?;
            read_bounded(codec, decoder, limit)
        }
    }
}

/// The largest window (as a power of two) a zstd frame may ask for: no larger than the output
/// we would accept anyway, but never below the floor every batch is allowed, because streaming
/// compressors (zstd-jni in Kafka's Java client) pick the window from the level, not from the
/// input size: level 3 asks for 2^21 bytes whatever it compresses, level 19 for 2^23.
fn zstd_window_log_max(limit: usize) -> u32 {
    let cap = limit.max(DECOMPRESSED_BYTES_FLOOR);
    (usize::BITS - 1 - cap.leading_zeros()).min(ZSTD_WINDOW_LOG_MAX)
}

/// Reads `reader` to its end, refusing to produce more than `limit` bytes.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    reader
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompress {
            codec,
            reason: e.to_string(),
        })?;
    check_limit(codec, out.len(), limit)?;
    Ok(out)
}

fn check_limit(codec: Compression, size: usize, limit: usize) -> Result<(), BatchError> {
    if size > limit {
        return Err(BatchError::Decompress {
            codec,
            reason: format!("records inflate past the limit of {limit} bytes"),
        });
    }
    Ok(())
}

fn snappy_compress_xerial(input: &[u8], out: &mut BytesMut) -> Result<(), BatchError> {
    let mut encoder = snap::raw::Encoder::new();
    out.extend_from_slice(XERIAL_HEADER);
    for block in input.chunks(XERIAL_BLOCK) {
        let length_at = out.len();
        let data_at = length_at + 4;
        out.resize(data_at + snap::raw::max_compress_len(block.len()), 0);
        let written =
            encoder
                .compress(block, &mut out[data_at..])
                .map_err(|e| BatchError::Compress {
                    codec: Compression::Snappy,
                    reason: e.to_string(),
                })?;
        out.truncate(data_at + written);
        // A 32 KiB block compresses to well under 4 GiB.
        out[length_at..data_at].copy_from_slice(&(written as u32).to_be_bytes());
    }
    Ok(())
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    if input.len() >= XERIAL_HEADER.len()
        && input[..XERIAL_MAGIC_LEN] == XERIAL_HEADER[..XERIAL_MAGIC_LEN]
    {
        let mut rest = &input[XERIAL_HEADER.len()..];
        while !rest.is_empty() {
            let Some((length, after)) = rest.split_first_chunk::<4>() else {
                return Err(snappy_error("xerial block length cut short"));
            };
            let length = u32::from_be_bytes(*length) as usize;
            if length > after.len() {
                return Err(snappy_error("xerial block longer than the bytes present"));
            }
            let (block, after) = after.split_at(length);
            snappy_block_into(block, &mut out, limit)?;
            rest = after;
        }
    } else {
        snappy_block_into(input, &mut out, limit)?;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its claimed size against `limit` before
/// allocating for it.
fn snappy_block_into(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), BatchError> {
    let claimed = snap::raw::decompress_len(block).map_err(|e| snappy_error(e.to_string()))?;
    let start = out.len();
    check_limit(Compression::Snappy, start.saturating_add(claimed), limit)?;
    out.resize(start + claimed, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| snappy_error(e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_error(reason: impl Into<String>) -> BatchError {
    BatchError::Decompress {
        codec: Compression::Snappy,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn compressed(codec: Compression, input: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        compress(codec, input, &mut out).expect("compress");
        out.to_vec()
    }

    #[test]
    fn every_codec_round_trips_across_block_sizes() {
        for codec in Compression::ALL {
            for len in [0, 1, 100, XERIAL_BLOCK, XERIAL_BLOCK + 1, 200_000] {
                let input = sample(len);
                let packed = compressed(codec, &input);
                let unpacked = decompress(codec, &packed, len.max(1)).expect("decompress");
                assert_eq!(unpacked, input, "{codec} with {len} bytes");
            }
        }
    }

    #[test]
    fn kafka_framings_are_written() {
        assert!(compressed(Compression::Gzip, b"x").starts_with(&[0x1f, 0x8b]));
        assert!(compressed(Compression::Snappy, b"x").starts_with(XERIAL_HEADER));
        assert!(compressed(Compression::Lz4, b"x").starts_with(&[0x04, 0x22, 0x4d, 0x18]));
        assert!(compressed(Compression::Zstd, b"x").starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_read() {
        let input = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).expect("raw");
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).expect("raw"),
            input
        );
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        for codec in Compression::ALL {
            let packed = compressed(codec, &zeros);
            let err = decompress(codec, &packed, (1 << 20) - 1).expect_err("over the limit");
            assert!(
                matches!(err, BatchError::Decompress { reason, .. } if reason.contains("limit")),
                "{codec}"
            );
            assert_eq!(
                decompress(codec, &packed, 1 << 20).expect("at limit").len(),
                1 << 20
            );
        }
    }

    #[test]
    fn cut_or_garbled_streams_are_errors() {
        let input = sample(50_000);
        for codec in Compression::ALL[1..].iter().copied() {
            let packed = compressed(codec, &input);
            for cut in [1, packed.len() / 2, packed.len() - 1] {
                let got = decompress(codec, &packed[..cut], 1 << 20);
                assert!(got.is_err(), "{codec} cut at {cut} of {}", packed.len());
            }
        }
        let garbage = [0xffu8; 64];
        for codec in Compression::ALL[1..].iter().copied() {
            assert!(decompress(codec, &garbage, 1 << 20).is_err(), "{codec}");
        }
    }

    #[test]
    fn limit_rule_has_a_floor_and_scales() {
        assert_eq!(decompressed_bytes_max(100), DECOMPRESSED_BYTES_FLOOR);
        assert_eq!(decompressed_bytes_max(1 << 20), 64 << 20);
        assert_eq!(decompressed_bytes_max(usize::MAX), usize::MAX);
        assert_eq!(zstd_window_log_max(16 << 20), 24);
        assert_eq!(zstd_window_log_max(1), 24);
        assert_eq!(zstd_window_log_max(100 << 20), 26);
        assert_eq!(zstd_window_log_max(usize::MAX), 27);
    }
}
