//! The client ↔ target protocol: what travels in one fabric message.
//!
//! Every message starts with a fixed 128-byte little-endian header; the body that follows has
//! a fixed layout per operation (lengths before bytes). Encoding writes into a caller's buffer
//! (the fabric endpoint's own send buffer) and decoding borrows from the receive buffer, so
//! neither allocates.
//!
//! ```text
//!  0 magic u32 "DRS\x01"   4 version u16   6 op u16   8 tag u64 (echoed in the reply)
//! 16 status i32 (replies: 0 or a DER code)   20 body length u32
//! 24 pool uuid [16]   40 container uuid [16]   56 reply-address length u8
//! 57 reply address [40] (the client's fabric name)   97 flags u8 ([`FLAG_AS_GIVEN`])
//! 98..100 zero
//! 100 pool map version u32 (requests: the client's; replies: the target's; 0 = not known)
//! 104 epoch u64: requests that change data carry the epoch the client chose (the same on
//!     every replica, so concurrent updates of a key end alike everywhere; 0 = the target
//!     chooses); replies carry the epoch of the value fetched, else the target's clock
//! 112 pool handle u64 (from pool connect; a target refuses requests without a handle it was
//!     told of, DER_NO_HDL, or beyond its rights, DER_NO_PERM)   120 container handle u64
//! ```
//!
//! Epochs are hybrid logical clock readings (nanoseconds since 1970, never going back on
//! one side, raised by every epoch seen from the other side), as DAOS's HLC. A target refuses
//! an epoch more than [`HLC_EPSILON_NS`] ahead of its own clock with `DER_HLC_SYNC`, and a
//! change whose epoch is not above every change of the key it touches with `DER_TX_RESTART`
//! and that newest epoch in the header: the client takes it into its clock and sends the
//! change again at a later epoch, so acknowledged changes of a key are ordered by their epochs
//! in the order they were acknowledged, whatever the clients' clocks (DAOS's conflict check
//! and restart).
//!
//! A target that knows a newer map of the pool than the request's refuses it with
//! [`der::STALE`] and its own version in the header (DAOS's `DER_STALE` check in
//! `obj_ioc_init`): the client refreshes its map and sends again to where the new map places
//! the object.
//!
//! Compatibility: `magic` and `version` keep their place in every version. A target that gets
//! another version answers with status [`der::PROTO`] and its own version in the header, and
//! the client reports both (DAOS internals: "protocol compatibility").

/// First four bytes of every message.
pub const MAGIC: u32 = 0x0153_5244;
/// The protocol version this build speaks.
pub const VERSION: u16 = 3;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 128;
/// Bytes of version 1's header (no epoch): still read, to answer such a client `DER_PROTO`.
const V1_HEADER_LEN: usize = 104;
/// How far a request's epoch may be ahead of the target's clock (DAOS's HLC epsilon, 1 s).
pub const HLC_EPSILON_NS: u64 = 1_000_000_000;

/// This host's physical clock for epochs: nanoseconds since 1970 (0 if the clock is set
/// before it).
pub fn clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
/// The cookie a DAOS client's handle UUID (pool or container) names: its two halves mixed
/// (splitmix64), never 0. Distinct UUIDs name distinct cookies but with odds of 2^-64.
pub fn handle_cookie(uuid: &[u8]) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(uuid.get(..8).unwrap_or(&[0; 8]));
    b.copy_from_slice(uuid.get(8..16).unwrap_or(&[0; 8]));
    mix(u64::from_le_bytes(a) ^ mix(u64::from_le_bytes(b))).max(1)
}

/// Largest reply address (a fabric endpoint name).
pub const ADDR_MAX: usize = 40;
/// Largest dkey or akey.
pub const KEY_MAX: usize = 1024;
/// The largest extent read in one request (a reply's room).
pub const READ_MAX: usize = 1 << 20;

/// The libfabric provider string for DAOS's `provider` value (`ofi+tcp` -> `tcp;ofi_rxm`).
pub fn libfabric_provider(daos: &str) -> String {
    let p = daos.strip_prefix("ofi+").unwrap_or(daos);
    match p {
        "tcp" | "verbs" => format!("{p};ofi_rxm"),
        _ => p.to_string(),
    }
}

/// The fabric port of target `t` of an engine whose base port is `base`: DAOS's context
/// layout, where context (tag) `k` listens on `base + k`: tag 0 is the system context, tag 1
/// SWIM's, target `t` is tag `t + 2` (DAOS's clients compute every tag's port so).
pub fn target_port(base: u16, t: u32) -> u16 {
    base.saturating_add(2 + t as u16)
}

