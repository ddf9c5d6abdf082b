//! Reply bodies, one layout per kind of answer, written by targets and read by clients here
//! only. Writers take the [`Writer`] of the reply buffer (no allocation); readers borrow from
//! the reply and refuse a malformed one with [`WireError::Body`].
//!
//! | answer to | layout |
//! |---|---|
//! | Update, WriteExtent, Punch, their bulk forms | [`Epoch`]: u64 |
//! | ContPunch | [`Epoch`]: u64 (objects punched) |
//! | Fetch, FetchBulk | [`Fetched`]: u8 tag, then value (inline) or u32 length (bulk) |
//! | ReadExtent | value; ReadExtentBulk: u32 length |
//! | ListDkeys, ListAkeys | [`Keys`]: u8 more, u32 count, keys |
//! | ListOids | [`Oids`]: u8 more, u32 count, u128 ids |
//! | ContCreate | [`Created`]: u8 |
//! | ContList | [`Containers`]: u32 count, (key label, uuid) pairs |
//! | ContQuery, ContDestroy, ContSetProps | [`Found`]: u8 found, then key label, uuid |
//! | ContGetProps | [`Fetched`] (the stored properties, or none) |
//! | AkeySize | [`AkeyShape`]: u8 kind (0 none, 1 single, 2 array), u64 size or end |
//! | Swap | u64 epoch, then [`Fetched`] (the value replaced) |
//! | Ping, ContRegister | empty |

use crate::{Reader, WireError, Writer};

const NONE: u8 = 0;
const INLINE: u8 = 1;
const BULK: u8 = 2;

/// An epoch (or a count) as the whole reply.
pub struct Epoch;

impl Epoch {
    pub fn put(w: &mut Writer<'_>, e: u64) {
        w.u64(e);
    }
    pub fn get(body: &[u8]) -> Result<u64, WireError> {
        Reader(body).u64()
    }
}

/// What an akey holds ([`crate::Request::AkeySize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AkeyShape {
    /// Nothing live.
    None,
    /// A single value of this many bytes.
    Single(u64),
    /// Array extents ending at this offset.
    Array(u64),
}

impl AkeyShape {
    pub fn put(&self, w: &mut Writer<'_>) {
        let (kind, size) = match *self {
            AkeyShape::None => (0, 0),
            AkeyShape::Single(n) => (1, n),
            AkeyShape::Array(n) => (2, n),
        };
        w.u8(kind).u64(size);
    }
    pub fn get(body: &[u8]) -> Result<AkeyShape, WireError> {
        let mut r = Reader(body);
        let kind = r.u8()?;
        let size = r.u64()?;
        Ok(match kind {
            0 if size == 0 => AkeyShape::None,
            1 => AkeyShape::Single(size),
            2 => AkeyShape::Array(size),
            _ => return Err(WireError::Body),
        })
    }
}

/// What a fetch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// Nothing stored.
    None,
    /// The value, in the message.
    Inline(&'a [u8]),
    /// The value went into the client's bulk buffer; its length.
    Bulk(u32),
}

