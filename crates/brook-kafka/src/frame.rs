//! Kafka framing over one TCP connection: a 4-byte big-endian size, then that many bytes.
//!
//! The size prefix is checked against `request_bytes_max` (and against the smallest possible
//! request header) before a single byte is reserved for the frame, so a peer announcing a 2 GiB
//! frame costs nothing. [`split_frame`] is the codec with no IO; [`Connection`] adds the socket
//! (brook-door's, which holds the connection's place under the door's cap), in the clear or
//! over TLS.

use brook_door::tls::Stream as Socket;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use crate::error::KafkaError;

/// Bytes of the size prefix in front of every request and response.
pub(crate) const SIZE_PREFIX: usize = 4;
/// The smallest request: api_key (2), api_version (2), correlation_id (4).
pub(crate) const MIN_REQUEST_BYTES: usize = 8;
/// Read buffer a connection starts with; grows only to the size of a frame that passed the limit.
const INITIAL_READ_BUFFER: usize = 8 * 1024;

/// Splits one whole frame (without its size prefix) off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` has then been given room for the announced
/// frame, which is at most `max` bytes. An unacceptable size prefix is an error, and the
/// connection must be closed: the stream cannot be resynchronised after it.
pub(crate) fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, KafkaError> {
    let Some(prefix) = buf.first_chunk::<SIZE_PREFIX>() else {
        return Ok(None);
    };
    let size = i64::from(i32::from_be_bytes(*prefix));
    if size < MIN_REQUEST_BYTES as i64 {
        return Err(KafkaError::FrameTooShort {
            size,
            min: MIN_REQUEST_BYTES,
        });
    }
    if size > max as i64 {
        return Err(KafkaError::FrameTooLarge { size, max });
    }
    // Checked above: 8 <= size <= max, which fits usize.
    let size = size as usize;
    let need = SIZE_PREFIX + size;
    if buf.len() < need {
        buf.reserve(need - buf.len());
        return Ok(None);
    }
    buf.advance(SIZE_PREFIX);
    Ok(Some(buf.split_to(size).freeze()))
}

/// A response being built: room for the size prefix, then header and body, encoded in place.
pub(crate) struct ResponseFrame {
    buf: BytesMut,
}

impl ResponseFrame {
    /// An empty frame with `capacity` bytes reserved for header and body.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(SIZE_PREFIX + capacity);
        buf.extend_from_slice(&[0; SIZE_PREFIX]);
        Self { buf }
    }

    /// Where the header and body are encoded.
    pub(crate) fn body_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The frame with its size prefix filled in.
    pub(crate) fn finish(mut self) -> Result<Bytes, KafkaError> {
        let size = self.buf.len() - SIZE_PREFIX;
        let size = i32::try_from(size).map_err(|_| KafkaError::ResponseTooLarge { size })?;
        self.buf[..SIZE_PREFIX].copy_from_slice(&size.to_be_bytes());
        Ok(self.buf.freeze())
    }
}

/// One client connection: reads request frames, writes response frames.
pub(crate) struct Connection {
    stream: BufWriter<Socket>,
    buffer: BytesMut,
    request_bytes_max: usize,
}

impl Connection {
    pub(crate) fn new(stream: Socket, request_bytes_max: usize) -> Self {
        Self {
            stream: BufWriter::new(stream),
            buffer: BytesMut::with_capacity(INITIAL_READ_BUFFER),
            request_bytes_max,
        }
    }

    /// The next request frame; `None` when the peer closed the connection between frames.
    pub(crate) async fn read_frame(&mut self) -> Result<Option<Bytes>, KafkaError> {
        loop {
            if let Some(frame) = split_frame(&mut self.buffer, self.request_bytes_max)? {
                return Ok(Some(frame));
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                return Err(KafkaError::Truncated {
                    need: self.announced_len(),
                    have: self.buffer.len(),
                });
            }
        }
    }

    /// Bytes the frame at the front of the buffer announced, prefix included (when known).
    fn announced_len(&self) -> usize {
        match self.buffer.first_chunk::<SIZE_PREFIX>() {
            Some(prefix) => SIZE_PREFIX + i32::from_be_bytes(*prefix).max(0) as usize,
            None => SIZE_PREFIX,
        }
    }

    /// Writes one whole response frame and flushes it.
    pub(crate) async fn write_frame(&mut self, frame: &[u8]) -> Result<(), KafkaError> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(body.len() as i32).to_be_bytes());
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn splits_whole_frames_and_waits_for_partial_ones() {
        let mut buf = framed(&[1; 10]);
        buf.extend_from_slice(&framed(&[2; 12])[..7]);
        let first = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&first[..], &[1; 10]);
        assert!(split_frame(&mut buf, 1024).unwrap().is_none());
        assert!(
            buf.capacity() >= 16,
            "room reserved for the announced frame"
        );
        buf.extend_from_slice(&[2; 9]);
        let second = split_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&second[..], &[2; 12]);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_prefix_is_refused_before_reserving() {
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&i32::MAX.to_be_bytes());
        let err = split_frame(&mut buf, 1 << 20).unwrap_err();
        assert!(
            matches!(err, KafkaError::FrameTooLarge { size, max } if size == i32::MAX as i64 && max == 1 << 20)
        );
        assert!(
            buf.capacity() < 1024,
            "nothing reserved: {}",
            buf.capacity()
        );
    }

    #[test]
    fn negative_and_tiny_prefixes_are_refused() {
        for size in [-1i32, 0, 7] {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&size.to_be_bytes());
            assert!(
                matches!(
                    split_frame(&mut buf, 1024),
                    Err(KafkaError::FrameTooShort { .. })
                ),
                "{size}"
            );
        }
    }

    #[test]
    fn response_frame_fills_its_size_prefix() {
        let mut frame = ResponseFrame::with_capacity(8);
        frame.body_mut().extend_from_slice(b"hello");
        let bytes = frame.finish().unwrap();
        assert_eq!(&bytes[..], b"\0\0\0\x05hello");
    }
}