/// DAOS error numbers (`-DER_*`) carried in the status field.
pub mod der {
    /// Declares DAOS's codes once: the [`Der`] enum, a constant per code (what travels in
    /// status fields), and the names.
    macro_rules! codes {
        ($($variant:ident $konst:ident = $code:literal $name:literal,)*) => {
            /// A DAOS error number (`-DER_*`); 0 is success.
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            #[repr(i32)]
            pub enum Der {
                $($variant = $code,)*
            }

            $(pub const $konst: i32 = $code;)*

            impl Der {
                /// The code of a status field, if DAOS-rs knows it.
                pub fn from_code(code: i32) -> Option<Der> {
                    match code {
                        $($code => Some(Der::$variant),)*
                        _ => None,
                    }
                }

                /// DAOS's name (`DER_NONEXIST`).
                pub fn name(self) -> &'static str {
                    match self {
                        $(Der::$variant => $name,)*
                    }
                }

                pub fn code(self) -> i32 {
                    self as i32
                }
            }
        };
    }

    codes! {
        Success SUCCESS = 0 "DER_SUCCESS",
        NoPerm NO_PERM = -1001 "DER_NO_PERM",
        NoHdl NO_HDL = -1002 "DER_NO_HDL",
        Inval INVAL = -1003 "DER_INVAL",
        Exist EXIST = -1004 "DER_EXIST",
        Nonexist NONEXIST = -1005 "DER_NONEXIST",
        Unreach UNREACH = -1006 "DER_UNREACH",
        Nospace NOSPACE = -1007 "DER_NOSPACE",
        Nosys NOSYS = -1010 "DER_NOSYS",
        Timedout TIMEDOUT = -1011 "DER_TIMEDOUT",
        Busy BUSY = -1012 "DER_BUSY",
        Proto PROTO = -1014 "DER_PROTO",
        Uninit UNINIT = -1015 "DER_UNINIT",
        Trunc TRUNC = -1016 "DER_TRUNC",
        Overflow OVERFLOW = -1017 "DER_OVERFLOW",
        Oog OOG = -1019 "DER_OOG",
        Hg HG = -1020 "DER_HG",
        Unreg UNREG = -1021 "DER_UNREG",
        Misc MISC = -1025 "DER_MISC",
        Dos DOS = -1034 "DER_DOS",
        BadTarget BAD_TARGET = -1035 "DER_BAD_TARGET",
        Grpver GRPVER = -1036 "DER_GRPVER",
        HlcSync HLC_SYNC = -1037 "DER_HLC_SYNC",
        Io IO = -2001 "DER_IO",
        Stale STALE = -2007 "DER_STALE",
        Notleader NOTLEADER = -2008 "DER_NOTLEADER",
        Key2big KEY2BIG = -2012 "DER_KEY2BIG",
        Rec2big REC2BIG = -2013 "DER_REC2BIG",
        Notreplica NOTREPLICA = -2020 "DER_NOTREPLICA",
        Csum CSUM = -2021 "DER_CSUM",
        TxRestart TX_RESTART = -2025 "DER_TX_RESTART",
        Notsupported NOTSUPPORTED = -2037 "DER_NOTSUPPORTED",
    }

    /// DAOS's name of a status code, for messages.
    pub fn name(code: i32) -> &'static str {
        Der::from_code(code).map_or("DER_UNKNOWN", Der::name)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_and_names_agree_with_daos() {
            assert_eq!(NONEXIST, -1005);
            assert_eq!(name(-2013), "DER_REC2BIG");
            assert_eq!(Der::from_code(-1017), Some(Der::Overflow));
            assert_eq!(Der::Csum.code(), CSUM);
            assert_eq!(name(-9999), "DER_UNKNOWN");
        }
    }
}

/// A client buffer registered for RMA: the target reads a value from it (updates) or writes
/// one into it (fetches), so bulk data never travels inside messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk {
    pub key: u64,
    pub offset: u64,
    pub len: u32,
}

/// Values above this travel by RMA when both sides can.
pub const BULK_THRESHOLD: usize = 16 << 10;

/// Largest body of a listing reply (object ids, dkeys): a page, as DAOS's enumeration
/// anchors make them; the client asks again from where the page ended. A reply larger than
/// a client's receive buffer never reaches it (its messages hold [`BULK_THRESHOLD`] and 8 KiB
/// of keys and headers, or less without RMA), so listings stay well below the smallest.
pub const LIST_PAGE: usize = 4096;

pub mod reply;

