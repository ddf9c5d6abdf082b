//! Mercury's serialized bulk handle (`hg_proc_hg_bulk_t`), as a client sends one for the
//! server to pull from or push into: a u64 size (0: no handle), then `hg_bulk_desc_info`
//! (u64 total length, u32 segment count, u8 flags, 3 bytes padding), the segments (u64
//! address, u64 length each), then for one segment a u64 size and the NA OFI memory handle
//! (u64 key, u64 length, u64 iovec count, u8 flags and 7 bytes padding, then u64 base and u64
//! length per iovec), an optional bound address, and with the eager flag the data inline.

use crate::CartError;
use crate::proc_::{Decoder, Encoder};

/// Read-only for the peer (the server may pull).
pub const READ_ONLY: u8 = 0x01;
/// Write-only for the peer (the server may push).
pub const WRITE_ONLY: u8 = 0x02;
/// The data travels inline after the descriptor.
pub const EAGER: u8 = 0x04;
/// Shared-memory handles follow (never over OFI).
pub const SM: u8 = 0x08;
/// An address is bound to the handle.
pub const BIND: u8 = 0x20;
/// Several segments in one registration.
pub const REGV: u8 = 0x40;

/// Segments a handle may have (DAOS's clients send one per iovec of an sgl).
pub const SEGMENTS_MAX: u32 = 1024;

/// A decoded bulk handle: one segment (what DAOS's clients send for pool maps, large RPC
/// bodies and object data in one iovec), or several, each registered on its own (an sgl of
/// several iovecs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk<'a> {
    /// Total bytes.
    pub len: u64,
    pub flags: u8,
    /// The first segment's virtual address in the client.
    pub addr: u64,
    /// The first segment's registration key.
    pub key: u64,
    /// With several segments: their (address, length) list and their handles, raw.
    multi: Option<(&'a [u8], &'a [u8], &'a [u8])>,
    /// The data, when sent inline ([`EAGER`]); Mercury inlines small handles even when they
    /// are writable, and keeps their registration for pushes.
    pub eager: Option<&'a [u8]>,
    /// Whether a memory registration (an NA OFI handle) came with it: RMA can reach it.
    pub registered: bool,
}

/// One segment of a bulk handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Its virtual address in the client.
    pub addr: u64,
    pub len: u64,
    /// Its registration's key (0: not registered, an empty segment).
    pub key: u64,
}

impl Bulk<'_> {
    /// The segments in order (an empty one is listed too, with length 0).
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        let single = self.multi.is_none().then_some(Segment {
            addr: self.addr,
            len: self.len,
            key: self.key,
        });
        let (segs, sizes, handles) = self.multi.unwrap_or((&[], &[], &[]));
        let mut handles = Decoder::new(handles);
        let many = segs
            .chunks_exact(16)
            .zip(sizes.chunks_exact(8))
            .map(move |(sg, sz)| {
                let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                let (addr, len, size) = (word(&sg[..8]), word(&sg[8..]), word(sz));
                let mut key = 0;
                if addr != 0 && size != 0 {
                    // Checked at decode.
                    if let Ok(h) = handles.take(size as usize, "handle") {
                        key = word(&h[..8]);
                    }
                }
                Segment { addr, len, key }
            });
        single.into_iter().chain(many)
    }

    /// Whether the server may push into it (RMA write): registered, and writable by peers.
    pub fn writable(&self) -> bool {
        self.registered && self.flags & WRITE_ONLY != 0
    }

    /// Whether the server may pull from it: inline data, or registered and readable.
    pub fn readable(&self) -> bool {
        self.eager.is_some() || (self.registered && self.flags & READ_ONLY != 0)
    }

    /// The address to name in an RMA on this handle at `offset`: the segment's address when
    /// the domain names memory by virtual address, else the offset from the registration's
    /// start (tcp;ofi_rxm).
    pub fn remote_addr(&self, virt_addr: bool, offset: u64) -> u64 {
        if virt_addr {
            self.addr + offset
        } else {
            offset
        }
    }
}

