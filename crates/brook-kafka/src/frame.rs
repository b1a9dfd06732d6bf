//! Kafka framing over one TCP connection: a 4-byte big-endian size, then that many bytes.
//!
//! The size prefix is checked against `request_bytes_max` (and against the smallest possible
//! request header) before a single byte is reserved for the frame, so a peer announcing a 2 GiB
//! frame costs nothing. [`split_frame`] is the codec with no IO; [`Connection`] adds the socket
//! (brook-door's, which holds the connection's place under the door's cap), in the clear or
//! over TLS.
//!
//! A response is encoded by `kafka-protocol`'s encoder into a [`ResponseFrame`], which can pass
//! stored bytes through without copying them: a Fetch response's record batches (up to the
//! fetch size, a megabyte by default) stay the `Bytes` the log read and go out as parts of their
//! own in one vectored write, between the encoded bytes before and after them. What is on the
//! wire is exactly what encoding the whole response into one buffer gives.

use std::io::IoSlice;
use std::ops::Range;

use brook_door::tls::Stream as Socket;
use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
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

/// Shared bytes shorter than this are copied into the frame like any other field: a part of
/// their own costs an IO vector entry and a reference count, which pays only for large slices.
const SHARE_MIN_BYTES: usize = 4 * 1024;
/// IO vector entries handed to one vectored write, at most (Linux's `IOV_MAX` is 1024).
const WRITE_PARTS_MAX: usize = 64;

/// A response frame ready to write: size prefix, header and body, in one or more parts whose
/// concatenation is the frame (stored record batches travel as parts of their own, uncopied).
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    parts: Vec<Bytes>,
}

impl Frame {
    /// The frame's bytes, in parts.
    pub(crate) fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// Bytes in the frame, size prefix included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// The frame as one contiguous buffer (a copy when it has several parts).
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => parts.concat().into(),
        }
    }
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Self {
        Self { parts: vec![bytes] }
    }
}

/// A response being built: its size prefix (known before encoding), then header and body,
/// encoded in place by `kafka-protocol`'s encoder, which sees one growing buffer.
///
/// When the encoder writes a slice that is one of the `shared` buffers given at the start (the
/// very same bytes: same address, same length, [`SHARE_MIN_BYTES`] or more), the bytes encoded
/// so far become a part, that buffer becomes the next part (a reference, not a copy), and
/// encoding goes on into a fresh part. The bytes of the frame are those one buffer would hold.
pub(crate) struct ResponseFrame {
    /// Encoded bytes not yet sealed into a part.
    head: BytesMut,
    /// Sealed parts, in order.
    parts: Vec<Bytes>,
    /// Bytes in `parts`.
    sealed: usize,
    /// Bytes the size prefix announces (header and body).
    size: usize,
    /// Buffers passed through as parts when the encoder writes them whole.
    shared: Vec<Bytes>,
}

impl ResponseFrame {
    /// A frame announcing `size` bytes of header and body, to be encoded from its start;
    /// `shared` lists the buffers to pass through uncopied (see the type's doc).
    pub(crate) fn new(size: usize, shared: Vec<Bytes>) -> Result<Self, KafkaError> {
        let announced = i32::try_from(size).map_err(|_| KafkaError::ResponseTooLarge { size })?;
        let passed: usize = shared
            .iter()
            .map(Bytes::len)
            .filter(|&len| len >= SHARE_MIN_BYTES)
            .sum();
        let mut head = BytesMut::with_capacity(SIZE_PREFIX + size.saturating_sub(passed));
        head.extend_from_slice(&announced.to_be_bytes());
        Ok(Self {
            head,
            parts: Vec::new(),
            sealed: 0,
            size,
            shared,
        })
    }

    /// The frame, once exactly the announced bytes were encoded; an error otherwise (an
    /// encoder whose size computation disagrees with what it wrote).
    pub(crate) fn finish(mut self) -> Result<Frame, KafkaError> {
        let written = self.sealed + self.head.len() - SIZE_PREFIX;
        if written != self.size {
            return Err(KafkaError::ResponseSizeMismatch {
                announced: self.size,
                written,
            });
        }
        if !self.head.is_empty() {
            self.parts.push(self.head.freeze());
        }
        Ok(Frame { parts: self.parts })
    }

    /// The shared buffer that `src` is, if any.
    fn shared_as(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARE_MIN_BYTES {
            return None;
        }
        self.shared
            .iter()
            .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            .cloned()
    }
}