/// A message that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message too short: {0} bytes")]
    Short(usize),
    #[error("not a daos-rs message (magic {0:#010x})")]
    Magic(u32),
    #[error("protocol version {theirs}, this side speaks {ours}")]
    Version { theirs: u16, ours: u16 },
    #[error("unknown operation {0}")]
    Op(u16),
    #[error("body truncated or malformed")]
    Body,
    #[error("key of {0} bytes exceeds {KEY_MAX}")]
    KeyTooLong(usize),
    #[error("message does not fit the {0}-byte buffer")]
    Overflow(usize),
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub op: u16,
    pub tag: u64,
    pub status: i32,
    pub body_len: u32,
    pub pool: [u8; 16],
    pub cont: [u8; 16],
    pub addr_len: u8,
    pub addr: [u8; ADDR_MAX],
    /// The pool map version the request was built on, or the target's in a reply; 0 when
    /// not known (never refused as stale).
    pub map_version: u32,
    /// A change's epoch chosen by the client (0: the target chooses), or in a reply the
    /// fetched value's epoch or the target's clock.
    pub epoch: u64,
    /// The pool handle the request is made under (from pool connect; 0: none).
    pub handle: u64,
    /// The container handle (from container open; 0: none).
    pub cont_handle: u64,
    /// [`FLAG_AS_GIVEN`] and future flags (0 in older clients' requests).
    pub flags: u8,
}

/// A change stored at the epoch it names without the order check (a rebuild's copy of a
/// value at the value's own epoch). Client changes leave it clear: the target refuses one
/// that is not newer than what it touches with [`der::TX_RESTART`] and the newest epoch.
pub const FLAG_AS_GIVEN: u8 = 1;

impl Header {
    /// A request header from this side.
    pub fn request(op: Op, tag: u64, pool: [u8; 16], cont: [u8; 16], addr: &[u8]) -> Header {
        let mut a = [0u8; ADDR_MAX];
        let n = addr.len().min(ADDR_MAX);
        a[..n].copy_from_slice(&addr[..n]);
        Header {
            version: VERSION,
            op: op as u16,
            tag,
            status: 0,
            body_len: 0,
            pool,
            cont,
            addr_len: n as u8,
            addr: a,
            map_version: 0,
            epoch: 0,
            handle: 0,
            cont_handle: 0,
            flags: 0,
        }
    }

    /// This header with flags `f` ([`FLAG_AS_GIVEN`]).
    pub fn with_flags(mut self, f: u8) -> Header {
        self.flags = f;
        self
    }

    /// This header with pool handle `pool` and container handle `cont`.
    pub fn with_handles(mut self, pool: u64, cont: u64) -> Header {
        self.handle = pool;
        self.cont_handle = cont;
        self
    }

    /// This header with epoch `e`.
    pub fn with_epoch(mut self, e: u64) -> Header {
        self.epoch = e;
        self
    }

    /// This header with pool map version `v`.
    pub fn with_map_version(mut self, v: u32) -> Header {
        self.map_version = v;
        self
    }

    /// The reply address the client put in its request.
    pub fn reply_addr(&self) -> &[u8] {
        &self.addr[..usize::from(self.addr_len).min(ADDR_MAX)]
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let size = buf.len();
        let b = buf.get_mut(..HEADER_LEN).ok_or(WireError::Overflow(size))?;
        b.fill(0);
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.op.to_le_bytes());
        b[8..16].copy_from_slice(&self.tag.to_le_bytes());
        b[16..20].copy_from_slice(&self.status.to_le_bytes());
        b[20..24].copy_from_slice(&self.body_len.to_le_bytes());
        b[24..40].copy_from_slice(&self.pool);
        b[40..56].copy_from_slice(&self.cont);
        b[56] = self.addr_len;
        b[57..57 + ADDR_MAX].copy_from_slice(&self.addr);
        b[97] = self.flags;
        b[100..104].copy_from_slice(&self.map_version.to_le_bytes());
        b[104..112].copy_from_slice(&self.epoch.to_le_bytes());
        b[112..120].copy_from_slice(&self.handle.to_le_bytes());
        b[120..128].copy_from_slice(&self.cont_handle.to_le_bytes());
        Ok(())
    }

    /// Reads a header without judging its version (so either side can report a mismatch;
    /// older, shorter headers are read too, the fields they lack as 0).
    pub fn read(buf: &[u8]) -> Result<Header, WireError> {
        if buf.len() < V1_HEADER_LEN {
            return Err(WireError::Short(buf.len()));
        }
        let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        // Fields an older (shorter) header does not have read as 0.
        let u64_at = |i: usize| {
            buf.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(WireError::Magic(magic));
        }
        let mut pool = [0u8; 16];
        pool.copy_from_slice(&buf[24..40]);
        let mut cont = [0u8; 16];
        cont.copy_from_slice(&buf[40..56]);
        let mut addr = [0u8; ADDR_MAX];
        addr.copy_from_slice(&buf[57..57 + ADDR_MAX]);
        Ok(Header {
            version: u16_at(4),
            op: u16_at(6),
            tag: u64::from_le_bytes(buf[8..16].try_into().map_err(|_| WireError::Body)?),
            status: u32_at(16) as i32,
            body_len: u32_at(20),
            pool,
            cont,
            addr_len: buf[56],
            addr,
            map_version: u32_at(100),
            epoch: u64_at(104),
            handle: u64_at(112),
            cont_handle: u64_at(120),
            flags: buf[97],
        })
    }

    /// The body that follows this header in `buf`.
    pub fn body<'a>(&self, buf: &'a [u8]) -> Result<&'a [u8], WireError> {
        buf.get(HEADER_LEN..HEADER_LEN + self.body_len as usize)
            .ok_or(WireError::Body)
    }
}