/// Decodes a bulk handle field; `None` for a NULL handle.
pub fn decode<'a>(d: &mut Decoder<'a>, field: &'static str) -> Result<Option<Bulk<'a>>, CartError> {
    let size = d.u64(field)?;
    if size == 0 {
        return Ok(None);
    }
    let n = usize::try_from(size).map_err(|_| CartError::Length { field, len: size })?;
    let mut b = Decoder::new(d.take(n, field)?);
    let len = b.u64(field)?;
    let segments = b.u32(field)?;
    let flags = b.u8(field)?;
    b.take(3, field)?;
    if segments == 0 || segments > SEGMENTS_MAX {
        return Err(CartError::Invalid {
            field,
            why: "a bulk handle of no segment, or of more than 1024",
        });
    }
    if segments > 1 {
        return decode_multi(&mut b, len, segments, flags, field);
    }
    if flags & (SM | REGV) != 0 {
        return Err(CartError::Invalid {
            field,
            why: "shared-memory or multi-segment registrations are not served over OFI",
        });
    }
    let addr = b.u64(field)?;
    let seg_len = b.u64(field)?;
    if seg_len != len {
        return Err(CartError::Invalid {
            field,
            why: "segment length differs from the handle's length",
        });
    }
    let handle_size = b.u64(field)?;
    let mut key = 0;
    if handle_size != 0 {
        if handle_size < 48 {
            return Err(CartError::Invalid {
                field,
                why: "NA OFI memory handle shorter than 48 bytes",
            });
        }
        let hs = usize::try_from(handle_size).map_err(|_| CartError::Length {
            field,
            len: handle_size,
        })?;
        let mut h = Decoder::new(b.take(hs, field)?);
        key = h.u64(field)?;
        let _total = h.u64(field)?;
        let iovcnt = h.u64(field)?;
        if iovcnt != 1 {
            return Err(CartError::Invalid {
                field,
                why: "NA OFI memory handle with more than one iovec",
            });
        }
    }
    if flags & BIND != 0 {
        let addr_size = b.u64(field)?;
        let n = usize::try_from(addr_size).map_err(|_| CartError::Length {
            field,
            len: addr_size,
        })?;
        b.take(n, field)?;
        b.take(1, field)?; // context id
    }
    let eager = if flags & EAGER != 0 {
        let n = usize::try_from(len).map_err(|_| CartError::Length { field, len })?;
        Some(b.take(n, field)?)
    } else {
        if handle_size == 0 && len != 0 {
            return Err(CartError::Invalid {
                field,
                why: "a bulk handle without memory registration nor inline data",
            });
        }
        None
    };
    Ok(Some(Bulk {
        len,
        flags,
        addr,
        key,
        multi: None,
        eager,
        registered: handle_size != 0,
    }))
}

