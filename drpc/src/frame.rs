//! dRPC framing (DAOS 2.8+): every datagram is a 24-byte header followed by one chunk of the
//! message.
//!
//! ```text
//! offset 0  u64 total_data_size   size of the whole message
//! offset 8  u64 chunk_data_size   bytes of message in this datagram
//! offset 16 u32 chunk_idx         0-based
//! offset 20 u32 total_chunks      >= 1 (an empty message is one empty chunk)
//! ```
//! Native byte order (little-endian on every platform DAOS runs on; fixed here as LE).
//!
//! DAOS 2.6 and older send each message as one bare datagram (the protobuf alone, at most
//! [`MAX_DATAGRAM`] bytes), and their clients (libdaos, `daos_agent` of that release) are in the
//! field beside 2.8's: a server takes a connection's framing from its first datagram
//! ([`Framing::of_first`]) and answers in it.
//! A datagram is at most [`MAX_DATAGRAM`] bytes, so messages over `MAX_DATAGRAM - 24` bytes are
//! split. The receiver ([`Assembler`]) checks chunk order, consistent totals, no overflow and the
//! exact final length, and bounds a message at [`MAX_MESSAGE`] so a hostile header cannot make
//! it allocate without limit.

/// Largest datagram (`UNIXCOMM_MAXMSGSIZE`, 1 << 17).
pub const MAX_DATAGRAM: usize = 1 << 17;
/// Size of the chunk header.
pub const HEADER_LEN: usize = 24;
/// Most message bytes one datagram carries.
pub const MAX_CHUNK_DATA: usize = MAX_DATAGRAM - HEADER_LEN;
/// Largest message accepted (far above any DAOS control message).
pub const MAX_MESSAGE: usize = 64 << 20;

const _: () = assert!(HEADER_LEN == 8 + 8 + 4 + 4);
const _: () = assert!(MAX_MESSAGE / MAX_CHUNK_DATA < u32::MAX as usize);

/// The chunk header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub total_data_size: u64,
    pub chunk_data_size: u64,
    pub chunk_idx: u32,
    pub total_chunks: u32,
}

impl Header {
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..8].copy_from_slice(&self.total_data_size.to_le_bytes());
        out[8..16].copy_from_slice(&self.chunk_data_size.to_le_bytes());
        out[16..20].copy_from_slice(&self.chunk_idx.to_le_bytes());
        out[20..24].copy_from_slice(&self.total_chunks.to_le_bytes());
    }

    pub fn decode(datagram: &[u8]) -> Result<Header, FrameError> {
        let Some(h) = datagram.get(..HEADER_LEN) else {
            return Err(FrameError::ShortHeader {
                len: datagram.len(),
            });
        };
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&h[i..i + 4]);
            u32::from_le_bytes(b)
        };
        Ok(Header {
            total_data_size: u64_at(0),
            chunk_data_size: u64_at(8),
            chunk_idx: u32_at(16),
            total_chunks: u32_at(20),
        })
    }
}

/// How a connection's messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// DAOS 2.8+: chunk header, chunks ([`for_each_datagram`], [`Assembler`]).
    Chunked,
    /// DAOS 2.6 and older: one bare datagram per message.
    Bare,
}

impl Framing {
    /// The framing of a connection whose first datagram is `d`: chunked when `d` reads as
    /// the first chunk of a message (its header's chunk size is what follows it, chunk 0 of
    /// at least one), else bare when `is_message` accepts the whole datagram (a protobuf
    /// that decodes), else chunked (so the chunk checks report what is wrong).
    pub fn of_first(d: &[u8], is_message: impl FnOnce(&[u8]) -> bool) -> Framing {
        let chunked = Header::decode(d).is_ok_and(|h| {
            h.chunk_idx == 0
                && h.total_chunks >= 1
                && h.chunk_data_size == (d.len() - HEADER_LEN) as u64
                && h.total_data_size >= h.chunk_data_size
        });
        if chunked || d.len() > MAX_DATAGRAM || !is_message(d) {
            Framing::Chunked
        } else {
            Framing::Bare
        }
    }
}

/// Number of chunks a message of `len` bytes is sent in.
pub fn chunk_count(len: usize) -> usize {
    len.div_ceil(MAX_CHUNK_DATA).max(1)
}