/// Writes a body into a buffer; a body that does not fit is [`WireError::Overflow`].
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    /// Writes the body after the header's place in `buf`.
    pub fn body(buf: &'a mut [u8]) -> Writer<'a> {
        Writer {
            buf,
            pos: HEADER_LEN,
            overflow: false,
        }
    }

    /// Keeps the body to at most `room` more bytes (a listing's page).
    pub fn limit(&mut self, room: usize) {
        let end = self.buf.len().min(self.pos.saturating_add(room));
        let buf = std::mem::take(&mut self.buf);
        self.buf = &mut buf[..end];
    }

    /// Bytes still free.
    pub fn room(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn put(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.pos..self.pos + b.len()) {
            Some(d) if !self.overflow => {
                d.copy_from_slice(b);
                self.pos += b.len();
            }
            _ => self.overflow = true,
        }
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.put(&[v])
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    pub fn u128(&mut self, v: u128) -> &mut Self {
        self.put(&v.to_le_bytes())
    }
    /// A key: u16 length, bytes.
    pub fn key(&mut self, k: &[u8]) -> &mut Self {
        if k.len() > KEY_MAX {
            self.overflow = true;
            return self;
        }
        self.put(&(k.len() as u16).to_le_bytes()).put(k)
    }
    /// A value: u32 length, bytes.
    pub fn value(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).put(v)
    }
    /// Reserves a value of `len` bytes and returns it to be filled in place.
    pub fn value_in_place(&mut self, len: usize) -> Option<&mut [u8]> {
        self.u32(len as u32);
        let start = self.pos;
        match self.buf.get_mut(start..start + len) {
            Some(d) if !self.overflow => {
                self.pos += len;
                Some(d)
            }
            _ => {
                self.overflow = true;
                None
            }
        }
    }

    /// Completes the message: writes `header` with the body length; returns the total length.
    pub fn finish(self, mut header: Header) -> Result<usize, WireError> {
        if self.overflow {
            return Err(WireError::Overflow(self.buf.len()));
        }
        header.body_len = (self.pos - HEADER_LEN) as u32;
        header.write(self.buf)?;
        Ok(self.pos)
    }
}

/// Reads a body.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Body);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| WireError::Body)?,
        ))
    }
    pub fn u128(&mut self) -> Result<u128, WireError> {
        let b = self.take(16)?;
        Ok(u128::from_le_bytes(
            b.try_into().map_err(|_| WireError::Body)?,
        ))
    }
    pub fn key(&mut self) -> Result<&'a [u8], WireError> {
        let b = self.take(2)?;
        let n = usize::from(u16::from_le_bytes([b[0], b[1]]));
        if n > KEY_MAX {
            return Err(WireError::KeyTooLong(n));
        }
        self.take(n)
    }
    pub fn value(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn uuid(&mut self) -> Result<[u8; 16], WireError> {
        let mut u = [0u8; 16];
        u.copy_from_slice(self.take(16)?);
        Ok(u)
    }
}

/// What to punch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PunchWhat<'a> {
    Object,
    Dkey(&'a [u8]),
    Akey(&'a [u8], &'a [u8]),
}