// BufMut is an unsafe trait, and the encoder's buffer must be one.
#[allow(unsafe_code)]
// SAFETY: every method hands on to `head`, a `BytesMut`, whose implementation upholds the
// trait's contract; `put_slice` adds only sealing `head` and pushing whole parts.
unsafe impl BufMut for ResponseFrame {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is about `head`'s chunk, handed out below.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared_as(src) {
            Some(part) => {
                if !self.head.is_empty() {
                    self.sealed += self.head.len();
                    self.parts.push(self.head.split().freeze());
                }
                self.sealed += part.len();
                self.parts.push(part);
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

/// Positions count from the start of the frame (size prefix included). `kafka-protocol`'s
/// message encoders never seek back or reserve gaps; were one to, it could reach only bytes not
/// yet sealed into a part.
impl ByteBufMut for ResponseFrame {
    fn offset(&self) -> usize {
        self.sealed + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(
            offset >= self.sealed,
            "seek into a sealed part of a response"
        );
        self.head.resize(offset - self.sealed, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(
            r.start >= self.sealed,
            "range in a sealed part of a response"
        );
        &mut self.head[r.start - self.sealed..r.end - self.sealed]
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

    /// Writes one whole response frame and flushes it. A frame of several parts goes out in
    /// vectored writes straight to the socket (the write buffer is empty between frames), so
    /// its shared parts are never copied on the way.
    pub(crate) async fn write_frame(&mut self, frame: &Frame) -> Result<(), KafkaError> {
        match frame.parts() {
            [one] => self.stream.write_all(one).await?,
            parts => {
                self.stream.flush().await?;
                write_all_parts(self.stream.get_mut(), parts).await?;
            }
        }
        self.stream.flush().await?;
        Ok(())
    }
}

/// Writes every byte of `parts`, in order, in as few vectored writes as the socket takes.
async fn write_all_parts(socket: &mut Socket, parts: &[Bytes]) -> std::io::Result<()> {
    // The first part not yet wholly written, and how much of it was.
    let (mut part, mut done) = (0, 0);
    while part < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[part..]
            .iter()
            .take(WRITE_PARTS_MAX)
            .enumerate()
            .map(|(i, p)| IoSlice::new(if i == 0 { &p[done..] } else { p }))
            .collect();
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while part < parts.len() && written >= parts[part].len() - done {
            written -= parts[part].len() - done;
            (part, done) = (part + 1, 0);
        }
        done += written;
    }
    Ok(())
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
        let mut frame = ResponseFrame::new(5, Vec::new()).unwrap();
        frame.put_slice(b"hello");
        let frame = frame.finish().unwrap();
        assert_eq!(frame.parts().len(), 1);
        assert_eq!(&frame.to_bytes()[..], b"\0\0\0\x05hello");
    }

    #[test]
    fn response_frame_refuses_a_size_it_did_not_get() {
        let mut frame = ResponseFrame::new(6, Vec::new()).unwrap();
        frame.put_slice(b"hello");
        let err = frame.finish().unwrap_err();
        assert!(
            matches!(
                err,
                KafkaError::ResponseSizeMismatch {
                    announced: 6,
                    written: 5
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn shared_bytes_become_their_own_part_and_equal_copies_do_not() {
        let shared = Bytes::from(vec![7u8; SHARE_MIN_BYTES]);
        let small = Bytes::from(vec![8u8; SHARE_MIN_BYTES - 1]);
        let twin = shared.to_vec();
        let size = 2 + shared.len() + small.len() + twin.len() + 1;
        let mut frame = ResponseFrame::new(size, vec![shared.clone(), small.clone()]).unwrap();
        frame.put_slice(b"ab");
        frame.put_slice(&shared);
        frame.put_slice(&small);
        frame.put_slice(&twin);
        frame.put_u8(b'z');
        let frame = frame.finish().unwrap();
        let parts = frame.parts();
        assert_eq!(parts.len(), 3, "head, the shared bytes, the rest");
        assert_eq!(&parts[0][SIZE_PREFIX..], b"ab");
        assert_eq!(
            parts[1].as_ptr(),
            shared.as_ptr(),
            "passed through, not copied"
        );
        assert_eq!(frame.len(), SIZE_PREFIX + size);
        let mut expected = (size as i32).to_be_bytes().to_vec();
        expected.extend_from_slice(b"ab");
        expected.extend_from_slice(&shared);
        expected.extend_from_slice(&small);
        expected.extend_from_slice(&twin);
        expected.push(b'z');
        assert_eq!(&frame.to_bytes()[..], &expected[..]);
    }
}