/// Splits `message` into datagrams, calling `send` for each (header + chunk in `buf`).
/// `buf` is reused, so sending allocates nothing once it has grown to one datagram.
pub fn for_each_datagram<E>(
    message: &[u8],
    buf: &mut Vec<u8>,
    mut send: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), FrameError>
where
    E: Into<FrameError>,
{
    if message.len() > MAX_MESSAGE {
        return Err(FrameError::TooLarge {
            len: message.len() as u64,
        });
    }
    let total = chunk_count(message.len());
    let mut chunks = message.chunks(MAX_CHUNK_DATA);
    for idx in 0..total {
        let chunk = chunks.next().unwrap_or(&[]);
        let header = Header {
            total_data_size: message.len() as u64,
            chunk_data_size: chunk.len() as u64,
            chunk_idx: idx as u32,
            total_chunks: total as u32,
        };
        let mut h = [0u8; HEADER_LEN];
        header.encode(&mut h);
        buf.clear();
        buf.extend_from_slice(&h);
        buf.extend_from_slice(chunk);
        send(buf).map_err(Into::into)?;
    }
    Ok(())
}

/// What is wrong with a datagram or message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    #[error("datagram of {len} bytes is shorter than the {HEADER_LEN}-byte chunk header")]
    ShortHeader { len: usize },
    #[error("datagram larger than {MAX_DATAGRAM} bytes")]
    Oversized,
    #[error("header says {header} chunk bytes but the datagram carries {actual}")]
    ChunkSizeMismatch { header: u64, actual: usize },
    #[error("chunk {got} arrived where chunk {expected} was due")]
    OutOfOrder { expected: u32, got: u32 },
    #[error(
        "chunk totals changed within a message (total size {first_size} -> {size}, chunks {first_chunks} -> {chunks})"
    )]
    InconsistentTotals {
        first_size: u64,
        size: u64,
        first_chunks: u32,
        chunks: u32,
    },
    #[error("{total_chunks} chunks cannot carry a message of {total_data_size} bytes")]
    BadChunkCount {
        total_data_size: u64,
        total_chunks: u32,
    },
    #[error("chunks overflow the announced message size of {total} bytes")]
    Overflow { total: u64 },
    #[error("last chunk leaves the message at {got} of {total} bytes")]
    Incomplete { got: u64, total: u64 },
    #[error("message of {len} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge { len: u64 },
    #[error("socket: {0}")]
    Io(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e.to_string())
    }
}

/// Reassembles a message from its datagrams. Reusable: after a complete message (or an error)
/// it is ready for the next one.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Header of chunk 0 of the message in progress.
    first: Option<Header>,
    next_idx: u32,
    data: Vec<u8>,
}

impl Assembler {
    /// True while a message is partly received.
    pub fn in_progress(&self) -> bool {
        self.first.is_some()
    }

    /// Drops any partial message.
    pub fn reset(&mut self) {
        self.first = None;
        self.next_idx = 0;
        self.data.clear();
    }