/// How one request field travels: `put!` writes it, `get!` reads it, `len!` is its size.
macro_rules! put {
    (key, $w:ident, $v:expr) => {
        $w.key($v)
    };
    (value, $w:ident, $v:expr) => {
        $w.value($v)
    };
    (u8, $w:ident, $v:expr) => {
        $w.u8($v)
    };
    (bool, $w:ident, $v:expr) => {
        $w.u8(u8::from($v))
    };
    (u32, $w:ident, $v:expr) => {
        $w.u32($v)
    };
    (u64, $w:ident, $v:expr) => {
        $w.u64($v)
    };
    (u128, $w:ident, $v:expr) => {
        $w.u128($v)
    };
    (uuid, $w:ident, $v:expr) => {
        $w.put(&$v)
    };
    (bulk, $w:ident, $v:expr) => {
        put_bulk($w, $v)
    };
    (punch, $w:ident, $v:expr) => {
        put_punch($w, $v)
    };
}
macro_rules! get {
    (key, $r:ident) => {
        $r.key()?
    };
    (value, $r:ident) => {
        $r.value()?
    };
    (u8, $r:ident) => {
        $r.u8()?
    };
    (bool, $r:ident) => {
        $r.u8()? != 0
    };
    (u32, $r:ident) => {
        $r.u32()?
    };
    (u64, $r:ident) => {
        $r.u64()?
    };
    (u128, $r:ident) => {
        $r.u128()?
    };
    (uuid, $r:ident) => {
        $r.uuid()?
    };
    (bulk, $r:ident) => {
        get_bulk(&mut $r)?
    };
    (punch, $r:ident) => {
        get_punch(&mut $r)?
    };
}
macro_rules! len {
    (key, $v:expr) => {
        2 + $v.len()
    };
    (value, $v:expr) => {
        4 + $v.len()
    };
    (u8, $v:expr) => {
        1
    };
    (bool, $v:expr) => {
        1
    };
    (u32, $v:expr) => {
        4
    };
    (u64, $v:expr) => {
        8
    };
    (u128, $v:expr) => {
        16
    };
    (uuid, $v:expr) => {
        16
    };
    (bulk, $v:expr) => {
        20
    };
    (punch, $v:expr) => {
        punch_len($v)
    };
}