impl<'a> Fetched<'a> {
    pub fn put(&self, w: &mut Writer<'_>) {
        match *self {
            Fetched::None => {
                w.u8(NONE);
            }
            Fetched::Inline(v) => {
                w.u8(INLINE).value(v);
            }
            Fetched::Bulk(n) => {
                w.u8(BULK).u32(n);
            }
        }
    }
    pub fn read(r: &mut Reader<'a>) -> Result<Fetched<'a>, WireError> {
        Ok(match r.u8()? {
            NONE => Fetched::None,
            INLINE => Fetched::Inline(r.value()?),
            BULK => Fetched::Bulk(r.u32()?),
            _ => return Err(WireError::Body),
        })
    }
    pub fn get(body: &'a [u8]) -> Result<Fetched<'a>, WireError> {
        Fetched::read(&mut Reader(body))
    }
}

/// A swap's answer: its epoch and the value it replaced.
pub struct Swapped;

impl Swapped {
    pub fn put(w: &mut Writer<'_>, epoch: u64, old: Option<&[u8]>) {
        w.u64(epoch);
        old.map_or(Fetched::None, Fetched::Inline).put(w);
    }
    pub fn get(body: &[u8]) -> Result<(u64, Option<&[u8]>), WireError> {
        let mut r = Reader(body);
        let epoch = r.u64()?;
        match Fetched::read(&mut r)? {
            Fetched::None => Ok((epoch, None)),
            Fetched::Inline(v) => Ok((epoch, Some(v))),
            Fetched::Bulk(_) => Err(WireError::Body),
        }
    }
}

/// A read's bytes: inline, or the length written into the client's bulk buffer.
pub struct Data;

impl Data {
    pub fn put_inline(w: &mut Writer<'_>, data: &[u8]) {
        w.value(data);
    }
    pub fn put_bulk(w: &mut Writer<'_>, len: u32) {
        w.u32(len);
    }
    pub fn get_inline(body: &[u8]) -> Result<&[u8], WireError> {
        Reader(body).value()
    }
    pub fn get_bulk_len(body: &[u8]) -> Result<u32, WireError> {
        Reader(body).u32()
    }
}

/// A page of keys: as many as fit, and whether more follow.
pub struct Keys;

impl Keys {
    /// Writes the keys that fit the reply's room.
    pub fn put<'k>(w: &mut Writer<'_>, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        let mut room = w.room().saturating_sub(5);
        let mut n = 0u32;
        let mut more = false;
        for k in keys.clone() {
            if k.len() + 2 > room {
                more = true;
                break;
            }
            room -= k.len() + 2;
            n += 1;
        }
        w.u8(u8::from(more)).u32(n);
        for k in keys.take(n as usize) {
            w.key(k);
        }
    }
    pub fn get(body: &[u8]) -> Result<(bool, Vec<Vec<u8>>), WireError> {
        let mut r = Reader(body);
        let more = r.u8()? != 0;
        let n = r.u32()?;
        // Each key takes at least 2 bytes: a count the body cannot hold is refused, not
        // allocated for.
        if n as usize > r.0.len() / 2 {
            return Err(WireError::Body);
        }
        let mut keys = Vec::with_capacity(n as usize);
        for _ in 0..n {
            keys.push(r.key()?.to_vec());
        }
        Ok((more, keys))
    }
}

/// A page of object ids.
pub struct Oids;

impl Oids {
    /// How many ids fit the reply's room.
    pub fn room(w: &Writer<'_>) -> usize {
        w.room().saturating_sub(5) / 16
    }
    pub fn put(w: &mut Writer<'_>, oids: &[u128], more: bool) {
        w.u8(u8::from(more)).u32(oids.len() as u32);
        for o in oids {
            w.u128(*o);
        }
    }
    pub fn get(body: &[u8]) -> Result<(bool, Vec<u128>), WireError> {
        let mut r = Reader(body);
        let more = r.u8()? != 0;
        let n = r.u32()? as usize;
        if n > r.0.len() / 16 {
            return Err(WireError::Body);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(r.u128()?);
        }
        Ok((more, out))
    }
}

/// A container create's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Created {
    LabelTaken = 0,
    Created = 1,
    UuidTaken = 2,
}

impl Created {
    pub fn put(self, w: &mut Writer<'_>) {
        w.u8(self as u8);
    }
    pub fn get(body: &[u8]) -> Result<Created, WireError> {
        match Reader(body).u8()? {
            0 => Ok(Created::LabelTaken),
            1 => Ok(Created::Created),
            2 => Ok(Created::UuidTaken),
            _ => Err(WireError::Body),
        }
    }
}

/// The container table: (label, UUID) pairs.
pub struct Containers;

impl Containers {
    pub fn put(w: &mut Writer<'_>, entries: &[(&[u8], [u8; 16])]) {
        w.u32(entries.len() as u32);
        for (l, u) in entries {
            w.key(l).put(u);
        }
    }
    pub fn get(body: &[u8]) -> Result<Vec<(String, [u8; 16])>, WireError> {
        let mut r = Reader(body);
        let n = r.u32()? as usize;
        if n > r.0.len() / 18 {
            return Err(WireError::Body);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let l = r.key()?;
            out.push((String::from_utf8_lossy(l).into_owned(), r.uuid()?));
        }
        Ok(out)
    }
}

/// A container looked up: its label and UUID, if it exists.
pub struct Found;

