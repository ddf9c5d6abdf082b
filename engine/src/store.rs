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
/// Alignment of values on the bdev part (O_DIRECT-friendly).
pub const BDEV_ALIGN: u64 = 4096;
const MAGIC: u32 = 0xDA05_1064;
const HEADER: usize = 12;

/// Byte storage with explicit durability: what the store is written on.
pub trait Media {
    /// Size in bytes.
    fn capacity(&self) -> u64;
    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes `[offset, offset+len)` durable.
    fn persist(&mut self, offset: u64, len: u64) -> io::Result<()>;
}

impl Media for daos_hw::pmemfile::PmemFile {
    fn capacity(&self) -> u64 {
        self.as_slice().len() as u64
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
    Extent { offset: u64, loc: Loc },
    Punch,
}

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
}

/// A value as a log record carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RecLoc<'a> {
    Inline(&'a [u8], u32),
    Bdev { offset: u64, len: u32, crc: u32 },
}

/// Versions of a single value kept per akey; older ones are aggregated away (reads at their
/// epochs see nothing), which bounds the index and keeps updates from allocating.
pub const VERSIONS_KEPT: usize = 8;

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
}

/// The store of one target in one pool.
pub struct Store<S: Media, B: Media> {
    scm: S,
    bdev: B,
    tail: u64,
    bdev_tail: u64,
    epoch: u64,
    index: Index,
    /// The record being appended (reused: no allocation once grown).
    record: Vec<u8>,
    /// Values read for a fetch (reused likewise).
    value: Vec<u8>,
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
    /// 0 object punch, 1 dkey punch, 2 akey punch, 3 single, 4 extent.
    kind: u8,
    dkey: &'a [u8],
    akey: &'a [u8],
    offset: u64,
    loc: Option<RecLoc<'a>>,
}

impl<'a> Rec<'a> {
    /// Appends the body to `b`.
    fn encode(&self, b: &mut Vec<u8>) {
        b.push(self.kind);
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.cont.to_le_bytes());
        b.extend_from_slice(&self.oid.to_le_bytes());
        put_bytes(b, self.dkey);
        put_bytes(b, self.akey);
        b.extend_from_slice(&self.offset.to_le_bytes());
        match self.loc {
            None => b.push(0),
            Some(RecLoc::Inline(v, crc)) => {
                b.push(1);
                b.extend_from_slice(&crc.to_le_bytes());
                put_bytes(b, v);
            }
            Some(RecLoc::Bdev { offset, len, crc }) => {
                b.push(2);
                b.extend_from_slice(&crc.to_le_bytes());
                b.extend_from_slice(&offset.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
            }
        }
    }