/// Declares every request once: its operation code, its fields in wire order with their Rust
/// type and how each travels. From it come [`Op`], [`Request`], and their encoding, decoding
/// and length, so the three cannot disagree.
macro_rules! requests {
    (<$lt:lifetime> $(
        $(#[$doc:meta])*
        $name:ident = $code:literal $({ $($field:ident : $ty:ty => $kind:ident),* $(,)? })?
    ),* $(,)?) => {
        /// Operation codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u16)]
        pub enum Op {
            $($name = $code,)*
        }

        impl Op {
            pub fn from_u16(v: u16) -> Option<Op> {
                match v {
                    $($code => Some(Op::$name),)*
                    _ => None,
                }
            }
        }

        /// A request body, borrowed from the message it came in.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Request<$lt> {
            $(
                $(#[$doc])*
                $name $({ $($field: $ty,)* })?,
            )*
        }

        impl<$lt> Request<$lt> {
            pub fn op(&self) -> Op {
                match self {
                    $(Request::$name $({ $($field: _,)* })? => Op::$name,)*
                }
            }

            /// Bytes of the whole message (header and body).
            #[allow(unused_variables)] // fixed-size fields count without their value
            pub fn encoded_len(&self) -> usize {
                HEADER_LEN
                    + match *self {
                        $(Request::$name $({ $($field,)* })? => 0 $($(+ len!($kind, $field))*)?,)*
                    }
            }

            /// Writes the body.
            pub fn encode(&self, w: &mut Writer<'_>) {
                match *self {
                    $(Request::$name $({ $($field,)* })? => {
                        $($(put!($kind, w, $field);)*)?
                    })*
                }
            }

            /// Reads the body of operation `op`.
            pub fn decode(op: u16, body: &$lt [u8]) -> Result<Request<$lt>, WireError> {
                let op = Op::from_u16(op).ok_or(WireError::Op(op))?;
                let mut r = Reader(body);
                let req = match op {
                    $(Op::$name => Request::$name $({ $($field: get!($kind, r),)* })?,)*
                };
                // Silence "unused" for bodiless operations.
                let _ = &mut r;
                Ok(req)
            }
        }
    };
}

requests! { <'a>
    Ping = 1,
    Update = 2 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, value: &'a [u8] => value },
    Fetch = 3 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key },
    WriteExtent = 4 {
        oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, offset: u64 => u64,
        data: &'a [u8] => value,
    },
    ReadExtent = 5 {
        oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, offset: u64 => u64,
        len: u32 => u32,
    },
    Punch = 6 { oid: u128 => u128, what: PunchWhat<'a> => punch },
    /// Dkeys after `after` (all from the start when empty).
    ListDkeys = 7 { oid: u128 => u128, after: &'a [u8] => key },
    ListAkeys = 8 { oid: u128 => u128, dkey: &'a [u8] => key },
    /// Object ids above `after` (with `from_start`, from the first).
    ListOids = 9 { after: u128 => u128, from_start: bool => bool },
    ContCreate = 10 { label: &'a [u8] => key, uuid: [u8; 16] => uuid },
    ContList = 11,
    /// By label, or by UUID text.
    ContQuery = 12 { id: &'a [u8] => key },
    ContDestroy = 13 { id: &'a [u8] => key },
    /// Punches every object of the header's container on this target, which then no longer
    /// serves it.
    ContPunch = 14,
    /// [`Request::Update`] with the value in the client's `bulk` buffer.
    UpdateBulk = 15 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, bulk: Bulk => bulk },
    WriteExtentBulk = 16 {
        oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, offset: u64 => u64,
        bulk: Bulk => bulk,
    },
    /// [`Request::Fetch`]; a value larger than [`BULK_THRESHOLD`] is written into `bulk`.
    FetchBulk = 17 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, bulk: Bulk => bulk },
    /// [`Request::ReadExtent`] of `bulk.len` bytes, written into `bulk`.
    ReadExtentBulk = 18 {
        oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, offset: u64 => u64,
        bulk: Bulk => bulk,
    },
    /// [`Request::Update`] of a small single value that answers with the value it replaced,
    /// in one step (nothing can come between): the epoch, then a fetch reply.
    Swap = 19 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key, value: &'a [u8] => value },
    /// This target serves the header's container from now on (after its create).
    ContRegister = 20,
    /// What an akey holds now (rebuild copies it): nothing, a single value of some size, or
    /// an array up to some end ([`reply::AkeyShape`]).
    AkeySize = 21 { oid: u128 => u128, dkey: &'a [u8] => key, akey: &'a [u8] => key },
    /// Stores a container's properties (`rd_fac:1;rd_lvl:node;...`) in the container table;
    /// answers [`reply::Found`] (the container, or none).
    ContSetProps = 22 { id: &'a [u8] => key, props: &'a [u8] => value },
    /// A container's properties as a fetch reply (none when unset or no such container).
    ContGetProps = 23 { id: &'a [u8] => key },
    /// Forgets this target's copy of an object, every epoch of it (DAOS's reclaim after a
    /// reintegration or extension moved the object's shard elsewhere): answers the epoch.
    Reclaim = 24 { oid: u128 => u128 },
}

fn put_punch(w: &mut Writer<'_>, what: PunchWhat<'_>) {
    match what {
        PunchWhat::Object => w.u8(0),
        PunchWhat::Dkey(d) => w.u8(1).key(d),
        PunchWhat::Akey(d, a) => w.u8(2).key(d).key(a),
    };
}

fn get_punch<'a>(r: &mut Reader<'a>) -> Result<PunchWhat<'a>, WireError> {
    Ok(match r.u8()? {
        0 => PunchWhat::Object,
        1 => PunchWhat::Dkey(r.key()?),
        2 => PunchWhat::Akey(r.key()?, r.key()?),
        _ => return Err(WireError::Body),
    })
}

fn punch_len(what: PunchWhat<'_>) -> usize {
    1 + match what {
        PunchWhat::Object => 0,
        PunchWhat::Dkey(d) => 2 + d.len(),
        PunchWhat::Akey(d, a) => 4 + d.len() + a.len(),
    }
}

impl<'a> Request<'a> {
    /// The client buffer of a bulk request.
    pub fn bulk(&self) -> Option<Bulk> {
        match *self {
            Request::UpdateBulk { bulk, .. }
            | Request::WriteExtentBulk { bulk, .. }
            | Request::FetchBulk { bulk, .. }
            | Request::ReadExtentBulk { bulk, .. } => Some(bulk),
            _ => None,
        }
    }

    /// Refuses what no target would take, before it is sent: a key longer than [`KEY_MAX`]
    /// (`DER_KEY2BIG`), a read longer than [`READ_MAX`] (`DER_REC2BIG`), an extent
    /// past the last array offset (`DER_OVERFLOW`). Returns the code and why.
    pub fn check(&self) -> Result<(), (i32, String)> {
        let (dkey, akey): (&[u8], &[u8]) = match *self {
            Request::Update { dkey, akey, .. }
            | Request::Swap { dkey, akey, .. }
            | Request::Fetch { dkey, akey, .. }
            | Request::WriteExtent { dkey, akey, .. }
            | Request::ReadExtent { dkey, akey, .. }
            | Request::UpdateBulk { dkey, akey, .. }
            | Request::WriteExtentBulk { dkey, akey, .. }
            | Request::FetchBulk { dkey, akey, .. }
            | Request::ReadExtentBulk { dkey, akey, .. } => (dkey, akey),
            Request::Punch {
                what: PunchWhat::Akey(d, a),
                ..
            } => (d, a),
            Request::Punch {
                what: PunchWhat::Dkey(d),
                ..
            }
            | Request::ListDkeys { after: d, .. }
            | Request::ListAkeys { dkey: d, .. } => (d, b""),
            Request::ContCreate { label, .. } => (label, b""),
            Request::ContQuery { id } | Request::ContDestroy { id } => (id, b""),
            _ => (b"", b""),
        };
        for (what, k) in [("dkey", dkey), ("akey", akey)] {
            if k.len() > KEY_MAX {
                return Err((
                    der::KEY2BIG,
                    format!(
                        "{what} of {} bytes exceeds the largest key of {KEY_MAX} bytes",
                        k.len()
                    ),
                ));
            }
        }
        let (offset, len) = match *self {
            Request::ReadExtent { offset, len, .. } => (offset, len as usize),
            Request::ReadExtentBulk { offset, bulk, .. }
            | Request::WriteExtentBulk { offset, bulk, .. } => (offset, bulk.len as usize),
            Request::WriteExtent { offset, data, .. } => (offset, data.len()),
            _ => return Ok(()),
        };
        let read = matches!(
            self,
            Request::ReadExtent { .. } | Request::ReadExtentBulk { .. }
        );
        if read && len > READ_MAX {
            return Err((
                der::REC2BIG,
                format!(
                    "a read of {len} bytes exceeds the largest read of {} bytes; read in parts",
                    READ_MAX
                ),
            ));
        }
        if offset.checked_add(len as u64).is_none() {
            return Err((
                der::OVERFLOW,
                format!(
                    "extent at offset {offset} of {len} bytes ends beyond the largest array offset (2^64 - 1)"
                ),
            ));
        }
        Ok(())
    }
}

fn put_bulk(w: &mut Writer<'_>, b: Bulk) {
    w.u64(b.key).u64(b.offset).u32(b.len);
}

fn get_bulk(r: &mut Reader<'_>) -> Result<Bulk, WireError> {
    Ok(Bulk {
        key: r.u64()?,
        offset: r.u64()?,
        len: r.u32()?,
    })
}

/// A new random (version 4) UUID.
pub fn new_uuid() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// A new random UUID's text.
pub fn new_uuid_text() -> std::io::Result<String> {
    new_uuid().map(|u| uuid_text(&u))
}

/// A UUID's canonical text (`8-4-4-4-12`, lower case).
pub fn uuid_text(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a UUID's text (any case); `None` if it is not one.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.split('-').collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    if groups != [8, 4, 4, 4, 12] || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut u = [0u8; 16];
    for (i, b) in u.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(u)
}

/// Writes a complete request message into `buf`; returns its length.
pub fn encode_request(
    buf: &mut [u8],
    header: Header,
    req: &Request<'_>,
) -> Result<usize, WireError> {
    let mut w = Writer::body(buf);
    req.encode(&mut w);
    w.finish(header)
}

/// Writes an error reply (status and a message for people) to the request `req`.
pub fn encode_error(buf: &mut [u8], req: &Header, status: i32, message: &str) -> usize {
    let mut h = *req;
    h.version = VERSION;
    h.status = status;
    let mut w = Writer::body(buf);
    let room = w.room().saturating_sub(4);
    let msg = &message.as_bytes()[..message.len().min(room).min(4096)];
    w.value(msg);
    w.finish(h).unwrap_or(0)
}

/// The message text of an error reply.
pub fn error_message(body: &[u8]) -> String {
    Reader(body)
        .value()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: Request<'_>) {
        let mut buf = vec![0u8; 4096];
        let h = Header::request(req.op(), 42, [1; 16], [2; 16], b"peer-name")
            .with_map_version(7)
            .with_epoch(1 << 60)
            .with_handles(u64::MAX - 1, 1 << 33);
        let n = encode_request(&mut buf, h, &req).unwrap();
        let got = Header::read(&buf[..n]).unwrap();
        assert_eq!(got.tag, 42);
        assert_eq!((got.map_version, got.epoch), (7, 1 << 60));
        assert_eq!((got.handle, got.cont_handle), (u64::MAX - 1, 1 << 33));
        // An error reply keeps the header's fields; a target puts its own version in.
        let mut err = vec![0u8; 512];
        let k = encode_error(&mut err, &got.with_map_version(9), der::STALE, "stale");
        let e = Header::read(&err[..k]).unwrap();
        assert_eq!((e.status, e.map_version, e.tag), (der::STALE, 9, 42));
        assert_eq!(got.reply_addr(), b"peer-name");
        assert_eq!(got.pool, [1; 16]);
        let body = got.body(&buf[..n]).unwrap();
        assert_eq!(Request::decode(got.op, body).unwrap(), req);
        assert_eq!(req.encoded_len(), n, "{req:?}");
    }

    #[test]
    fn every_request_round_trips() {
        round_trip(Request::Ping);
        round_trip(Request::Update {
            oid: u128::MAX - 3,
            dkey: b"d",
            akey: b"",
            value: &[7; 300],
        });
        round_trip(Request::Swap {
            oid: 5,
            dkey: b"meta",
            akey: b"cur",
            value: &[1; 24],
        });
        round_trip(Request::Fetch {
            oid: 9,
            dkey: b"dk",
            akey: b"ak",
        });
        round_trip(Request::WriteExtent {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            offset: 1 << 40,
            data: b"xyz",
        });
        round_trip(Request::ReadExtent {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            offset: 5,
            len: 99,
        });
        for what in [
            PunchWhat::Object,
            PunchWhat::Dkey(b"d"),
            PunchWhat::Akey(b"d", b"a"),
        ] {
            round_trip(Request::Punch { oid: 3, what });
        }
        round_trip(Request::ListDkeys {
            oid: 3,
            after: b"k",
        });
        round_trip(Request::ListAkeys { oid: 3, dkey: b"k" });
        round_trip(Request::ListOids {
            after: 77,
            from_start: false,
        });
        round_trip(Request::ContCreate {
            label: b"c1",
            uuid: [9; 16],
        });
        round_trip(Request::ContList);
        round_trip(Request::ContQuery { id: b"c1" });
        round_trip(Request::ContDestroy { id: b"c1" });
        round_trip(Request::ContPunch);
        round_trip(Request::ContRegister);
        round_trip(Request::Reclaim { oid: 1 << 100 });
        round_trip(Request::AkeySize {
            oid: 7,
            dkey: b"d",
            akey: b"a",
        });
        round_trip(Request::ContSetProps {
            id: b"c1",
            props: b"rd_fac:1;rd_lvl:node",
        });
        round_trip(Request::ContGetProps { id: b"c1" });
        let bulk = Bulk {
            key: 0xdead,
            offset: 1 << 20,
            len: 65536,
        };
        round_trip(Request::UpdateBulk {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            bulk,
        });
        round_trip(Request::FetchBulk {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            bulk,
        });
        round_trip(Request::WriteExtentBulk {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            offset: 9,
            bulk,
        });
        round_trip(Request::ReadExtentBulk {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            offset: 9,
            bulk,
        });
    }

    #[test]
    fn bad_messages_are_refused_not_misread() {
        assert_eq!(Header::read(&[0; 10]), Err(WireError::Short(10)));
        assert!(matches!(
            Header::read(&[0xff; HEADER_LEN]),
            Err(WireError::Magic(_))
        ));
        assert_eq!(Request::decode(999, &[]), Err(WireError::Op(999)));
        // A truncated update body.
        assert_eq!(
            Request::decode(Op::Update as u16, &[1, 2, 3]),
            Err(WireError::Body)
        );
        // A key longer than allowed.
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&5000u16.to_le_bytes());
        assert_eq!(
            Request::decode(Op::Fetch as u16, &body),
            Err(WireError::KeyTooLong(5000))
        );
        // A body that does not fit the buffer is an error, not a short message.
        let mut small = vec![0u8; HEADER_LEN + 8];
        let h = Header::request(Op::Update, 1, [0; 16], [0; 16], b"");
        let req = Request::Update {
            oid: 1,
            dkey: b"d",
            akey: b"a",
            value: &[0; 64],
        };
        assert!(matches!(
            encode_request(&mut small, h, &req),
            Err(WireError::Overflow(_))
        ));
    }

    #[test]
    fn uuids_round_trip_through_text() {
        let u = [0xab; 16];
        let t = uuid_text(&u);
        assert_eq!(t, "abababab-abab-abab-abab-abababababab");
        assert_eq!(parse_uuid(&t), Some(u));
        assert_eq!(parse_uuid(&t.to_uppercase()), Some(u));
        assert_eq!(parse_uuid("abababab-abab-abab-abab-ababababab"), None);
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }

    #[test]
    fn error_replies_carry_status_and_text() {
        let mut buf = vec![0u8; 512];
        let req = Header::request(Op::Fetch, 5, [0; 16], [0; 16], b"x");
        let n = encode_error(&mut buf, &req, der::CSUM, "checksum mismatch");
        let h = Header::read(&buf[..n]).unwrap();
        assert_eq!((h.status, h.tag), (der::CSUM, 5));
        assert_eq!(
            error_message(h.body(&buf[..n]).unwrap()),
            "checksum mismatch"
        );
    }
}
