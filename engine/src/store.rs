//! The target store (VOS-like): what one target keeps for one pool.
//!
//! Model: container (UUID) → object (128-bit id) → dkey → akey → a single value or array
//! extents, every update stamped with an epoch; fetch returns the latest at or below an epoch;
//! object, dkey and akey punches hide what came before them; dkeys and akeys can be listed.
//! Every value carries a CRC32 checksum, verified on fetch: a corrupted value is reported, never
//! returned.
//!
//! Durability: every change is one record appended to a redo log on the SCM part (a libpmem
//! file). A record is `magic, length, crc, body`; an update is acknowledged only after its
//! record (and, for a large value, the value on the bdev part first) is persisted. Recovery
//! reads records until the first one that is incomplete or fails its CRC, rebuilds the index
//! from them, and zeroes the torn tail so it can never be mistaken for data. Values larger than
//! [`INLINE_MAX`] live on the bdev part; the log record holds their place and checksum.
//!
//! The store is generic over its media ([`Media`]) so tests can run it on a simulated device
//! that forgets unpersisted writes and tears them at a crash ([`SimMedia`]), the way
//! TigerBeetle tests its storage.

use std::collections::BTreeMap;
use std::io;

/// Values up to this size live in the log on SCM; larger ones on the bdev part.
pub const INLINE_MAX: usize = 4096;
/// The largest dkey or akey kept (DAOS's clients write keys of 1 MiB).
pub const KEY_LIMIT: usize = 1 << 20;
/// The largest log record body: two keys at their limit and an inline value.
const RECORD_MAX: usize = 2 * KEY_LIMIT + INLINE_MAX + 256;
/// The largest extent read in one call (a target reply's room).
pub use daos_wire::READ_MAX;
/// Alignment of values on the bdev part (O_DIRECT-friendly).
pub const BDEV_ALIGN: u64 = 4096;
/// Record magic; each log generation XORs its number in, so records a compaction left behind
/// in the other half are never taken for current ones.
const MAGIC: u32 = 0xDA05_1064;
const HEADER: usize = 12;
/// The SCM part starts with a header page: two slots (written alternately) naming the log half
/// in use and its generation. The rest is two log halves.
pub const SCM_HEADER: u64 = 4096;
const SLOT_MAGIC: u32 = 0xDA05_4844;
const SLOT_LEN: usize = 32;

/// Byte storage with explicit durability: what the store is written on.
pub trait Media {
    /// Size in bytes.
    fn capacity(&self) -> u64;
    /// Hands `len` bytes at `offset` to `f` without copying them out where the media can (a
    /// mapping, an I/O buffer); by default through a copy.
    fn read_with<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        let mut v = vec![0u8; len];
        self.read(offset, &mut v)?;
        Ok(f(&v))
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes `[offset, offset+len)` durable.
    fn persist(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

impl Media for daos_hw::pmemfile::PmemFile {
    fn capacity(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_with<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        let s = self
            .as_slice()
            .get(offset as usize..offset as usize + len)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond the SCM file")
            })?;
        Ok(f(s))
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = self
            .as_slice()
            .get(offset as usize..offset as usize + buf.len())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond the SCM file")
            })?;
        buf.copy_from_slice(s);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let d = self
            .as_mut_slice()
            .get_mut(offset as usize..offset as usize + data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::WriteZero, "write beyond the SCM file"))?;
        d.copy_from_slice(data);
        Ok(())
    }
    fn persist(&mut self, offset: u64, len: u64) -> io::Result<()> {
        daos_hw::pmemfile::PmemFile::persist(self, offset as usize, len as usize)
    }
}

/// What an akey holds at one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Single(Loc),
    /// Array bytes at `offset`, written as records of `rsize` bytes (0: not said, bytes).
    Extent {
        offset: u64,
        loc: Loc,
        rsize: u32,
    },
    Punch,
}

/// An extent as [`Store::visible_extents`] layers them: epoch, tie rank, start, end, and
/// whether it is a punched range.
type Layer = (u64, (u8, u32, u32), u64, u64, bool);

/// Where a value's bytes are, and their checksum (what the index keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// In the log on SCM, at `offset` (the index keeps only the place, and a fetch reads the
    /// bytes from SCM, so damage there is seen by the checksum).
    Scm {
        offset: u64,
        len: u32,
        crc: u32,
    },
    Bdev {
        offset: u64,
        len: u32,
        crc: u32,
    },
    /// A punched range of an array (DAOS's array punch, a file's truncate): it reads as
    /// zeros and hides what was written under it before.
    Hole {
        len: u32,
    },
}

impl Loc {
    /// Offset, length and checksum, wherever the value lies.
    fn parts(&self) -> (u64, u32, u32) {
        match *self {
            Loc::Scm { offset, len, crc } | Loc::Bdev { offset, len, crc } => (offset, len, crc),
            Loc::Hole { len } => (0, len, 0),
        }
    }
}

/// A value as a log record carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RecLoc<'a> {
    Inline(&'a [u8], u32),
    Bdev { offset: u64, len: u32, crc: u32 },
    Hole { len: u32 },
}

/// How two changes of an akey at the same epoch are ordered, the same on every replica: a
/// punch first, then values by checksum and length (their content, not their arrival).
fn tie_rank(v: &Value) -> (u8, u32, u32) {
    match v {
        Value::Punch => (0, 0, 0),
        Value::Single(loc) | Value::Extent { loc, .. } => {
            let (_, len, crc) = loc.parts();
            (1, crc, len)
        }
    }
}

/// Versions of a single value kept per akey; older ones are aggregated away (reads at their
/// epochs see nothing), which bounds the index and keeps updates from allocating.
pub const VERSIONS_KEPT: usize = 2;

/// Object id.
pub type Oid = u128;

/// The full key of an akey.
#[derive(Clone, Copy, Debug)]
pub struct AkeyRef<'a> {
    pub cont: Cont,
    pub oid: Oid,
    pub dkey: &'a [u8],
    pub akey: &'a [u8],
}
/// Container id.
pub type Cont = u128;

type AkeyHistory = Vec<(u64, Value)>;

/// A dkey: its punch epochs and its akeys.
type DkeyEntry = (Vec<u64>, BTreeMap<Vec<u8>, AkeyHistory>);
/// An object: its punch epochs and its dkeys.
type ObjectEntry = (Vec<u64>, BTreeMap<Vec<u8>, DkeyEntry>);

#[derive(Default)]
struct Index {
    objects: BTreeMap<(Cont, Oid), ObjectEntry>,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store media: {0}")]
    Io(#[from] io::Error),
    #[error("the SCM log is full")]
    LogFull,
    #[error("the bdev part is full")]
    BdevFull,
    #[error(
        "checksum mismatch: the stored value is corrupted (expected {expected:08x}, found {found:08x})"
    )]
    Checksum { expected: u32, found: u32 },
    #[error("record too large")]
    TooLarge,
    #[error("container 0 is reserved for the store's own tables")]
    ReservedContainer,
    #[error("container {0} does not exist in this pool (create it, or it was destroyed)")]
    NoContainer(String),
    #[error(
        "extent at offset {offset} of {len} bytes ends beyond the largest array offset (2^64 - 1)"
    )]
    Overflow { offset: u64, len: u64 },
    #[error("a read of {0} bytes exceeds the largest read of {READ_MAX} bytes; read in parts")]
    ReadTooLarge(usize),
    #[error(
        "the SCM part ({0} bytes) is too small for the store (needs at least {min} bytes)",
        min = SCM_HEADER + 2 * 4096
    )]
    TooSmall(u64),
    #[error(
        "the SCM part holds a log in an older format without a header; recreate the pool (destroy and create) with this release"
    )]
    OldFormat,
    /// A client's change at a chosen epoch that is not newer than what the key holds: taken
    /// as it is, it would be ordered before a change already acknowledged (DAOS's
    /// `DER_TX_RESTART`: choose an epoch above `newest` and send it again).
    #[error(
        "a newer change of this key exists (epoch {newest} is not below the request's {epoch}); send it again at a later epoch"
    )]
    Conflict { newest: u64, epoch: u64 },
}