/// The rest of a handle of several segments: the segments, a handle size per segment, the
/// handles of those with memory (each an NA OFI handle of one iovec), then as for one.
fn decode_multi<'a>(
    b: &mut Decoder<'a>,
    len: u64,
    segments: u32,
    flags: u8,
    field: &'static str,
) -> Result<Option<Bulk<'a>>, CartError> {
    if flags & (SM | REGV) != 0 {
        return Err(CartError::Invalid {
            field,
            why: "shared-memory or multi-segment registrations are not served over OFI",
        });
    }
    let segs = b.take(segments as usize * 16, field)?;
    let sizes = b.take(segments as usize * 8, field)?;
    let word = |x: &[u8]| u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
    let mut total = 0u64;
    let mut handles_len = 0usize;
    let mut registered = true;
    for (sg, sz) in segs.chunks_exact(16).zip(sizes.chunks_exact(8)) {
        let (addr, seg_len, size) = (word(&sg[..8]), word(&sg[8..]), word(sz));
        total = total.checked_add(seg_len).ok_or(CartError::Length {
            field,
            len: seg_len,
        })?;
        if addr == 0 || size == 0 {
            registered &= seg_len == 0;
            continue;
        }
        if size < 48 {
            return Err(CartError::Invalid {
                field,
                why: "NA OFI memory handle shorter than 48 bytes",
            });
        }
        let n = usize::try_from(size).map_err(|_| CartError::Length { field, len: size })?;
        handles_len = handles_len
            .checked_add(n)
            .ok_or(CartError::Length { field, len: size })?;
    }
    if total != len {
        return Err(CartError::Invalid {
            field,
            why: "the segments' lengths do not add up to the handle's",
        });
    }
    let handles = b.take(handles_len, field)?;
    // Each handle: key, length, one iovec.
    let mut h = Decoder::new(handles);
    for (sg, sz) in segs.chunks_exact(16).zip(sizes.chunks_exact(8)) {
        let size = word(sz) as usize;
        if word(&sg[..8]) == 0 || size == 0 {
            continue;
        }
        let mut one = Decoder::new(h.take(size, field)?);
        one.u64(field)?;
        one.u64(field)?;
        if one.u64(field)? != 1 {
            return Err(CartError::Invalid {
                field,
                why: "NA OFI memory handle with more than one iovec",
            });
        }
    }
    if flags & BIND != 0 {
        let addr_size = b.u64(field)?;
        let n = usize::try_from(addr_size).map_err(|_| CartError::Length {
            field,
            len: addr_size,
        })?;
        b.take(n, field)?;
        b.take(1, field)?;
    }
    let eager = if flags & EAGER != 0 {
        let n = usize::try_from(len).map_err(|_| CartError::Length { field, len })?;
        Some(b.take(n, field)?)
    } else {
        None
    };
    let first = segs
        .chunks_exact(16)
        .zip(sizes.chunks_exact(8))
        .find(|(sg, _)| word(&sg[8..]) > 0);
    let (addr, key) = match first {
        Some((sg, _)) => {
            let bulk = Bulk {
                len,
                flags,
                addr: 0,
                key: 0,
                multi: Some((segs, sizes, handles)),
                eager: None,
                registered,
            };
            let k = bulk.segments().find(|s| s.len > 0).map_or(0, |s| s.key);
            (word(&sg[..8]), k)
        }
        None => (0, 0),
    };
    Ok(Some(Bulk {
        len,
        flags,
        addr,
        key,
        multi: Some((segs, sizes, handles)),
        eager,
        registered,
    }))
}