    /// Feeds one datagram; returns the message once its last chunk has arrived. On error the
    /// partial message is dropped.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<&[u8]>, FrameError> {
        match self.accept(datagram) {
            Ok(true) => {
                self.first = None;
                self.next_idx = 0;
                Ok(Some(&self.data))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<bool, FrameError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(FrameError::Oversized);
        }
        let h = Header::decode(datagram)?;
        let chunk = &datagram[HEADER_LEN..];
        if h.chunk_data_size != chunk.len() as u64 {
            return Err(FrameError::ChunkSizeMismatch {
                header: h.chunk_data_size,
                actual: chunk.len(),
            });
        }
        match self.first {
            None => {
                if h.chunk_idx != 0 {
                    return Err(FrameError::OutOfOrder {
                        expected: 0,
                        got: h.chunk_idx,
                    });
                }
                if h.total_data_size > MAX_MESSAGE as u64 {
                    return Err(FrameError::TooLarge {
                        len: h.total_data_size,
                    });
                }
                // At least one chunk; no more chunks than bytes (an empty message is 1 chunk).
                if h.total_chunks == 0 || u64::from(h.total_chunks) > h.total_data_size.max(1) {
                    return Err(FrameError::BadChunkCount {
                        total_data_size: h.total_data_size,
                        total_chunks: h.total_chunks,
                    });
                }
                self.data.clear();
                self.data.reserve(h.total_data_size as usize);
                self.first = Some(h);
            }
            Some(first) => {
                if h.chunk_idx != self.next_idx {
                    return Err(FrameError::OutOfOrder {
                        expected: self.next_idx,
                        got: h.chunk_idx,
                    });
                }
                if (h.total_data_size, h.total_chunks)
                    != (first.total_data_size, first.total_chunks)
                {
                    return Err(FrameError::InconsistentTotals {
                        first_size: first.total_data_size,
                        size: h.total_data_size,
                        first_chunks: first.total_chunks,
                        chunks: h.total_chunks,
                    });
                }
            }
        }
        let total = h.total_data_size;
        let got = self.data.len() as u64 + h.chunk_data_size;
        if got > total {
            return Err(FrameError::Overflow { total });
        }
        self.data.extend_from_slice(chunk);
        self.next_idx = h.chunk_idx + 1;
        let last = self.next_idx == h.total_chunks;
        if last && got != total {
            return Err(FrameError::Incomplete { got, total });
        }
        if !last && got == total && total > 0 {
            // Full already, yet more chunks are announced: a later chunk can only overflow.
            return Err(FrameError::Incomplete { got, total });
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_first_datagram_tells_the_framing() {
        let bare = |d: &[u8]| d.first() == Some(&0x08);
        let mut chunk = [0u8; HEADER_LEN + 3];
        Header {
            total_data_size: 3,
            chunk_data_size: 3,
            chunk_idx: 0,
            total_chunks: 1,
        }
        .encode((&mut chunk[..HEADER_LEN]).try_into().expect("24 bytes"));
        assert_eq!(Framing::of_first(&chunk, bare), Framing::Chunked);
        assert_eq!(
            Framing::of_first(&[0x08, 0x02, 0x10, 0xe1, 0x01], bare),
            Framing::Bare
        );
        // Neither: chunked, so the chunk checks say what is wrong.
        assert_eq!(Framing::of_first(&[1, 2, 3], bare), Framing::Chunked);
        assert_eq!(Framing::of_first(&[], bare), Framing::Chunked);
    }

    use super::*;
    use proptest::prelude::*;

    fn datagrams(message: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for_each_datagram(message, &mut buf, |d| {
            out.push(d.to_vec());
            Ok::<(), FrameError>(())
        })
        .unwrap();
        out
    }

    fn datagram(h: Header, data: &[u8]) -> Vec<u8> {
        let mut b = [0u8; HEADER_LEN];
        h.encode(&mut b);
        let mut v = b.to_vec();
        v.extend_from_slice(data);
        v
    }

    fn reassemble(dgs: &[Vec<u8>]) -> Result<Option<Vec<u8>>, FrameError> {
        let mut a = Assembler::default();
        let mut out = None;
        for d in dgs {
            out = a.push(d)?.map(<[u8]>::to_vec);
        }
        Ok(out)
    }

    #[test]
    fn header_layout_is_24_le_bytes() {
        let h = Header {
            total_data_size: 0x0102,
            chunk_data_size: 3,
            chunk_idx: 4,
            total_chunks: 5,
        };
        let mut b = [0u8; HEADER_LEN];
        h.encode(&mut b);
        assert_eq!(&b[0..8], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[16..20], &[4, 0, 0, 0]);
        assert_eq!(&b[20..24], &[5, 0, 0, 0]);
        assert_eq!(Header::decode(&b).unwrap(), h);
    }

    #[test]
    fn empty_message_is_one_empty_chunk() {
        let d = datagrams(&[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].len(), HEADER_LEN);
        assert_eq!(reassemble(&d).unwrap(), Some(vec![]));
    }

    #[test]
    fn large_messages_are_split_and_rejoined() {
        let msg: Vec<u8> = (0..(3 * MAX_CHUNK_DATA + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let d = datagrams(&msg);
        assert_eq!(d.len(), 4);
        assert!(d.iter().all(|x| x.len() <= MAX_DATAGRAM));
        assert_eq!(d[0].len(), MAX_DATAGRAM);
        assert_eq!(reassemble(&d).unwrap(), Some(msg));
        let exact = vec![7u8; MAX_CHUNK_DATA];
        assert_eq!(datagrams(&exact).len(), 1);
    }

    #[test]
    fn malformed_datagrams_are_each_rejected() {
        let h = |total, chunk, idx, n| Header {
            total_data_size: total,
            chunk_data_size: chunk,
            chunk_idx: idx,
            total_chunks: n,
        };
        let err = |dgs: &[Vec<u8>]| reassemble(dgs).unwrap_err();
        assert_eq!(err(&[vec![1, 2, 3]]), FrameError::ShortHeader { len: 3 });
        assert_eq!(err(&[vec![]]), FrameError::ShortHeader { len: 0 });
        assert!(matches!(
            err(&[datagram(h(5, 4, 0, 1), &[1, 2, 3])]),
            FrameError::ChunkSizeMismatch { .. }
        ));
        assert!(matches!(
            err(&[datagram(h(5, 5, 1, 2), &[0; 5])]),
            FrameError::OutOfOrder {
                expected: 0,
                got: 1
            }
        ));
        assert!(matches!(
            err(&[
                datagram(h(4, 2, 0, 2), &[0; 2]),
                datagram(h(4, 2, 0, 2), &[0; 2])
            ]),
            FrameError::OutOfOrder {
                expected: 1,
                got: 0
            }
        ));
        assert!(matches!(
            err(&[
                datagram(h(4, 2, 0, 2), &[0; 2]),
                datagram(h(5, 2, 1, 2), &[0; 2])
            ]),
            FrameError::InconsistentTotals { .. }
        ));
        assert!(matches!(
            err(&[
                datagram(h(4, 2, 0, 2), &[0; 2]),
                datagram(h(4, 2, 1, 3), &[0; 2])
            ]),
            FrameError::InconsistentTotals { .. }
        ));
        assert!(matches!(
            err(&[datagram(h(2, 2, 0, 0), &[0; 2])]),
            FrameError::BadChunkCount { .. }
        ));
        assert!(matches!(
            err(&[datagram(h(2, 1, 0, 3), &[0; 1])]),
            FrameError::BadChunkCount { .. }
        ));
        assert!(matches!(
            err(&[datagram(h(3, 4, 0, 1), &[0; 4])]),
            FrameError::Overflow { total: 3 }
        ));
        assert!(matches!(
            err(&[datagram(h(6, 2, 0, 1), &[0; 2])]),
            FrameError::Incomplete { got: 2, total: 6 }
        ));
        assert!(matches!(
            err(&[datagram(h(2, 2, 0, 2), &[0; 2])]),
            FrameError::Incomplete { .. }
        ));
        assert!(matches!(
            err(&[datagram(h(u64::MAX, 0, 0, 1), &[])]),
            FrameError::TooLarge { .. }
        ));
        assert!(matches!(
            err(&[vec![0; MAX_DATAGRAM + 1]]),
            FrameError::Oversized
        ));
    }

    #[test]
    fn assembler_recovers_after_an_error() {
        let mut a = Assembler::default();
        assert!(a.push(&[0; 3]).is_err());
        assert!(!a.in_progress());
        let d = datagrams(b"hello");
        assert_eq!(a.push(&d[0]).unwrap(), Some(&b"hello"[..]));
        let d2 = datagrams(b"again");
        assert_eq!(a.push(&d2[0]).unwrap(), Some(&b"again"[..]));
    }

    proptest! {
        #[test]
        fn round_trip(len in 0usize..(2 * MAX_CHUNK_DATA + 3), seed in any::<u8>()) {
            let msg: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let d = datagrams(&msg);
            prop_assert_eq!(d.len(), chunk_count(len));
            prop_assert_eq!(reassemble(&d).unwrap(), Some(msg));
        }

        #[test]
        fn arbitrary_datagrams_never_panic(dgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6)) {
            let mut a = Assembler::default();
            for d in &dgs {
                let _ = a.push(d);
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(total in any::<u64>(), chunk in 0u64..40, idx in 0u32..4, n in 0u32..5, body in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut a = Assembler::default();
            let h = Header { total_data_size: total, chunk_data_size: chunk, chunk_idx: idx, total_chunks: n };
            let _ = a.push(&datagram(h, &body));
            let _ = a.push(&datagram(Header { chunk_idx: idx + 1, ..h }, &body));
        }
    }
}