/// What a client's change at a chosen epoch is checked as ([`Store::check_order`]).
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    Single(&'a [u8]),
    Extent { offset: u64, data: &'a [u8] },
    Punch,
}

/// How a client's change at a chosen epoch stands against what the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Newer than everything it touches: apply it.
    Apply,
    /// The same change at the same epoch is already stored (a resend): answer as applied.
    Duplicate,
}

/// The store of one target in one pool.
pub struct Store<S: Media, B: Media> {
    scm: S,
    bdev: B,
    /// Log generation and the half it is written in.
    generation: u64,
    half: u8,
    /// Absolute offset of the next record.
    tail: u64,
    bdev_tail: u64,
    /// Free bdev ranges below `bdev_tail` (offset, length), found when the log is loaded.
    bdev_free: Vec<(u64, u64)>,
    /// Damaged records skipped by the last load.
    damaged: u64,
    /// The last compaction could not make room for an update.
    stuck: bool,
    epoch: u64,
    index: Index,
    /// The record being appended (reused: no allocation once grown).
    record: Vec<u8>,
    /// Containers this target serves ([`Store::register_container`]), kept in the log as
    /// dkeys of [`CONTAINERS`] and rebuilt from it at load.
    containers: std::collections::HashSet<Cont>,
}

/// Where a store records the containers it serves: (container 0, object 1), a dkey each.
/// Container 0 is reserved for such tables.
const CONTAINERS: (Cont, Oid) = (0, 1);
const LIVE: &[u8] = b"live";

/// The end of an extent of `len` bytes at `offset`, refused when it passes 2^64 - 1.
fn extent_end(offset: u64, len: usize) -> Result<u64, StoreError> {
    offset.checked_add(len as u64).ok_or(StoreError::Overflow {
        offset,
        len: len as u64,
    })
}

