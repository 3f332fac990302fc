//! Framing HEP packets in a byte stream (TCP, TLS), as heplify-server does: the u16 at
//! offset 4 is the frame's length; frames shorter than 6 or longer than 65,507 bytes mean
//! the stream is not HEP (heplify-server closes the connection). The magic is not checked
//! here; the decoder does that.

use bytes::{Bytes, BytesMut};

use crate::error::FrameError;

/// The largest packet heplify-server reads (its UDP buffer; it applies it to TCP too).
pub const MAX_PACKET_LEN: usize = 65_507;

/// The answer of [`frame`] for a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The buffer starts with a whole frame of this many bytes.
    Complete(usize),
    /// The buffer starts with an unfinished frame; at least this many more bytes are needed.
    Incomplete(usize),
}

/// Looks at the start of `buf` and tells whether a whole frame is there.
pub fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
    if buf.len() < 6 {
        return Ok(Frame::Incomplete(6 - buf.len()));
    }
    let length = u16::from_be_bytes([buf[4], buf[5]]);
    let len = usize::from(length);
    if !(6..=MAX_PACKET_LEN).contains(&len) {
        return Err(FrameError { length });
    }
    Ok(if buf.len() >= len {
        Frame::Complete(len)
    } else {
        Frame::Incomplete(len - buf.len())
    })
}

/// Splits whole frames off the front of a [`BytesMut`] fed by a stream: check, then
/// split, then advance, without copying the frame.
///
/// Returns `Ok(None)` when more bytes are needed. After an error the stream cannot be
/// re-synchronised and should be closed.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
    match frame(buf)? {
        Frame::Complete(n) => Ok(Some(buf.split_to(n).freeze())),
        Frame::Incomplete(_) => Ok(None),
    }
}

/// Iterates over the whole frames at the start of a byte slice (a capture of a stream),
/// stopping at the first incomplete frame or error; [`Frames::remainder`] tells what is left.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    error: Option<FrameError>,
}

impl<'a> Frames<'a> {
    /// Frames over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Frames {
            rest: buf,
            error: None,
        }
    }

    /// The bytes not consumed as frames (an incomplete frame, or from the bad length on).
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }

    /// The framing error that stopped the iteration, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.error
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match frame(self.rest) {
            Ok(Frame::Complete(n)) => {
                let (f, rest) = self.rest.split_at(n);
                self.rest = rest;
                Some(f)
            }
            Ok(Frame::Incomplete(_)) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}