/// Encodes a single-segment handle over `len` bytes at `addr`, registered with `key` (a
/// client's side).
pub fn encode(
    e: &mut Encoder<'_>,
    addr: u64,
    len: u64,
    key: u64,
    flags: u8,
    field: &'static str,
) -> Result<(), CartError> {
    e.u64(88, field)?;
    e.u64(len, field)?;
    e.u32(1, field)?;
    e.u8(flags & (READ_ONLY | WRITE_ONLY), field)?;
    e.bytes(&[0; 3], field)?;
    e.u64(addr, field)?;
    e.u64(len, field)?;
    e.u64(48, field)?;
    e.u64(key, field)?;
    e.u64(len, field)?;
    e.u64(1, field)?;
    e.u8(flags & (READ_ONLY | WRITE_ONLY), field)?;
    e.bytes(&[0; 7], field)?;
    e.u64(addr, field)?;
    e.u64(len, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_segment_handle_is_96_bytes_with_its_size() {
        let mut b = [0u8; 128];
        let mut e = Encoder::new(&mut b);
        encode(&mut e, 0x7f00_1000, 4128, 9, READ_ONLY | WRITE_ONLY, "map").unwrap();
        assert_eq!(e.len(), 96);
        assert_eq!(&b[..8], &88u64.to_le_bytes());
        assert_eq!(&b[8..16], &4128u64.to_le_bytes());
        assert_eq!(&b[16..20], &1u32.to_le_bytes());
        assert_eq!(b[20], 3);
        assert_eq!(&b[40..48], &48u64.to_le_bytes());
        assert_eq!(&b[48..56], &9u64.to_le_bytes(), "the key");
        let h = decode(&mut Decoder::new(&b[..96]), "map").unwrap().unwrap();
        assert_eq!(
            (h.len, h.addr, h.key, h.eager),
            (4128, 0x7f00_1000, 9, None)
        );
        assert_eq!(h.remote_addr(false, 16), 16);
        assert_eq!(h.remote_addr(true, 16), 0x7f00_1010);
        assert_eq!(decode(&mut Decoder::new(&[0; 8]), "none").unwrap(), None);
    }

    #[test]
    fn hostile_handles_are_refused_by_name() {
        let mut b = [0u8; 128];
        let mut e = Encoder::new(&mut b);
        encode(&mut e, 1, 10, 1, READ_ONLY, "x").unwrap();
        // Two segments.
        let mut two = b;
        two[16] = 2;
        assert!(decode(&mut Decoder::new(&two[..96]), "bulk").is_err());
        // A size past the message.
        let mut big = b;
        big[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = decode(&mut Decoder::new(&big[..96]), "pci_map_bulk").unwrap_err();
        assert!(err.to_string().contains("pci_map_bulk"), "{err}");
        // Eager data longer than what was sent.
        let mut eager = b;
        eager[20] |= EAGER;
        assert!(decode(&mut Decoder::new(&eager[..96]), "bulk").is_err());
        // Truncated anywhere.
        for n in 0..96 {
            assert!(decode(&mut Decoder::new(&b[..n]), "bulk").is_err(), "{n}");
        }
    }

    #[test]
    fn a_handle_of_several_segments_lists_each_with_its_key() {
        // What Mercury sends for an sgl of three iovecs, the first NULL: the descriptor, the
        // segments, a handle size each (0 for the NULL one), the two handles.
        let mut buf = vec![0u8; 512];
        let mut e = Encoder::new(&mut buf);
        let body = |e: &mut Encoder<'_>| -> Result<(), CartError> {
            e.u64(30, "len")?;
            e.u32(3, "segments")?;
            e.u8(READ_ONLY | WRITE_ONLY, "flags")?;
            e.bytes(&[0; 3], "pad")?;
            for (addr, len) in [(0u64, 0u64), (0x1000, 10), (0x9000, 20)] {
                e.u64(addr, "addr")?;
                e.u64(len, "len")?;
            }
            for size in [0u64, 48, 48] {
                e.u64(size, "size")?;
            }
            for (key, addr, len) in [(5u64, 0x1000u64, 10u64), (6, 0x9000, 20)] {
                e.u64(key, "key")?;
                e.u64(len, "total")?;
                e.u64(1, "iovcnt")?;
                e.u8(READ_ONLY | WRITE_ONLY, "flags")?;
                e.bytes(&[0; 7], "pad")?;
                e.u64(addr, "base")?;
                e.u64(len, "len")?;
            }
            Ok(())
        };
        let mut inner = vec![0u8; 512];
        let n = {
            let mut ie = Encoder::new(&mut inner);
            body(&mut ie).unwrap();
            ie.len()
        };
        e.u64(n as u64, "size").unwrap();
        e.bytes(&inner[..n], "desc").unwrap();
        let total = e.len();
        let b = decode(&mut Decoder::new(&buf[..total]), "bulk")
            .unwrap()
            .unwrap();
        assert!(b.writable() && b.readable());
        assert_eq!((b.addr, b.key, b.len), (0x1000, 5, 30));
        let segs: Vec<Segment> = b.segments().collect();
        assert_eq!(
            segs,
            [
                Segment {
                    addr: 0,
                    len: 0,
                    key: 0
                },
                Segment {
                    addr: 0x1000,
                    len: 10,
                    key: 5
                },
                Segment {
                    addr: 0x9000,
                    len: 20,
                    key: 6
                },
            ]
        );
        for cut in 0..total {
            assert!(
                decode(&mut Decoder::new(&buf[..cut]), "bulk").is_err(),
                "{cut}"
            );
        }
    }
}
