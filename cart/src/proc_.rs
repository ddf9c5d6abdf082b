//! Mercury's proc encoding as DAOS builds it (no XDR, no checksums): every integer in native
//! byte order (little-endian on the machines DAOS runs on; this crate writes and reads
//! little-endian), packed, no alignment, no length prefix. Strings are a u64 length that counts
//! the NUL (0 for a NULL string, and nothing follows), the bytes with their NUL, then two flag
//! bytes (`is_const`, `is_owned`); `d_iov_t` is u64 buffer length, u64 length, then `length`
//! bytes; arrays (`CRT_ARRAY`) are a u64 count then the elements; rank lists a u32 count then
//! u32 ranks.
//!
//! [`Encoder`] writes into a caller's buffer and [`Decoder`] borrows from the received one:
//! neither allocates, and every read and write is range-checked (a short buffer is an error
//! naming the field, never a panic).

use crate::CartError;

/// Writes proc-encoded fields into a fixed buffer.
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Encoder<'a> {
    pub fn new(buf: &'a mut [u8]) -> Encoder<'a> {
        Encoder { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reserves `n` bytes for `field` and returns them to fill.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&mut [u8], CartError> {
        if self.remaining() < n {
            return Err(CartError::Full {
                field,
                need: n,
                room: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&mut self.buf[start..start + n])
    }

    pub fn bytes(&mut self, b: &[u8], field: &'static str) -> Result<(), CartError> {
        self.take(b.len(), field)?.copy_from_slice(b);
        Ok(())
    }

    pub fn u8(&mut self, v: u8, field: &'static str) -> Result<(), CartError> {
        self.bytes(&[v], field)
    }

    pub fn u16(&mut self, v: u16, field: &'static str) -> Result<(), CartError> {
        self.bytes(&v.to_le_bytes(), field)
    }

    pub fn u32(&mut self, v: u32, field: &'static str) -> Result<(), CartError> {
        self.bytes(&v.to_le_bytes(), field)
    }

    pub fn i32(&mut self, v: i32, field: &'static str) -> Result<(), CartError> {
        self.bytes(&v.to_le_bytes(), field)
    }

    pub fn u64(&mut self, v: u64, field: &'static str) -> Result<(), CartError> {
        self.bytes(&v.to_le_bytes(), field)
    }

    pub fn uuid(&mut self, v: &[u8; 16], field: &'static str) -> Result<(), CartError> {
        self.bytes(v, field)
    }

    /// A string (`d_string_t`, `hg_string_t`); `None` is a NULL string. `is_const` marks
    /// `d_const_string_t` (MGMT_POOL_FIND's label).
    pub fn string(
        &mut self,
        s: Option<&str>,
        is_const: bool,
        field: &'static str,
    ) -> Result<(), CartError> {
        let Some(s) = s else {
            return self.u64(0, field);
        };
        self.u64(s.len() as u64 + 1, field)?;
        self.bytes(s.as_bytes(), field)?;
        self.u8(0, field)?;
        self.u8(u8::from(is_const), field)?;
        self.u8(0, field)
    }

    /// A `d_iov_t` whose buffer length equals its length.
    pub fn iov(&mut self, b: &[u8], field: &'static str) -> Result<(), CartError> {
        self.u64(b.len() as u64, field)?;
        self.u64(b.len() as u64, field)?;
        self.bytes(b, field)
    }

    /// A rank list (`d_rank_list_t *`); an empty list is how a NULL one travels.
    pub fn ranks(&mut self, ranks: &[u32], field: &'static str) -> Result<(), CartError> {
        self.u32(ranks.len() as u32, field)?;
        for r in ranks {
            self.u32(*r, field)?;
        }
        Ok(())
    }
}

/// Reads proc-encoded fields from a received buffer.
#[derive(Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CartError> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(CartError::Short {
                field,
                need: n,
                have: left,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CartError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, CartError> {
        Ok(self.take(1, field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, CartError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, CartError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, CartError> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, CartError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub fn uuid(&mut self, field: &'static str) -> Result<[u8; 16], CartError> {
        self.array(field)
    }

    /// A string; `None` for a NULL one. The bytes must be UTF-8 and end with their NUL.
    pub fn string(&mut self, field: &'static str) -> Result<Option<&'a str>, CartError> {
        let len = self.u64(field)?;
        if len == 0 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| CartError::Length { field, len })?;
        if n > self.buf.len() - self.pos {
            return Err(CartError::Length { field, len });
        }
        let b = self.take(n, field)?;
        let (text, nul) = b.split_at(n - 1);
        if nul != [0] || text.contains(&0) {
            return Err(CartError::Invalid {
                field,
                why: "a string must end with its only NUL",
            });
        }
        let s = std::str::from_utf8(text).map_err(|_| CartError::Invalid {
            field,
            why: "not UTF-8",
        })?;
        self.take(2, field)?; // is_const, is_owned: flags of the sender's memory, not data
        Ok(Some(s))
    }

    /// A `d_iov_t`: its bytes (the first `len` of a `buf_len` buffer; a `buf_len` of 0 carries
    /// nothing).
    pub fn iov(&mut self, field: &'static str) -> Result<&'a [u8], CartError> {
        let buf_len = self.u64(field)?;
        let len = self.u64(field)?;
        if buf_len == 0 {
            return Ok(&[]);
        }
        if len > buf_len {
            return Err(CartError::Invalid {
                field,
                why: "iov length above its buffer length",
            });
        }
        let n = usize::try_from(len).map_err(|_| CartError::Length { field, len })?;
        self.take(n, field)
    }

    /// A rank list: its count, then the ranks as raw little-endian bytes (4 per rank).
    pub fn ranks(&mut self, field: &'static str) -> Result<Ranks<'a>, CartError> {
        let n = self.u32(field)? as usize;
        Ok(Ranks(self.take(n * 4, field)?))
    }
}

/// A decoded rank list, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranks<'a>(&'a [u8]);

impl Ranks<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_count_their_nul_and_carry_two_flag_bytes() {
        let mut buf = [0u8; 64];
        let mut e = Encoder::new(&mut buf);
        e.string(Some("daos_server"), false, "grp").unwrap();
        e.string(None, false, "none").unwrap();
        e.string(Some("x"), true, "const").unwrap();
        let n = e.len();
        assert_eq!(n, 8 + 12 + 2 + 8 + 8 + 2 + 2);
        assert_eq!(&buf[..8], &12u64.to_le_bytes());
        assert_eq!(&buf[8..20], b"daos_server\0");
        assert_eq!(&buf[20..22], &[0, 0]);
        assert_eq!(
            &buf[22..30],
            &[0; 8],
            "NULL is a zero length and nothing else"
        );
        assert_eq!(&buf[30..38], &2u64.to_le_bytes());
        assert_eq!(&buf[38..42], &[b'x', 0, 1, 0], "is_const set");
        let mut d = Decoder::new(&buf[..n]);
        assert_eq!(d.string("a").unwrap(), Some("daos_server"));
        assert_eq!(d.string("b").unwrap(), None);
        assert_eq!(d.string("c").unwrap(), Some("x"));
        assert!(d.rest().is_empty());
    }

    #[test]
    fn bad_strings_and_iovs_are_refused_by_name() {
        // Length past the end.
        let mut b = 100u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"abc\0\0\0");
        let e = Decoder::new(&b).string("ul_grp_id").unwrap_err();
        assert!(e.to_string().contains("ul_grp_id"), "{e}");
        // No NUL at the end.
        let mut b = 3u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"abc\0\0");
        assert!(Decoder::new(&b).string("s").is_err());
        // A NUL inside.
        let mut b = 4u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"a\0c\0\0\0");
        assert!(Decoder::new(&b).string("s").is_err());
        // An iov longer than its buffer.
        let mut b = 2u64.to_le_bytes().to_vec();
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(b"abcd");
        assert!(Decoder::new(&b).iov("pq_ver").is_err());
        // A huge count.
        let mut b = u64::MAX.to_le_bytes().to_vec();
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Decoder::new(&b).iov("v").is_err());
        assert!(Decoder::new(&u32::MAX.to_le_bytes()).ranks("r").is_err());
    }

    #[test]
    fn integers_are_little_endian_and_packed() {
        let mut buf = [0u8; 15];
        let mut e = Encoder::new(&mut buf);
        e.u8(1, "a").unwrap();
        e.u16(0x0203, "b").unwrap();
        e.u32(0x0405_0607, "c").unwrap();
        e.u64(0x0809_0a0b_0c0d_0e0f, "d").unwrap();
        assert_eq!(
            buf,
            [1, 3, 2, 7, 6, 5, 4, 0xf, 0xe, 0xd, 0xc, 0xb, 0xa, 9, 8]
        );
        let mut e = Encoder::new(&mut buf);
        e.u64(0, "x").unwrap();
        let err = e.u64(0, "full").unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
    }
}
