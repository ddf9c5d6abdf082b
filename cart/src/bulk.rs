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

/// A decoded single-segment bulk handle (what DAOS's clients send for pool maps, large RPC
/// bodies and object data up to one iovec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk<'a> {
    /// Total bytes.
    pub len: u64,
    pub flags: u8,
    /// The segment's virtual address in the client.
    pub addr: u64,
    /// The registration's key.
    pub key: u64,
    /// The data, when sent inline ([`EAGER`]); Mercury inlines small handles even when they
    /// are writable, and keeps their registration for pushes.
    pub eager: Option<&'a [u8]>,
    /// Whether a memory registration (an NA OFI handle) came with it: RMA can reach it.
    pub registered: bool,
}

impl Bulk<'_> {
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
    if segments != 1 {
        return Err(CartError::Invalid {
            field,
            why: "bulk handles of more than one segment are not served",
        });
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
        eager,
        registered: handle_size != 0,
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
}
