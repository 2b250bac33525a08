//! ttrpc frames as their bytes pass, in chunks of any size: each 10-byte header (u32 big-endian
//! payload length, u32 stream id, u8 type, u8 flags) is read as it completes, then its
//! payload is counted off. Reads and counts only; nothing is copied but the header, and what
//! to do about a frame is the connection's business.

/// A frame header's size.
pub(super) const HEADER_LEN: usize = 10;
/// The frame type of a request.
pub(super) const TYPE_REQUEST: u8 = 1;
/// The frame type of a response.
pub(super) const TYPE_RESPONSE: u8 = 2;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Payload length (bytes), as declared.
    pub(super) length: u32,
    /// Stream id.
    pub(super) stream_id: u32,
    /// Frame type.
    pub(super) kind: u8,
    /// Flags.
    pub(super) flags: u8,
}

impl Header {
    fn parse(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
            flags: b[9],
        }
    }
}

/// What a chunk of bytes completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// A header (its payload, if any, follows).
    Header(Header),
    /// The end of a frame's payload.
    End,
}

/// Where a byte stream is: between frames, in a header, or in a payload.
#[derive(Debug, Default)]
pub(super) struct Frames {
    header: [u8; HEADER_LEN],
    have: usize,
    payload_left: u64,
}

impl Frames {
    /// Between two frames: no byte of the next one yet.
    pub(super) fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Consumes `bytes` up to the next event, and returns it; `None` once `bytes` is used up
    /// without one. Call again with what is left until `None`.
    pub(super) fn advance(&mut self, bytes: &mut &[u8]) -> Option<Event> {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *bytes = &bytes[n..];
                self.payload_left -= n as u64;
                if self.payload_left == 0 {
                    return Some(Event::End);
                }
            } else {
                let n = (HEADER_LEN - self.have).min(bytes.len());
                self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                *bytes = &bytes[n..];
                self.have += n;
                if self.have == HEADER_LEN {
                    self.have = 0;
                    let h = Header::parse(&self.header);
                    self.payload_left = u64::from(h.length);
                    return Some(Event::Header(h));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(length: u32, stream_id: u32, kind: u8) -> Vec<u8> {
        let mut f = length.to_be_bytes().to_vec();
        f.extend(stream_id.to_be_bytes());
        f.extend([kind, 0x5]);
        f.extend(std::iter::repeat_n(0xaa, length as usize));
        f
    }

    fn events(frames: &mut Frames, mut bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = frames.advance(&mut bytes) {
            out.push(e);
        }
        assert!(bytes.is_empty());
        out
    }

    #[test]
    fn headers_and_ends_in_any_chunking() {
        let mut stream = frame(3, 1, TYPE_REQUEST);
        stream.extend(frame(0, 3, TYPE_REQUEST));
        stream.extend(frame(300, 5, TYPE_RESPONSE));
        let want = vec![
            Event::Header(Header {
                length: 3,
                stream_id: 1,
                kind: TYPE_REQUEST,
                flags: 5,
            }),
            Event::End,
            Event::Header(Header {
                length: 0,
                stream_id: 3,
                kind: TYPE_REQUEST,
                flags: 5,
            }),
            Event::Header(Header {
                length: 300,
                stream_id: 5,
                kind: TYPE_RESPONSE,
                flags: 5,
            }),
            Event::End,
        ];
        for chunk in [1, 2, 3, 7, 10, 11, 64, stream.len()] {
            let mut f = Frames::default();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                got.extend(events(&mut f, c));
            }
            assert_eq!(got, want, "chunks of {chunk}");
            assert!(f.at_boundary());
        }
    }

    #[test]
    fn at_boundary_only_between_frames() {
        let f3 = frame(3, 1, TYPE_REQUEST);
        let mut f = Frames::default();
        assert!(f.at_boundary());
        for (i, b) in f3.iter().enumerate() {
            events(&mut f, &[*b]);
            assert_eq!(f.at_boundary(), i == f3.len() - 1, "after byte {i}");
        }
    }

    #[test]
    fn a_declared_length_is_known_before_its_payload() {
        let mut f = Frames::default();
        let mut bytes: &[u8] = &[0x00, 0x40, 0x00, 0x00, 0, 0, 0, 1, 1, 0];
        let e = f.advance(&mut bytes);
        assert!(
            matches!(e, Some(Event::Header(h)) if h.length == 4 << 20),
            "{e:?}"
        );
        assert!(!f.at_boundary());
        let max: &[u8] = &[0xff; HEADER_LEN];
        let mut f = Frames::default();
        let e = f.advance(&mut { max });
        assert!(
            matches!(e, Some(Event::Header(h)) if h.length == u32::MAX),
            "{e:?}"
        );
    }
}