impl Found {
    pub fn put(w: &mut Writer<'_>, found: Option<(&[u8], [u8; 16])>) {
        match found {
            Some((l, u)) => {
                w.u8(1).key(l).put(&u);
            }
            None => {
                w.u8(0);
            }
        }
    }
    pub fn get(body: &[u8]) -> Result<Option<(String, [u8; 16])>, WireError> {
        let mut r = Reader(body);
        match r.u8()? {
            0 => Ok(None),
            1 => {
                let l = r.key()?;
                Ok(Some((String::from_utf8_lossy(l).into_owned(), r.uuid()?)))
            }
            _ => Err(WireError::Body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Header, Op};

    /// Writes with `put` into a reply buffer and returns the body.
    fn body(put: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::body(&mut buf);
        put(&mut w);
        let n = w
            .finish(Header::request(Op::Ping, 1, [0; 16], [0; 16], b""))
            .expect("fits");
        buf[crate::HEADER_LEN..n].to_vec()
    }

    #[test]
    fn a_limited_listing_is_a_page_that_says_more_follow() {
        let mut buf = vec![0u8; 1 << 20];
        let mut w = Writer::body(&mut buf);
        w.limit(crate::LIST_PAGE);
        assert_eq!(w.room(), crate::LIST_PAGE);
        let max = Oids::room(&w);
        let ids: Vec<u128> = (0..10_000).collect();
        Oids::put(&mut w, &ids[..max], true);
        let n = w
            .finish(Header::request(Op::Ping, 1, [0; 16], [0; 16], b""))
            .expect("fits");
        assert!(n <= crate::HEADER_LEN + crate::LIST_PAGE);
        let (more, got) = Oids::get(&buf[crate::HEADER_LEN..n]).expect("page");
        assert!(more);
        assert_eq!(got, ids[..max]);
        // Keys stop at the page too.
        let mut w = Writer::body(&mut buf);
        w.limit(crate::LIST_PAGE);
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().repeat(4)).collect();
        Keys::put(&mut w, keys.iter().map(Vec::as_slice));
        let n = w
            .finish(Header::request(Op::Ping, 1, [0; 16], [0; 16], b""))
            .expect("fits");
        assert!(n <= crate::HEADER_LEN + crate::LIST_PAGE);
        let (more, got) = Keys::get(&buf[crate::HEADER_LEN..n]).expect("page");
        assert!(more && !got.is_empty() && got[..] == keys[..got.len()]);
    }

    #[test]
    fn every_layout_round_trips_and_garbage_is_refused() {
        assert_eq!(Epoch::get(&body(|w| Epoch::put(w, 77))), Ok(77));
        for f in [
            Fetched::None,
            Fetched::Inline(b"abc"),
            Fetched::Bulk(1 << 20),
        ] {
            let b = body(|w| f.put(w));
            assert_eq!(Fetched::get(&b), Ok(f));
        }
        let b = body(|w| Swapped::put(w, 9, Some(b"old")));
        assert_eq!(Swapped::get(&b), Ok((9, Some(&b"old"[..]))));
        let keys: Vec<&[u8]> = vec![b"a", b"bb", b""];
        let b = body(|w| Keys::put(w, keys.iter().copied()));
        assert_eq!(
            Keys::get(&b),
            Ok((false, vec![b"a".to_vec(), b"bb".to_vec(), vec![]]))
        );
        let b = body(|w| Oids::put(w, &[1, u128::MAX], true));
        assert_eq!(Oids::get(&b), Ok((true, vec![1, u128::MAX])));
        for c in [Created::LabelTaken, Created::Created, Created::UuidTaken] {
            assert_eq!(Created::get(&body(|w| c.put(w))), Ok(c));
        }
        let b = body(|w| Containers::put(w, &[(b"c1", [1; 16]), (b"c2", [2; 16])]));
        assert_eq!(
            Containers::get(&b),
            Ok(vec![("c1".into(), [1; 16]), ("c2".into(), [2; 16])])
        );
        let b = body(|w| Found::put(w, Some((b"c", [3; 16]))));
        assert_eq!(Found::get(&b), Ok(Some(("c".into(), [3; 16]))));
        assert_eq!(Found::get(&body(|w| Found::put(w, None))), Ok(None));
        // Counts a body cannot hold, unknown tags, short bodies.
        assert!(Keys::get(&[0, 255, 255, 255, 255]).is_err());
        assert!(Oids::get(&[1, 0, 0, 0, 16]).is_err());
        assert!(Containers::get(&[9, 9, 9, 9]).is_err());
        assert!(Fetched::get(&[7]).is_err());
        assert!(Created::get(&[3]).is_err());
        assert!(Epoch::get(&[1, 2]).is_err());
    }

    #[test]
    fn a_key_page_stops_where_the_reply_is_full() {
        let long = vec![b'k'; 1000];
        let keys: Vec<&[u8]> = (0..10).map(|_| long.as_slice()).collect();
        let mut buf = vec![0u8; crate::HEADER_LEN + 3000];
        let mut w = Writer::body(&mut buf);
        Keys::put(&mut w, keys.iter().copied());
        let n = w
            .finish(Header::request(Op::Ping, 1, [0; 16], [0; 16], b""))
            .expect("fits");
        let (more, got) = Keys::get(&buf[crate::HEADER_LEN..n]).expect("keys");
        assert!(more);
        assert_eq!(got.len(), 2);
    }
}

#[cfg(test)]
mod akey_shape_tests {
    use super::*;

    #[test]
    fn akey_shapes_round_trip_and_bad_kinds_are_refused() {
        for shape in [
            AkeyShape::None,
            AkeyShape::Single(5),
            AkeyShape::Array(1 << 40),
        ] {
            let mut buf = [0u8; crate::HEADER_LEN + 9];
            let mut w = Writer::body(&mut buf);
            shape.put(&mut w);
            assert_eq!(AkeyShape::get(&buf[crate::HEADER_LEN..]), Ok(shape));
        }
        assert_eq!(
            AkeyShape::get(&[3, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Body)
        );
        assert_eq!(
            AkeyShape::get(&[0, 1, 0, 0, 0, 0, 0, 0, 0]),
            Err(WireError::Body)
        );
        assert!(AkeyShape::get(&[1, 0]).is_err(), "short");
    }
}