    fn decode(body: &'a [u8]) -> Option<Rec<'a>> {
        let mut r = Reader(body);
        let kind = r.u8()?;
        let epoch = r.u64()?;
        let cont = r.u128()?;
        let oid = r.u128()?;
        let dkey = r.bytes()?;
        let akey = r.bytes()?;
        let offset = r.u64()?;
        let loc = match r.u8()? {
            0 => None,
            1 => {
                let crc = r.u32()?;
                Some(RecLoc::Inline(r.bytes()?, crc))
            }
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
        (kind <= 4).then_some(Rec {
            epoch,
            cont,
            oid,
            kind,
            dkey,
            akey,
            offset,
            loc,
        })
    }

    /// Where the index finds this record's value once the record is at `at` in the log.
    fn index_loc(&self, at: u64) -> Option<Loc> {
        match self.loc? {
            // The value is the last field of the body (see `encode`).
            RecLoc::Inline(v, crc) => Some(Loc::Scm {
                offset: at + (HEADER + 66 + self.dkey.len() + self.akey.len()) as u64,
                len: v.len() as u32,
                crc,
            }),
            RecLoc::Bdev { offset, len, crc } => Some(Loc::Bdev { offset, len, crc }),
        }
    }
}

impl<S: Media, B: Media> Store<S, B> {
    /// Opens a store: replays the log, drops and zeroes a torn tail.
    pub fn open(scm: S, bdev: B) -> Result<Self, StoreError> {
        let mut st = Store {
            scm,
            bdev,
            tail: 0,
            bdev_tail: 0,
            epoch: 0,
            index: Index::default(),
            record: Vec::with_capacity(HEADER + INLINE_MAX + 2 * 1024 + 128),
            value: Vec::new(),
        };
        let len = st.scm.capacity();
        let mut head = [0u8; HEADER];
        loop {
            if st.tail + HEADER as u64 > len {
                break;
            }
            st.scm.read(st.tail, &mut head)?;
            let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let blen = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;
            let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
            if magic != MAGIC || blen == 0 || st.tail + HEADER as u64 + blen > len {
                break;
            }
            let mut body = vec![0u8; blen as usize];
            st.scm.read(st.tail + HEADER as u64, &mut body)?;
            if crc32fast::hash(&body) != crc {
                break;
            }
            let Some(rec) = Rec::decode(&body) else { break };
            st.epoch = st.epoch.max(rec.epoch);
            if let Some(RecLoc::Bdev { offset, len, .. }) = rec.loc {
                st.bdev_tail = st
                    .bdev_tail
                    .max((offset + u64::from(len)).div_ceil(BDEV_ALIGN) * BDEV_ALIGN);
            }
            let at = st.tail;
            st.apply(rec, at);
            st.tail += HEADER as u64 + blen;
        }
        // Zero what a torn append may have left, so a later scan stops exactly here.
        let zero_len = (len - st.tail).min(2 * (INLINE_MAX as u64 + 256));
        let mut rest = vec![0u8; zero_len as usize];
        st.scm.read(st.tail, &mut rest)?;
        if rest.iter().any(|b| *b != 0) {
            rest.fill(0);
            st.scm.write(st.tail, &rest)?;
            st.scm.persist(st.tail, zero_len)?;
        }
        Ok(st)
    }

    /// Indexes a record that starts at `at` in the log. Only a new object, dkey or akey
    /// allocates (its entry); versions of a value are bounded by [`VERSIONS_KEPT`].
    fn apply(&mut self, rec: Rec<'_>, at: u64) {
        let loc = rec.index_loc(at);
        let objects = &mut self.index.objects;
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
            },
        };
        if !matches!(v, Value::Extent { .. }) {
            // Aggregation: drop the oldest single value or punch beyond VERSIONS_KEPT
            // (extents stay: older ones may still show where newer ones do not reach).
            let versions = hist
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Extent { .. }))
                .count();
            if versions >= VERSIONS_KEPT
                && let Some(i) = hist
                    .iter()
                    .position(|(_, v)| !matches!(v, Value::Extent { .. }))
            {
                hist.remove(i);
            }
        }
        hist.push((rec.epoch, v));
    }

    fn append(&mut self, rec: Rec<'_>) -> Result<u64, StoreError> {
        let mut buf = std::mem::take(&mut self.record);
        buf.clear();
        buf.extend_from_slice(&[0u8; HEADER]);
        rec.encode(&mut buf);
        let body_len = buf.len() - HEADER;
        let result = (|| {
            if body_len > INLINE_MAX + 2 * 1024 + 128 {
                return Err(StoreError::TooLarge);
            }
            let total = buf.len() as u64;
            if self.tail + total > self.scm.capacity() {
                return Err(StoreError::LogFull);
            }
            let crc = crc32fast::hash(&buf[HEADER..]);
            buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            buf[4..8].copy_from_slice(&(body_len as u32).to_le_bytes());
            buf[8..12].copy_from_slice(&crc.to_le_bytes());
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
        if self.bdev_tail + span > self.bdev.capacity() {
            return Err(StoreError::BdevFull);
        }
        let offset = self.bdev_tail;
        // The value is durable before the record that points to it is written.
        self.bdev.write(offset, data)?;
        self.bdev.persist(offset, len)?;
        self.bdev_tail += span;
        Ok(RecLoc::Bdev {
            offset,
            len: data.len() as u32,
            crc,
        })
    }

    fn next_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
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
        let loc = self.locate(value)?;
        let epoch = self.next_epoch();
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind: 3,
            dkey,
            akey,
            offset: 0,
            loc: Some(loc),
        })
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
        let loc = self.locate(data)?;
        let epoch = self.next_epoch();
        self.append(Rec {
            epoch,
            cont,
            oid,
            kind: 4,
            dkey,
            akey,
            offset,
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
        let epoch = self.next_epoch();
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
            loc: None,
        })
    }

    /// Reads a value into `out` (resized; no allocation within its capacity) and verifies
    /// its checksum.
    fn read_loc(&self, loc: &Loc, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let (offset, len, expected, on_scm) = match *loc {
            Loc::Scm { offset, len, crc } => (offset, len, crc, true),
            Loc::Bdev { offset, len, crc } => (offset, len, crc, false),
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

    /// Where the single value of an akey as of `epoch` is, if there is one.
    fn latest_single(
        &self,
        cont: Cont,
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
        epoch: u64,
    ) -> Option<Loc> {
        let floor = self.punched_at(cont, oid, dkey, epoch);
        let h = self.history(cont, oid, dkey, akey)?;
        let latest = h
            .iter()
            .filter(|(e, v)| {
                *e <= epoch && *e > floor && matches!(v, Value::Single(_) | Value::Punch)
            })
            .max_by_key(|(e, _)| *e);
        match latest {
            Some((_, Value::Single(loc))) => Some(*loc),
            _ => None,
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
        let mut buf = std::mem::take(&mut self.value);
        let read = self.read_loc(&loc, &mut buf);
        let out = read.map(|()| f(Some(&buf)));
        self.value = buf;
        out
    }

    /// `len` array bytes at `offset` as of `epoch`; never-written bytes read as zero.
    pub fn read_extent(
        &self,
        key: AkeyRef<'_>,
        offset: u64,
        len: usize,
        epoch: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let AkeyRef {
            cont,
            oid,
            dkey,
            akey,
        } = key;
        let mut out = vec![0u8; len];
        let floor = self.punched_at(cont, oid, dkey, epoch);
        let Some(h) = self.history(cont, oid, dkey, akey) else {
            return Ok(out);
        };
        let akey_punch = h
            .iter()
            .filter(|(e, v)| *e <= epoch && matches!(v, Value::Punch))
            .map(|(e, _)| *e)
            .max()
            .unwrap_or(0);
        let floor = floor.max(akey_punch);
        let mut extents: Vec<&(u64, Value)> = h
            .iter()
            .filter(|(e, v)| *e <= epoch && *e > floor && matches!(v, Value::Extent { .. }))
            .collect();
        extents.sort_by_key(|(e, _)| *e);
        for (_, v) in extents {
            if let Value::Extent { offset: eo, loc } = v {
                let data = self.bytes(loc)?;
                let (start, end) = (
                    offset.max(*eo),
                    (offset + len as u64).min(eo + data.len() as u64),
                );
                if start < end {
                    out[(start - offset) as usize..(end - offset) as usize]
                        .copy_from_slice(&data[(start - eo) as usize..(end - eo) as usize]);
                }
            }
        }
        Ok(out)
    }

    fn akey_live(&self, h: &AkeyHistory, floor: u64) -> bool {
        let newest = h.iter().filter(|(e, _)| *e > floor).max_by_key(|(e, _)| *e);
        matches!(newest, Some((_, Value::Single(_) | Value::Extent { .. })))
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
            .filter(|((_, oid), _)| !self.list_dkeys(cont, *oid).is_empty())
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

    /// The current epoch (the newest durable change).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Gives the media back (tests: simulate a crash and reopen).
    pub fn into_media(self) -> (S, B) {
        (self.scm, self.bdev)
    }

    /// Bytes of the log in use.
    pub fn log_used(&self) -> u64 {
        self.tail
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
}

impl SimMedia {
    pub fn new(len: usize) -> SimMedia {
        SimMedia {
            durable: vec![0; len],
            current: vec![0; len],
            dirty: Vec::new(),
            persists_left: None,
        }
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