/// Replaces `buf` with the whole log record of `rec`: magic, body length, body CRC, body.
fn frame(buf: &mut Vec<u8>, rec: &Rec<'_>, magic: u32) {
    buf.clear();
    buf.extend_from_slice(&[0u8; HEADER]);
    rec.encode(buf);
    let body_len = (buf.len() - HEADER) as u32;
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[0..4].copy_from_slice(&magic.to_le_bytes());
    buf[4..8].copy_from_slice(&body_len.to_le_bytes());
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes a record for a value of `len` bytes takes in the log (an upper bound).
fn record_len(dkey: &[u8], akey: &[u8], len: usize) -> u64 {
    let value = if len <= INLINE_MAX { len } else { 20 };
    (HEADER + 80 + dkey.len() + akey.len() + value) as u64
}

/// Bdev bytes a value of `len` bytes takes.
fn bdev_span(len: usize) -> u64 {
    if len <= INLINE_MAX {
        0
    } else {
        (len as u64).div_ceil(BDEV_ALIGN) * BDEV_ALIGN
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // `out` is the store's reused record buffer: no allocation once it has grown.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn u128(&mut self) -> Option<u128> {
        self.take(16)
            .map(|b| u128::from_le_bytes(b.try_into().unwrap_or([0; 16])))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// One log record's body, borrowing its keys and value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rec<'a> {
    epoch: u64,
    cont: Cont,
    oid: Oid,
    /// 0 object punch, 1 dkey punch, 2 akey punch, 3 single, 4 extent, 5 reclaim.
    kind: u8,
    dkey: &'a [u8],
    akey: &'a [u8],
    offset: u64,
    /// An extent's record size (0 or 1: bytes); logged as kind 7 with it after the offset.
    rsize: u32,
    loc: Option<RecLoc<'a>>,
}

/// How an extent with a record size above one byte is logged.
const KIND_SIZED_EXTENT: u8 = 7;

impl<'a> Rec<'a> {
    /// Appends the body to `b`.
    fn encode(&self, b: &mut Vec<u8>) {
        let sized = self.sized();
        b.push(if sized { KIND_SIZED_EXTENT } else { self.kind });
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.cont.to_le_bytes());
        b.extend_from_slice(&self.oid.to_le_bytes());
        put_bytes(b, self.dkey);
        put_bytes(b, self.akey);
        b.extend_from_slice(&self.offset.to_le_bytes());
        if sized {
            b.extend_from_slice(&self.rsize.to_le_bytes());
        }
        match self.loc {
            None => b.push(0),
            Some(RecLoc::Inline(v, crc)) => {
                b.push(1);
                b.extend_from_slice(&crc.to_le_bytes());
                put_bytes(b, v);
            }
            Some(RecLoc::Hole { len }) => {
                b.push(3);
                b.extend_from_slice(&len.to_le_bytes());
            }
            Some(RecLoc::Bdev { offset, len, crc }) => {
                b.push(2);
                b.extend_from_slice(&crc.to_le_bytes());
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
            }
        }
    }

    /// Whether the record carries a record size (logged as [`KIND_SIZED_EXTENT`]).
    fn sized(&self) -> bool {
        self.kind == 4 && self.rsize > 1
    }

    fn decode(body: &'a [u8]) -> Option<Rec<'a>> {
        let mut r = Reader(body);
        let mut kind = r.u8()?;
        let epoch = r.u64()?;
        let cont = r.u128()?;
        let oid = r.u128()?;
        let dkey = r.bytes()?;
        let akey = r.bytes()?;
        let offset = r.u64()?;
        let mut rsize = 0;
        if kind == KIND_SIZED_EXTENT {
            kind = 4;
            rsize = r.u32()?;
        }
        let loc = match r.u8()? {
            0 => None,
            1 => {
                let crc = r.u32()?;
                Some(RecLoc::Inline(r.bytes()?, crc))
            }
            3 => Some(RecLoc::Hole { len: r.u32()? }),
            2 => {
                let crc = r.u32()?;
                let off = r.u64()?;
                let len = r.u32()?;
                Some(RecLoc::Bdev {
                    offset: off,
                    len,
                    crc,
                })
            }
            _ => return None,
        };
        (kind <= 5).then_some(Rec {
            epoch,
            cont,
            oid,
            kind,
            dkey,
            akey,
            offset,
            rsize,
            loc,
        })
    }

    /// Where the index finds this record's value once the record is at `at` in the log.
    fn index_loc(&self, at: u64) -> Option<Loc> {
        match self.loc? {
            // The value is the last field of the body (see `encode`).
            RecLoc::Inline(v, crc) => Some(Loc::Scm {
                offset: at
                    + (HEADER
                        + 66
                        + self.dkey.len()
                        + self.akey.len()
                        + if self.sized() { 4 } else { 0 }) as u64,
                len: v.len() as u32,
                crc,
            }),
            RecLoc::Bdev { offset, len, crc } => Some(Loc::Bdev { offset, len, crc }),
            RecLoc::Hole { len } => Some(Loc::Hole { len }),
        }
    }
}

impl<S: Media, B: Media> Store<S, B> {
    /// Opens a store: reads the header, replays the log half in use, drops and zeroes a torn
    /// tail.
    pub fn open(scm: S, bdev: B) -> Result<Self, StoreError> {
        let cap = scm.capacity();
        if cap < SCM_HEADER + 2 * 4096 {
            return Err(StoreError::TooSmall(cap));
        }
        let mut st = Store {
            scm,
            bdev,
            generation: 0,
            half: 0,
            tail: SCM_HEADER,
            bdev_tail: 0,
            bdev_free: Vec::new(),
            damaged: 0,
            stuck: false,
            epoch: 0,
            index: Index::default(),
            record: Vec::with_capacity(HEADER + INLINE_MAX + 2 * 1024 + 128),
            containers: std::collections::HashSet::new(),
        };
        st.load()?;
        Ok(st)
    }

    fn half_len(&self) -> u64 {
        (self.scm.capacity() - SCM_HEADER) / 2 / 8 * 8
    }

    fn half_start(&self, half: u8) -> u64 {
        SCM_HEADER + u64::from(half) * self.half_len()
    }

    fn magic(&self) -> u32 {
        MAGIC ^ (self.generation as u32)
    }

    /// The newest valid header slot: (generation, half, epoch); `None` for a fresh store.
    fn read_header(&self) -> Result<Option<(u64, u8, u64)>, StoreError> {
        let mut page = [0u8; 2 * SLOT_LEN];
        self.scm.read(0, &mut page)?;
        let mut best: Option<(u64, u8, u64)> = None;
        for slot in page.chunks(SLOT_LEN) {
            let magic = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
            let crc = u32::from_le_bytes([slot[24], slot[25], slot[26], slot[27]]);
            if magic != SLOT_MAGIC || crc32fast::hash(&slot[..24]) != crc {
                continue;
            }
            let half = slot[4];
            let generation = u64::from_le_bytes(slot[8..16].try_into().unwrap_or_default());
            let epoch = u64::from_le_bytes(slot[16..24].try_into().unwrap_or_default());
            if half <= 1 && best.is_none_or(|b| generation > b.0) {
                best = Some((generation, half, epoch));
            }
        }
        if best.is_none() && u32::from_le_bytes([page[0], page[1], page[2], page[3]]) == MAGIC {
            return Err(StoreError::OldFormat);
        }
        Ok(best)
    }

    /// Writes the header slot of `generation` and makes it durable: the switch to a new half.
    fn write_header(&mut self, generation: u64, half: u8, epoch: u64) -> Result<(), StoreError> {
        let mut slot = [0u8; SLOT_LEN];
        slot[0..4].copy_from_slice(&SLOT_MAGIC.to_le_bytes());
        slot[4] = half;
        slot[8..16].copy_from_slice(&generation.to_le_bytes());
        slot[16..24].copy_from_slice(&epoch.to_le_bytes());
        let crc = crc32fast::hash(&slot[..24]);
        slot[24..28].copy_from_slice(&crc.to_le_bytes());
        let at = (generation % 2) * SLOT_LEN as u64;
        self.scm.write(at, &slot)?;
        self.scm.persist(at, SLOT_LEN as u64)?;
        Ok(())
    }

    /// Rebuilds the index from the log half the header names, and the bdev free space from
    /// the values the index still references.
    fn load(&mut self) -> Result<(), StoreError> {
        let (generation, half, epoch) = self.read_header()?.unwrap_or((0, 0, 0));
        self.generation = generation;
        self.half = half;
        self.epoch = epoch;
        self.index = Index::default();
        self.damaged = 0;
        let start = self.half_start(half);
        let end = start + self.half_len();
        self.tail = start;
        let magic = self.magic();
        while let Some((body, crc_ok)) = self.read_record(self.tail, end, magic)? {
            let blen = body.len() as u64;
            let rec = if crc_ok { Rec::decode(&body) } else { None };
            let Some(rec) = rec else {
                // A torn append is always the last record. A bad record followed by a good one
                // is damage in the middle of the log: skip it (its update is lost) rather than
                // drop every record after it.
                let next = self.tail + HEADER as u64 + blen;
                if self.record_ok(next, end, magic)? {
                    self.damaged += 1;
                    self.tail = next;
                    continue;
                }
                break;
            };
            self.epoch = self.epoch.max(rec.epoch);
            let at = self.tail;
            self.apply(rec, at);
            self.tail += HEADER as u64 + blen;
        }
        // Zero what a torn append may have left, so a later scan stops exactly here.
        let zero_len = (end - self.tail).min(2 * RECORD_MAX as u64);
        let mut rest = vec![0u8; zero_len as usize];
        self.scm.read(self.tail, &mut rest)?;
        if rest.iter().any(|b| *b != 0) {
            rest.fill(0);
            self.scm.write(self.tail, &rest)?;
            self.scm.persist(self.tail, zero_len)?;
        }
        // Bdev space: what live values occupy; the gaps between them are free.
        let mut used: Vec<(u64, u64)> = Vec::new();
        for obj in self.index.objects.values() {
            for dk in obj.1.values() {
                for h in dk.1.values() {
                    for (_, v) in h {
                        if let Value::Single(Loc::Bdev { offset, len, .. })
                        | Value::Extent {
                            loc: Loc::Bdev { offset, len, .. },
                            ..
                        } = v
                        {
                            used.push((*offset, u64::from(*len).div_ceil(BDEV_ALIGN) * BDEV_ALIGN));
                        }
                    }
                }
            }
        }
        used.sort_unstable();
        self.bdev_free.clear();
        let mut cursor = 0;
        for (off, len) in used {
            if off > cursor {
                self.bdev_free.push((cursor, off - cursor));
            }
            cursor = cursor.max(off + len);
        }
        self.bdev_tail = cursor;
        self.containers = self
            .list_dkeys(CONTAINERS.0, CONTAINERS.1)
            .iter()
            .filter_map(|d| d.as_slice().try_into().ok().map(u128::from_le_bytes))
            .collect();
        Ok(())
    }

    /// Records that this target serves container `cont` (idempotent).
    pub fn register_container(&mut self, cont: Cont) -> Result<(), StoreError> {
        if cont == 0 || self.containers.contains(&cont) {
            return if cont == 0 {
                Err(StoreError::ReservedContainer)
            } else {
                Ok(())
            };
        }
        self.update(CONTAINERS.0, CONTAINERS.1, &cont.to_le_bytes(), LIVE, b"1")?;
        self.containers.insert(cont);
        Ok(())
    }

    /// Whether this target serves container `cont` (no allocation).
    pub fn has_container(&self, cont: Cont) -> bool {
        self.containers.contains(&cont)
    }

    /// The record of this generation at `at` (before `end`): its body and whether its
    /// checksum holds; `None` where no record header is (the end of the log, or a torn one).
    fn read_record(
        &self,
        at: u64,
        end: u64,
        magic: u32,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        if at + HEADER as u64 > end {
            return Ok(None);
        }
        let mut head = [0u8; HEADER];
        self.scm.read(at, &mut head)?;
        let m = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let blen = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;
        let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if m != magic || blen == 0 || blen > RECORD_MAX as u64 || at + HEADER as u64 + blen > end {
            return Ok(None);
        }
        let mut body = vec![0u8; blen as usize];
        self.scm.read(at + HEADER as u64, &mut body)?;
        let ok = crc32fast::hash(&body) == crc;
        Ok(Some((body, ok)))
    }

    /// Whether a whole, checksummed record of this generation starts at `at`.
    fn record_ok(&self, at: u64, end: u64, magic: u32) -> Result<bool, StoreError> {
        Ok(matches!(self.read_record(at, end, magic)?, Some((_, true))))
    }

    /// Space in use: (SCM bytes, bdev bytes): the log written in the half in use (the log
    /// takes up to half the SCM part before compaction must free room) and what live values
    /// occupy on the bdev.
    pub fn space_used(&self) -> (u64, u64) {
        let scm = self.log_used();
        let free: u64 = self.bdev_free.iter().map(|(_, l)| *l).sum();
        (scm, self.bdev_tail.saturating_sub(free))
    }

    /// Damaged records skipped when the log was loaded (their updates are lost).
    pub fn damaged_records(&self) -> u64 {
        self.damaged
    }

    /// Bytes of SCM log free in the half in use.
    fn log_room(&self) -> u64 {
        self.half_start(self.half) + self.half_len() - self.tail
    }

    /// Whether `len` bytes of bdev can be had now.
    fn bdev_room(&self, span: u64) -> bool {
        self.bdev_tail + span <= self.bdev.capacity()
            || self.bdev_free.iter().any(|(_, l)| *l >= span)
    }

    /// Makes room for a record of `record` bytes and a bdev value of `span` bytes by
    /// compacting the log when it must. Fails only when even the live data leaves no room.
    ///
    /// Updates also keep [`Self::punch_reserve`] bytes of log free, so that a full pool can
    /// always take the punches that free it. After a compaction that could not make room, the
    /// next ones are skipped until a punch may have freed something.
    fn ensure_room(&mut self, record: u64, span: u64, update: bool) -> Result<(), StoreError> {
        let need = record + if update { self.punch_reserve() } else { 0 };
        if self.log_room() >= need && (span == 0 || self.bdev_room(span)) {
            return Ok(());
        }
        if !(self.stuck && update) {
            self.compact()?;
        }
        if self.log_room() < need {
            self.stuck = true;
            return Err(StoreError::LogFull);
        }
        if span > 0 && !self.bdev_room(span) {
            self.stuck = true;
            return Err(StoreError::BdevFull);
        }
        Ok(())
    }

    /// Log bytes updates leave free for punches: 1/64 of a half, at least 1 KiB.
    pub fn punch_reserve(&self) -> u64 {
        (self.half_len() / 64).max(1024)
    }

    /// Compaction: writes what the index still holds (values newer than the punches that
    /// cover them, the kept versions) as fresh records into the other log half, makes them
    /// durable, switches the header to that half, and reloads. A crash before the switch
    /// leaves the old half in use; after it, the new one. Bdev values no longer referenced
    /// become free.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let generation = self.generation + 1;
        let half = 1 - self.half;
        let start = self.half_start(half);
        let end = start + self.half_len();
        let magic = MAGIC ^ (generation as u32);
        let mut at = start;
        let mut buf: Vec<u8> = Vec::new();
        let mut value: Vec<u8> = Vec::new();
        let objects = std::mem::take(&mut self.index.objects);
        let result = (|| -> Result<(), StoreError> {
            for ((cont, oid), (opunch, dkeys)) in &objects {
                let ofloor = opunch.iter().copied().max().unwrap_or(0);
                for (dkey, (dpunch, akeys)) in dkeys {
                    let floor = ofloor.max(dpunch.iter().copied().max().unwrap_or(0));
                    for (akey, hist) in akeys {
                        // What the newest akey punch hides goes, and the punch with it.
                        let apunch = hist
                            .iter()
                            .filter(|(_, v)| matches!(v, Value::Punch))
                            .map(|(e, _)| *e)
                            .max()
                            .unwrap_or(0);
                        let floor = floor.max(apunch);
                        for (epoch, v) in hist.iter().filter(|(e, _)| *e > floor) {
                            let (kind, offset, loc, rsize) = match *v {
                                Value::Punch => (2, 0, None, 0),
                                Value::Single(l) => (3, 0, Some(l), 0),
                                Value::Extent { offset, loc, rsize } => {
                                    (4, offset, Some(loc), rsize)
                                }
                            };
                            let loc = match loc {
                                None => None,
                                Some(Loc::Bdev { offset, len, crc }) => {
                                    Some(RecLoc::Bdev { offset, len, crc })
                                }
                                Some(Loc::Hole { len }) => Some(RecLoc::Hole { len }),
                                Some(l @ Loc::Scm { crc, .. }) => {
                                    // A damaged value is carried as it is, so its checksum
                                    // still reports it.
                                    let (o, n) = match l {
                                        Loc::Scm { offset, len, .. } => (offset, len),
                                        Loc::Bdev { .. } | Loc::Hole { .. } => (0, 0),
                                    };
                                    value.resize(n as usize, 0);
                                    self.scm.read(o, &mut value)?;
                                    Some(RecLoc::Inline(&value, crc))
                                }
                            };
                            let rec = Rec {
                                epoch: *epoch,
                                cont: *cont,
                                oid: *oid,
                                kind,
                                dkey,
                                akey,
                                offset,
                                rsize,
                                loc,
                            };
                            frame(&mut buf, &rec, magic);
                            if at + buf.len() as u64 + HEADER as u64 > end {
                                return Err(StoreError::LogFull);
                            }
                            self.scm.write(at, &buf)?;
                            at += buf.len() as u64;
                        }
                    }
                }
            }
            // An end marker, then everything durable before the switch.
            self.scm.write(at, &[0u8; HEADER])?;
            self.scm.persist(start, at + HEADER as u64 - start)?;
            Ok(())
        })();
        self.index.objects = objects;
        result?;
        self.write_header(generation, half, self.epoch)?;
        self.load()
    }

    /// Indexes a record that starts at `at` in the log. Only a new object, dkey or akey
    /// allocates (its entry); versions of a value are bounded by [`VERSIONS_KEPT`].
    fn apply(&mut self, rec: Rec<'_>, at: u64) {
        let loc = rec.index_loc(at);
        let objects = &mut self.index.objects;
        if rec.kind == 5 {
            // Reclaimed: every earlier record of the object is forgotten (compaction then
            // drops them); later ones (a new copy) count again.
            objects.remove(&(rec.cont, rec.oid));
            return;
        }
        let obj = match objects.get_mut(&(rec.cont, rec.oid)) {
            Some(o) => o,
            None => objects.entry((rec.cont, rec.oid)).or_default(),
        };
        if rec.kind == 0 {
            obj.0.push(rec.epoch);
            return;
        }

        let dk = match obj.1.get_mut(rec.dkey) {
            Some(d) => d,
            None => obj.1.entry(rec.dkey.to_vec()).or_default(),
        };
        if rec.kind == 1 {
            dk.0.push(rec.epoch);
            return;
        }
        let hist = match dk.1.get_mut(rec.akey) {
            Some(h) => h,
            None => dk.1.entry(rec.akey.to_vec()).or_default(),
        };
        let v = match (rec.kind, loc) {
            (2, _) | (_, None) => Value::Punch,
            (3, Some(loc)) => Value::Single(loc),
            (_, Some(loc)) => Value::Extent {
                offset: rec.offset,
                loc,
                rsize: rec.rsize,
            },
        };
        if !matches!(v, Value::Extent { .. }) {
            // Aggregation: drop the oldest single value or punch beyond VERSIONS_KEPT
            // (extents stay: older ones may still show where newer ones do not reach).
            let versions = hist
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Extent { .. }))
                .count();
            // Updates may arrive out of epoch order (clients choose epochs): the oldest by
            // epoch goes, and a value older than every kept one is not kept at all.
            let oldest = hist
                .iter()
                .enumerate()
                .filter(|(_, (_, v))| !matches!(v, Value::Extent { .. }))
                .min_by_key(|(_, (e, v))| (*e, tie_rank(v)))
                .map(|(i, (e, v))| (i, *e, tie_rank(v)));
            if versions >= VERSIONS_KEPT
                && let Some((i, e, rank)) = oldest
            {
                if (rec.epoch, tie_rank(&v)) < (e, rank) {
                    return;
                }
                hist.remove(i);
            }
        }
        if hist.capacity() == 0 {
            // Most akeys hold one value: room for one, not the four a first push makes.
            hist.reserve_exact(1);
        }
        hist.push((rec.epoch, v));
    }

    fn append(&mut self, rec: Rec<'_>) -> Result<u64, StoreError> {
        let mut buf = std::mem::take(&mut self.record);
        frame(&mut buf, &rec, self.magic());
        let body_len = buf.len() - HEADER;
        let result = (|| {
            if body_len > RECORD_MAX {
                return Err(StoreError::TooLarge);
            }
            let total = buf.len() as u64;
            if total > self.log_room() {
                return Err(StoreError::LogFull);
            }
            self.scm.write(self.tail, &buf)?;
            self.scm.persist(self.tail, total)?;
            let at = self.tail;
            self.tail += total;
            self.apply(rec, at);
            Ok(rec.epoch)
        })();
        self.record = buf;
        result
    }

    fn locate<'d>(&mut self, data: &'d [u8]) -> Result<RecLoc<'d>, StoreError> {
        let crc = crc32fast::hash(data);
        if data.len() <= INLINE_MAX {
            return Ok(RecLoc::Inline(data, crc));
        }
        let len = data.len() as u64;
        let span = len.div_ceil(BDEV_ALIGN) * BDEV_ALIGN;
        // First fit among the ranges compaction freed, else the end.
        let offset = if let Some(i) = self.bdev_free.iter().position(|(_, l)| *l >= span) {
            let (off, l) = self.bdev_free[i];
            if l == span {
                self.bdev_free.remove(i);
            } else {
                self.bdev_free[i] = (off + span, l - span);
            }
            off
        } else if self.bdev_tail + span <= self.bdev.capacity() {
            self.bdev_tail += span;
            self.bdev_tail - span
        } else {
            return Err(StoreError::BdevFull);
        };
        // The value is durable before the record that points to it is written.
        self.bdev.write(offset, data)?;
        self.bdev.persist(offset, len)?;
        Ok(RecLoc::Bdev {
            offset,
            len: data.len() as u32,
            crc,
        })
    }

    /// The epoch of a change this store stamps itself: its hybrid logical clock (the
    /// physical clock, or one more than the newest epoch it holds if that is ahead).
    fn next_epoch(&mut self) -> u64 {
        self.epoch = (self.epoch + 1).max(daos_wire::clock_ns());
        self.epoch
    }

    /// `epoch` if a client chose one (non-zero; the clock follows it), else the next own.
    fn epoch_for(&mut self, epoch: u64) -> u64 {
        if epoch == 0 {
            self.next_epoch()
        } else {
            self.epoch = self.epoch.max(epoch);
            epoch
        }
    }

    /// Checks a client's change of `cont`/`oid` (`dkey`, `akey`: its scope; `None`: the
    /// whole object or dkey, a punch) at the epoch it chose, before it is applied: a change
    /// must be newer than every change it touches (values of the akey, overlapping extents,
    /// punches above it), so that acknowledged changes of a key are ordered by their epochs
    /// whatever the clients' clocks say (DAOS's conflict check: the client restarts at a later
    /// epoch). The same change at the same epoch (a resend) is a [`Order::Duplicate`].
    pub fn check_order(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: Option<&[u8]>,
        akey: Option<&[u8]>,
        change: Change<'_>,
        epoch: u64,
    ) -> Result<Order, StoreError> {
        let Some(obj) = self.index.objects.get(&(cont, oid)) else {
            return Ok(Order::Apply);
        };
        // The newest epoch the change touches, and whether an entry at exactly `epoch` is
        // this very change (compared by checksum and length, computed only then).
        let mut newest = 0u64;
        let mut same = false;
        let crc = std::cell::OnceCell::new();
        let crc_of = || {
            *crc.get_or_init(|| match change {
                Change::Single(d) | Change::Extent { data: d, .. } => (crc32fast::hash(d), d.len()),
                Change::Punch => (0, 0),
            })
        };
        let identical = |v: &Value| match (change, v) {
            (Change::Punch, Value::Punch) => true,
            (Change::Single(_), Value::Single(loc)) => {
                let (_, len, c) = loc.parts();
                crc_of() == (c, len as usize)
            }
            (Change::Extent { offset, .. }, Value::Extent { offset: o, loc, .. }) => {
                let (_, len, c) = loc.parts();
                *o == offset && crc_of() == (c, len as usize)
            }
            _ => false,
        };
        let mut see = |e: u64, identical: &dyn Fn() -> bool| {
            if e > newest {
                newest = e;
                same = false;
            }
            if e == newest && e == epoch && !same && identical() {
                same = true;
            }
        };
        let touches = |v: &Value| match (change, v) {
            (Change::Extent { offset, data }, Value::Extent { offset: o, loc, .. }) => {
                let end = offset.saturating_add(data.len() as u64);
                let eend = o.saturating_add(u64::from(loc.parts().1));
                *o < end && eend > offset
            }
            _ => true,
        };
        let whole = matches!(change, Change::Punch);
        for e in &obj.0 {
            see(*e, &|| whole && dkey.is_none());
        }
        use std::ops::Bound::Included;
        let dkeys = match dkey {
            Some(d) => obj.1.range::<[u8], _>((Included(d), Included(d))),
            None => obj.1.range::<[u8], _>(..),
        };
        for (_, dk) in dkeys {
            for e in &dk.0 {
                see(*e, &|| whole && dkey.is_some() && akey.is_none());
            }
            let akeys = match akey {
                Some(a) => dk.1.range::<[u8], _>((Included(a), Included(a))),
                None => dk.1.range::<[u8], _>(..),
            };
            for (_, h) in akeys {
                for (e, v) in h.iter().filter(|(_, v)| touches(v)) {
                    see(*e, &|| akey.is_some() && identical(v));
                }
            }
        }
        if newest < epoch {
            Ok(Order::Apply)
        } else if newest == epoch && same {
            Ok(Order::Duplicate)
        } else {
            Err(StoreError::Conflict { newest, epoch })
        }
    }

    /// Stores a single value; returns its epoch once it is durable.
    pub fn update(
        &mut self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        value: &[u8],
    ) -> Result<u64, StoreError> {
        self.update_at(
            AkeyRef {
                cont,
                oid,
                dkey,
                akey,
            },
            value,
            0,
        )
    }

    /// Stores a single value at `epoch` (0: the store's next); returns the epoch once the
    /// value is durable. Of two values at one epoch, every replica reads the same one.
    pub fn update_at(
        &mut self,
        key: AkeyRef<'_>,
        value: &[u8],
        epoch: u64,
    ) -> Result<u64, StoreError> {
        self.store_value(key, 3, 0, value, 0, epoch)
    }

    /// Writes array bytes at `offset` of an akey; returns the epoch once durable.
    pub fn write_extent(
        &mut self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        offset: u64,
        data: &[u8],
    ) -> Result<u64, StoreError> {
        self.write_extent_at(
            AkeyRef {
                cont,
                oid,
                dkey,
                akey,
            },
            offset,
            data,
            0,
        )
    }

    /// [`Self::write_extent`] at `epoch` (0: the store's next).
    pub fn write_extent_at(
        &mut self,
        key: AkeyRef<'_>,
        offset: u64,
        data: &[u8],
        epoch: u64,
    ) -> Result<u64, StoreError> {
        extent_end(offset, data.len())?;
        self.store_value(key, 4, offset, data, 0, epoch)
    }

    /// [`Self::write_extent_at`] of records of `rsize` bytes (DAOS's arrays keep their record
    /// size: a fetch of "any size" answers it).
    pub fn write_records_at(
        &mut self,
        key: AkeyRef<'_>,
        offset: u64,
        data: &[u8],
        rsize: u32,
        epoch: u64,
    ) -> Result<u64, StoreError> {
        extent_end(offset, data.len())?;
        self.store_value(key, 4, offset, data, rsize, epoch)
    }

    /// The record size an akey's array was last written with (1 when never said), `None`
    /// when it holds no live extent.
    pub fn array_rsize(&self, key: AkeyRef<'_>, epoch: u64) -> Option<u32> {
        let floor = self.punched_at(key.cont, key.oid, key.dkey, epoch);
        let h = self.history(key.cont, key.oid, key.dkey, key.akey)?;
        let apunch = h
            .iter()
            .filter(|(e, v)| *e <= epoch && matches!(v, Value::Punch))
            .map(|(e, _)| *e)
            .max()
            .unwrap_or(0);
        h.iter()
            .filter(|(e, _)| *e <= epoch && *e > floor.max(apunch))
            .filter_map(|(e, v)| match v {
                Value::Extent { loc, rsize, .. } if !matches!(loc, Loc::Hole { .. }) => {
                    Some((*e, (*rsize).max(1)))
                }
                _ => None,
            })
            .max_by_key(|(e, _)| *e)
            .map(|(_, r)| r)
    }

    /// Punches `len` bytes of an akey's array at `offset` (DAOS's array punch, what a
    /// truncate does): they read as zeros and are no longer written data; returns the epoch
    /// once durable.
    pub fn punch_extent_at(
        &mut self,
        key: AkeyRef<'_>,
        offset: u64,
        len: u32,
        epoch: u64,
    ) -> Result<u64, StoreError> {
        extent_end(offset, len as usize)?;
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        self.ensure_room(record_len(dkey, akey, 0), 0, false)?;
        self.stuck = false;
        let epoch = self.epoch_for(epoch);
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind: 4,
            dkey,
            akey,
            offset,
            rsize: 0,
            loc: Some(RecLoc::Hole { len }),
        })
    }

    /// A single value (`kind` 3) or an extent (4): room, the value on its medium, then the
    /// record; returns the epoch once both are durable.
    fn store_value(
        &mut self,
        key: AkeyRef<'_>,
        kind: u8,
        offset: u64,
        data: &[u8],
        rsize: u32,
        epoch: u64,
    ) -> Result<u64, StoreError> {
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        self.ensure_room(
            record_len(dkey, akey, data.len()),
            bdev_span(data.len()),
            true,
        )?;
        let loc = self.locate(data)?;
        let epoch = self.epoch_for(epoch);
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind,
            dkey,
            akey,
            offset,
            rsize,
            loc: Some(loc),
        })
    }

    /// Punches an object (`dkey` None), a dkey (`akey` None) or an akey.
    pub fn punch(
        &mut self,
        cont: Cont,
        oid: Oid,
        dkey: Option<&[u8]>,
        akey: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        self.punch_at(cont, oid, dkey, akey, 0)
    }

    /// [`Self::punch`] at `epoch` (0: the store's next).
    pub fn punch_at(
        &mut self,
        cont: Cont,
        oid: Oid,
        dkey: Option<&[u8]>,
        akey: Option<&[u8]>,
        epoch: u64,
    ) -> Result<u64, StoreError> {
        let keys = dkey.map_or(0, <[u8]>::len) + akey.map_or(0, <[u8]>::len);
        self.ensure_room((HEADER + 80 + keys) as u64, 0, false)?;
        // What this punch hides can go at the next compaction.
        self.stuck = false;
        let epoch = self.epoch_for(epoch);
        let kind = match (dkey, akey) {
            (None, _) => 0,
            (Some(_), None) => 1,
            (Some(_), Some(_)) => 2,
        };
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind,
            dkey: dkey.unwrap_or_default(),
            akey: akey.unwrap_or_default(),
            offset: 0,
            rsize: 0,
            loc: None,
        })
    }

    /// Forgets this store's copy of an object: every record of it so far, whatever their
    /// epochs (a reclaim once the object's shard lives on another target). Durable like a
    /// punch; returns its epoch, or 0 when the store held nothing of the object.
    pub fn reclaim(&mut self, cont: Cont, oid: Oid) -> Result<u64, StoreError> {
        if !self.index.objects.contains_key(&(cont, oid)) {
            return Ok(0);
        }
        self.ensure_room((HEADER + 80) as u64, 0, false)?;
        // What it held can go at the next compaction.
        self.stuck = false;
        let epoch = self.next_epoch();
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind: 5,
            dkey: &[],
            akey: &[],
            offset: 0,
            rsize: 0,
            loc: None,
        })
    }

    /// Reads a value into `out` (resized; no allocation within its capacity) and verifies
    /// its checksum.
    fn read_loc(&self, loc: &Loc, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let (offset, len, expected, on_scm) = match *loc {
            Loc::Scm { offset, len, crc } => (offset, len, crc, true),
            Loc::Bdev { offset, len, crc } => (offset, len, crc, false),
            Loc::Hole { len } => {
                out.clear();
                out.resize(len as usize, 0);
                return Ok(());
            }
        };
        out.resize(len as usize, 0);
        if on_scm {
            self.scm.read(offset, out)?;
        } else {
            self.bdev.read(offset, out)?;
        }
        let found = crc32fast::hash(out);
        if found != expected {
            return Err(StoreError::Checksum { expected, found });
        }
        Ok(())
    }

    fn bytes(&self, loc: &Loc) -> Result<Vec<u8>, StoreError> {
        let mut v = Vec::new();
        self.read_loc(loc, &mut v)?;
        Ok(v)
    }

    /// The newest punch at or below `epoch` that covers an akey.
    fn punched_at(&self, cont: Cont, oid: Oid, dkey: &[u8], epoch: u64) -> u64 {
        let Some(obj) = self.index.objects.get(&(cont, oid)) else {
            return 0;
        };
        let o = obj
            .0
            .iter()
            .filter(|e| **e <= epoch)
            .max()
            .copied()
            .unwrap_or(0);
        let d = obj.1.get(dkey).map_or(0, |dk| {
            dk.0.iter()
                .filter(|e| **e <= epoch)
                .max()
                .copied()
                .unwrap_or(0)
        });
        o.max(d)
    }

    fn history(&self, cont: Cont, oid: Oid, dkey: &[u8], akey: &[u8]) -> Option<&AkeyHistory> {
        self.index
            .objects
            .get(&(cont, oid))?
            .1
            .get(dkey)?
            .1
            .get(akey)
    }

    /// Where the single value of an akey as of `epoch` is, if there is one, and its epoch.
    fn latest_single_at(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        epoch: u64,
    ) -> Option<(u64, Loc)> {
        let floor = self.punched_at(cont, oid, dkey, epoch);
        let h = self.history(cont, oid, dkey, akey)?;
        let latest = h
            .iter()
            .filter(|(e, v)| {
                *e <= epoch && *e > floor && matches!(v, Value::Single(_) | Value::Punch)
            })
            .max_by_key(|(e, v)| (*e, tie_rank(v)));
        match latest {
            Some((e, Value::Single(loc))) => Some((*e, *loc)),
            _ => None,
        }
    }

    fn latest_single(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        epoch: u64,
    ) -> Option<Loc> {
        self.latest_single_at(cont, oid, dkey, akey, epoch)
            .map(|(_, l)| l)
    }

    /// The epoch of what a fetch of `key` as of `epoch` reads: its single value's, or the
    /// newest extent's among those overlapping `range` (`None`: any); 0 when nothing.
    pub fn value_epoch(&self, key: AkeyRef<'_>, epoch: u64, range: Option<(u64, u64)>) -> u64 {
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        match range {
            None => self
                .latest_single_at(cont, oid, dkey, akey, epoch)
                .map_or(0, |(e, _)| e),
            Some((offset, end)) => {
                let floor = self.punched_at(cont, oid, dkey, epoch);
                self.history(cont, oid, dkey, akey).map_or(0, |h| {
                    h.iter()
                        .filter(|(e, _)| *e <= epoch && *e > floor)
                        .filter(|(_, v)| match v {
                            Value::Extent {
                                offset: eo, loc, ..
                            } => {
                                let eend = eo.saturating_add(u64::from(loc.parts().1));
                                *eo < end && eend > offset
                            }
                            _ => false,
                        })
                        .map(|(e, _)| *e)
                        .max()
                        .unwrap_or(0)
                })
            }
        }
    }

    /// The single value of an akey as of `epoch` (`u64::MAX`: latest).
    pub fn fetch(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        epoch: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.latest_single(cont, oid, dkey, akey, epoch) {
            Some(loc) => self.bytes(&loc).map(Some),
            None => Ok(None),
        }
    }

    /// [`Self::fetch`] without copying: `f` sees the value in the store's reused buffer.
    pub fn fetch_with<R>(
        &mut self,
        key: AkeyRef<'_>,
        epoch: u64,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        let Some(loc) = self.latest_single(cont, oid, dkey, akey, epoch) else {
            return Ok(f(None));
        };
        let (offset, len, expected, on_scm) = match loc {
            Loc::Scm { offset, len, crc } => (offset, len as usize, crc, true),
            Loc::Bdev { offset, len, crc } => (offset, len as usize, crc, false),
            // Single values are never holes.
            Loc::Hole { .. } => return Ok(f(Some(&[]))),
        };
        // Checked and handed over where it lies (SCM mapping, I/O buffer): no copy.
        let check = |data: &[u8]| {
            let found = crc32fast::hash(data);
            if found == expected {
                Ok(f(Some(data)))
            } else {
                Err(StoreError::Checksum { expected, found })
            }
        };
        if on_scm {
            self.scm.read_with(offset, len, check)?
        } else {
            self.bdev.read_with(offset, len, check)?
        }
    }

    /// What `key` holds as of `epoch`: nothing, a single value's size, or where its array
    /// extents end (a rebuild copies that much).
    pub fn akey_size(&self, key: AkeyRef<'_>, epoch: u64) -> daos_wire::reply::AkeyShape {
        use daos_wire::reply::AkeyShape;
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        let Some(h) = self.history(cont, oid, dkey, akey) else {
            return AkeyShape::None;
        };
        let floor = self.punched_at(cont, oid, dkey, epoch);
        let live: Vec<&(u64, Value)> = h
            .iter()
            .filter(|(e, _)| *e <= epoch && *e > floor)
            .collect();
        let punch = live
            .iter()
            .filter(|(_, v)| matches!(v, Value::Punch))
            .map(|(e, _)| *e)
            .max()
            .unwrap_or(0);
        let newest = live
            .iter()
            .filter(|(e, _)| *e > punch)
            .max_by_key(|(e, _)| *e);
        match newest.map(|(_, v)| v) {
            Some(Value::Single(loc)) => AkeyShape::Single(u64::from(loc.parts().1)),
            Some(Value::Extent { .. }) => {
                // Where the written data ends (punched ranges are not data).
                let mut ext = Vec::new();
                self.visible_extents(key, 0, u64::MAX, epoch, &mut ext);
                AkeyShape::Array(ext.last().map_or(0, |e| e.1))
            }
            _ => AkeyShape::None,
        }
    }

    /// `len` array bytes at `offset` as of `epoch`; never-written bytes read as zero.
    pub fn read_extent(
        &self,
        key: AkeyRef<'_>,
        offset: u64,
        len: usize,
        epoch: u64,
    ) -> Result<Vec<u8>, StoreError> {
        if len > READ_MAX {
            return Err(StoreError::ReadTooLarge(len));
        }
        let mut out = vec![0u8; len];
        self.read_extent_into(key, offset, &mut out, epoch)?;
        Ok(out)
    }

    /// [`Self::read_extent`] into `out` (its length is the read's).
    pub fn read_extent_into(
        &self,
        key: AkeyRef<'_>,
        offset: u64,
        out: &mut [u8],
        epoch: u64,
    ) -> Result<(), StoreError> {
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        let end = extent_end(offset, out.len())?;
        out.fill(0);
        let floor = self.punched_at(cont, oid, dkey, epoch);
        let Some(h) = self.history(cont, oid, dkey, akey) else {
            return Ok(());
        };
        let akey_punch = h
            .iter()
            .filter(|(e, v)| *e <= epoch && matches!(v, Value::Punch))
            .map(|(e, _)| *e)
            .max()
            .unwrap_or(0);
        let floor = floor.max(akey_punch);
        // Only the extents that overlap the range are read (and checked): a read costs what
        // it covers, not what the akey holds.
        let mut extents: Vec<(u64, u64, &Loc)> = h
            .iter()
            .filter(|(e, _)| *e <= epoch && *e > floor)
            .filter_map(|(e, v)| match v {
                Value::Extent {
                    offset: eo, loc, ..
                } => {
                    let (_, elen, _) = loc.parts();
                    let eend = eo.saturating_add(u64::from(elen));
                    (*eo < end && eend > offset).then_some((*e, *eo, loc))
                }
                _ => None,
            })
            .collect();
        // Epoch order (ties by content, as on every replica).
        extents.sort_by_key(|(e, _, loc)| (*e, loc.parts().2, loc.parts().1));
        for (_, eo, loc) in extents {
            let data = self.bytes(loc)?;
            let (start, stop) = (
                offset.max(eo),
                end.min(eo.saturating_add(data.len() as u64)),
            );
            if start < stop {
                out[(start - offset) as usize..(stop - offset) as usize]
                    .copy_from_slice(&data[(start - eo) as usize..(stop - eo) as usize]);
            }
        }
        Ok(())
    }

    /// The length of an akey's single value as of `epoch`, without reading it.
    pub fn single_len(&self, key: AkeyRef<'_>, epoch: u64) -> Option<usize> {
        self.latest_single(key.cont, key.oid, key.dkey, key.akey, epoch)
            .map(|loc| loc.parts().1 as usize)
    }

    fn akey_live(&self, h: &AkeyHistory, floor: u64) -> bool {
        let newest = h.iter().filter(|(e, _)| *e > floor).max_by_key(|(e, _)| *e);
        matches!(newest, Some((_, Value::Single(_) | Value::Extent { .. })))
    }

    /// Whether `dkey` of the object has a live akey (DAOS's "the dkey exists").
    pub fn dkey_exists(&self, cont: Cont, oid: Oid, dkey: &[u8]) -> bool {
        let floor = self.punched_at(cont, oid, dkey, u64::MAX);
        self.index
            .objects
            .get(&(cont, oid))
            .and_then(|o| o.1.get(dkey))
            .is_some_and(|dk| dk.1.values().any(|h| self.akey_live(h, floor)))
    }

    /// Whether the akey holds a live value.
    pub fn akey_exists(&self, key: AkeyRef<'_>) -> bool {
        let floor = self.punched_at(key.cont, key.oid, key.dkey, u64::MAX);
        self.history(key.cont, key.oid, key.dkey, key.akey)
            .is_some_and(|h| self.akey_live(h, floor))
    }

    /// Whether the object holds anything live.
    pub fn object_exists(&self, cont: Cont, oid: Oid) -> bool {
        self.index
            .objects
            .get(&(cont, oid))
            .is_some_and(|o| o.1.keys().any(|d| self.dkey_exists(cont, oid, d)))
    }

    /// Hands the object's live dkeys from `from` on, in order (descending with `reverse`),
    /// to `f` until it returns false; nothing is copied.
    pub fn walk_dkeys(
        &self,
        cont: Cont,
        oid: Oid,
        from: std::ops::Bound<&[u8]>,
        reverse: bool,
        mut f: impl FnMut(&[u8]) -> bool,
    ) {
        use std::ops::Bound;
        let Some(obj) = self.index.objects.get(&(cont, oid)) else {
            return;
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = if reverse {
            (Bound::Unbounded, from)
        } else {
            (from, Bound::Unbounded)
        };
        let mut visit = |d: &Vec<u8>| !self.dkey_exists(cont, oid, d) || f(d);
        let r = obj.1.range::<[u8], _>(bounds);
        if reverse {
            for (d, _) in r.rev() {
                if !visit(d) {
                    return;
                }
            }
        } else {
            for (d, _) in r {
                if !visit(d) {
                    return;
                }
            }
        }
    }

    /// Hands a dkey's live akeys from `from` on, in order, to `f` until it returns false.
    pub fn walk_akeys(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        from: std::ops::Bound<&[u8]>,
        mut f: impl FnMut(&[u8]) -> bool,
    ) {
        let floor = self.punched_at(cont, oid, dkey, u64::MAX);
        let Some(dk) = self
            .index
            .objects
            .get(&(cont, oid))
            .and_then(|o| o.1.get(dkey))
        else {
            return;
        };
        for (a, h) in dk.1.range::<[u8], _>((from, std::ops::Bound::Unbounded)) {
            if self.akey_live(h, floor) && !f(a) {
                return;
            }
        }
    }

    /// The parts of `[lo, hi)` of an akey's array that hold written bytes as of `epoch`
    /// (DAOS's visible, non-hole extents: punched ranges excluded), merged and in order, into
    /// `out` (cleared first).
    pub fn visible_extents(
        &self,
        key: AkeyRef<'_>,
        lo: u64,
        hi: u64,
        epoch: u64,
        out: &mut Vec<(u64, u64)>,
    ) {
        out.clear();
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        let Some(h) = self.history(cont, oid, dkey, akey) else {
            return;
        };
        let floor = self.punched_at(cont, oid, dkey, epoch).max(
            h.iter()
                .filter(|(e, v)| *e <= epoch && matches!(v, Value::Punch))
                .map(|(e, _)| *e)
                .max()
                .unwrap_or(0),
        );
        // In epoch order (ties as every replica orders them): writes add, holes take away.
        let mut ext: Vec<Layer> = h
            .iter()
            .filter(|(e, _)| *e <= epoch && *e > floor)
            .filter_map(|(e, v)| match v {
                Value::Extent { offset, loc, .. } => {
                    let end = offset.saturating_add(u64::from(loc.parts().1));
                    let (s, t) = ((*offset).max(lo), end.min(hi));
                    (s < t).then_some((*e, tie_rank(v), s, t, matches!(loc, Loc::Hole { .. })))
                }
                _ => None,
            })
            .collect();
        ext.sort_unstable_by_key(|x| (x.0, x.1));
        for (_, _, s, t, hole) in ext {
            // Cut [s, t) out of what is there, then add it back if it is data.
            let mut kept = Vec::with_capacity(out.len() + 2);
            for &(a, b) in out.iter() {
                if b <= s || a >= t {
                    kept.push((a, b));
                    continue;
                }
                if a < s {
                    kept.push((a, s));
                }
                if b > t {
                    kept.push((t, b));
                }
            }
            if !hole {
                kept.push((s, t));
            }
            kept.sort_unstable();
            out.clear();
            for (a, b) in kept {
                match out.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => out.push((a, b)),
                }
            }
        }
    }

    /// The epoch of the newest change of the object (0: none), what DAOS reports as an
    /// object's last write.
    pub fn object_epoch(&self, cont: Cont, oid: Oid) -> u64 {
        let Some(obj) = self.index.objects.get(&(cont, oid)) else {
            return 0;
        };
        let punches = obj.0.iter().copied().max().unwrap_or(0);
        obj.1
            .values()
            .flat_map(|dk| {
                dk.0.iter()
                    .copied()
                    .chain(dk.1.values().flat_map(|h| h.iter().map(|(e, _)| *e)))
            })
            .max()
            .unwrap_or(0)
            .max(punches)
    }

    /// Live dkeys of an object.
    pub fn list_dkeys(&self, cont: Cont, oid: Oid) -> Vec<Vec<u8>> {
        let Some(obj) = self.index.objects.get(&(cont, oid)) else {
            return Vec::new();
        };
        obj.1
            .keys()
            .filter(|d| !self.list_akeys(cont, oid, d).is_empty())
            .cloned()
            .collect()
    }

    /// Objects of a container with anything recorded, in id order, above `after` (from the
    /// first with `from_start`), at most `max`.
    pub fn list_oids(&self, cont: Cont, after: Oid, from_start: bool, max: usize) -> Vec<Oid> {
        use std::ops::Bound;
        let lo = if from_start {
            Bound::Included((cont, 0))
        } else {
            Bound::Excluded((cont, after))
        };
        self.index
            .objects
            .range((lo, Bound::Included((cont, Oid::MAX))))
            .filter(|((_, oid), obj)| {
                // Any live dkey (not all of them: a page costs its objects' first keys).
                obj.1
                    .keys()
                    .any(|d| !self.list_akeys(cont, *oid, d).is_empty())
            })
            .map(|((_, oid), _)| *oid)
            .take(max)
            .collect()
    }

    /// Punches every object of a container (container destroy); returns how many.
    pub fn punch_container(&mut self, cont: Cont) -> Result<usize, StoreError> {
        let oids = self.list_oids(cont, 0, true, usize::MAX);
        for oid in &oids {
            self.punch(cont, *oid, None, None)?;
        }
        if self.containers.remove(&cont) {
            self.punch(CONTAINERS.0, CONTAINERS.1, Some(&cont.to_le_bytes()), None)?;
        }
        Ok(oids.len())
    }

    /// Live akeys of a dkey.
    pub fn list_akeys(&self, cont: Cont, oid: Oid, dkey: &[u8]) -> Vec<Vec<u8>> {
        let floor = self.punched_at(cont, oid, dkey, u64::MAX);
        let Some(dk) = self
            .index
            .objects
            .get(&(cont, oid))
            .and_then(|o| o.1.get(dkey))
        else {
            return Vec::new();
        };
        dk.1.iter()
            .filter(|(_, h)| self.akey_live(h, floor))
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// The SCM part.
    pub fn scm(&self) -> &S {
        &self.scm
    }

    /// The bdev part.
    pub fn bdev(&self) -> &B {
        &self.bdev
    }

    /// The current epoch (the newest durable change).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Gives the media back (tests: simulate a crash and reopen).
    pub fn into_media(self) -> (S, B) {
        (self.scm, self.bdev)
    }

    /// Bytes of the log half in use.
    pub fn log_used(&self) -> u64 {
        self.tail - self.half_start(self.half)
    }

    /// Where the next record goes (an absolute SCM offset).
    pub fn log_tail(&self) -> u64 {
        self.tail
    }

    /// The log generation (compactions so far).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// A simulated device for crash tests: keeps what was persisted; at [`SimMedia::crash`] every
/// byte written since its last persist is lost, or with `tear` partly lost (chosen by a seed).
#[derive(Clone)]
pub struct SimMedia {
    durable: Vec<u8>,
    current: Vec<u8>,
    dirty: Vec<(u64, u64)>,
    /// Persists that still succeed before the simulated power loss.
    persists_left: Option<u64>,
    /// Bytes read so far (what a read costs).
    read_bytes: std::cell::Cell<u64>,
}

impl SimMedia {
    pub fn new(len: usize) -> SimMedia {
        SimMedia {
            durable: vec![0; len],
            current: vec![0; len],
            dirty: Vec::new(),
            persists_left: None,
            read_bytes: std::cell::Cell::new(0),
        }
    }

    /// Bytes read from this media so far.
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes.get()
    }

    /// After `n` more successful persists, the next one fails (power loss).
    pub fn fail_after(&mut self, n: u64) {
        self.persists_left = Some(n);
    }

    /// Loses unpersisted writes; with `seed`, keeps a pseudo-random prefix of each (a torn write).
    pub fn crash(&mut self, seed: Option<u64>) {
        let mut x = seed.unwrap_or(0) | 1;
        for (off, len) in std::mem::take(&mut self.dirty) {
            let keep = match seed {
                Some(_) => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % (len + 1)
                }
                None => 0,
            };
            let (o, k) = (off as usize, keep as usize);
            self.durable[o..o + k].copy_from_slice(&self.current[o..o + k]);
        }
        self.current = self.durable.clone();
        self.persists_left = None;
    }

    /// Flips one byte (tests: corruption must be caught by the checksum).
    pub fn corrupt(&mut self, offset: usize) {
        self.current[offset] ^= 0xff;
        self.durable[offset] ^= 0xff;
    }
}

impl Media for SimMedia {
    fn capacity(&self) -> u64 {
        self.current.len() as u64
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = self
            .current
            .get(offset as usize..offset as usize + buf.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "beyond sim media"))?;
        buf.copy_from_slice(s);
        self.read_bytes
            .set(self.read_bytes.get() + buf.len() as u64);
        Ok(())
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let d = self
            .current
            .get_mut(offset as usize..offset as usize + data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::WriteZero, "beyond sim media"))?;
        d.copy_from_slice(data);
        self.dirty.push((offset, data.len() as u64));
        Ok(())
    }
    fn persist(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match self.persists_left {
            Some(0) => return Err(io::Error::other("simulated power loss")),
            Some(n) => self.persists_left = Some(n - 1),
            None => {}
        }
        let (o, l) = (offset as usize, len as usize);
        self.durable[o..o + l].copy_from_slice(&self.current[o..o + l]);
        self.dirty
            .retain(|(d, dl)| *d + *dl <= offset || *d >= offset + len);
        Ok(())
    }
}
