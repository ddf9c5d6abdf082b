//! Pool and container handles a target accepts (DAOS's pool/container handle checks in
//! `obj_ioc_init`). The pool service issues handles at pool connect and container open and
//! pushes them to the engines of the pool (dRPC `POOL_HANDLES`); every request names its
//! handles in the wire header and a target refuses one it was not told of (`DER_NO_HDL`) or
//! whose rights do not cover the operation (`DER_NO_PERM`).
//!
//! The table is read by every target shard on every request and written by the dRPC thread:
//! fixed arrays of atomics with open addressing on the (random) handle cookie, so a check is a
//! few loads, with no lock and no allocation. Writers take a mutex among themselves only.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rights a handle carries (the same bits as DAOS's ACL permissions `r` and `w`).
pub const READ: u16 = 1;
pub const WRITE: u16 = 2;
/// A pool handle that reaches every container without opening it (a daos_server's own: the
/// rebuild); a client's pool handle needs a container handle for a container's data.
pub const ANY_CONT: u16 = 0x100;

/// Handles one pool's table holds at most.
pub const CAPACITY: usize = 4096;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;

/// Why a request's handles were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, evicted, or not of this pool/container (DER_NO_HDL).
    NoHandle,
    /// Known, but without the rights the operation needs (DER_NO_PERM).
    NoPerm,
}

/// The table of one pool.
pub struct HandleTable {
    /// Until armed (the pool service pushed this pool's handles once) nothing is checked:
    /// pools whose service predates handles keep serving.
    armed: AtomicBool,
    keys: Box<[AtomicU64]>,
    /// rights (bits 0..16) | container tag (bits 16..48); tag 0: a pool handle.
    vals: Box<[AtomicU64]>,
    /// A container handle's pool handle (0 for pool handles).
    parents: Box<[AtomicU64]>,
    write: Mutex<()>,
}

impl Default for HandleTable {
    fn default() -> Self {
        let arr = || {
            (0..CAPACITY)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[_]>>()
        };
        HandleTable {
            armed: AtomicBool::new(false),
            keys: arr(),
            vals: arr(),
            parents: arr(),
            write: Mutex::new(()),
        }
    }
}

/// The 32-bit tag of a container UUID that its handles are bound to (never 0).
pub fn cont_tag(cont: &[u8; 16]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in cont {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

fn slot(cookie: u64) -> usize {
    // Cookies are random: their low bits spread well.
    (cookie as usize) & (CAPACITY - 1)
}

/// The table is full: the pool has [`CAPACITY`] handles open.
#[derive(Debug, thiserror::Error)]
#[error(
    "the pool has {CAPACITY} handles open (the most a target tracks); disconnect or evict some"
)]
pub struct Full;

impl HandleTable {
    /// Starts checking requests.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a pool handle (`parent` 0, `cont` None) or a container handle.
    pub fn insert(
        &self,
        cookie: u64,
        rights: u16,
        parent: u64,
        cont: Option<&[u8; 16]>,
    ) -> Result<(), Full> {
        if cookie == EMPTY || cookie == TOMBSTONE {
            return Ok(());
        }
        let _w = self.lock();
        if self.find(cookie).is_some() {
            return Ok(());
        }
        let tag = cont.map_or(0, cont_tag);
        let start = slot(cookie);
        for i in 0..CAPACITY {
            let s = (start + i) & (CAPACITY - 1);
            let k = self.keys[s].load(Ordering::Acquire);
            if k == EMPTY || k == TOMBSTONE {
                self.vals[s].store(
                    u64::from(rights) | (u64::from(tag) << 16),
                    Ordering::Relaxed,
                );
                self.parents[s].store(parent, Ordering::Relaxed);
                self.keys[s].store(cookie, Ordering::Release);
                return Ok(());
            }
        }
        Err(Full)
    }

    /// Where `cookie` is, if present.
    fn find(&self, cookie: u64) -> Option<usize> {
        if cookie == EMPTY || cookie == TOMBSTONE {
            return None;
        }
        let start = slot(cookie);
        for i in 0..CAPACITY {
            let s = (start + i) & (CAPACITY - 1);
            match self.keys[s].load(Ordering::Acquire) {
                EMPTY => return None,
                k if k == cookie => return Some(s),
                _ => {}
            }
        }
        None
    }

    /// A handle's (rights, parent, container tag).
    pub fn lookup(&self, cookie: u64) -> Option<(u16, u64, u32)> {
        let s = self.find(cookie)?;
        let v = self.vals[s].load(Ordering::Acquire);
        let p = self.parents[s].load(Ordering::Acquire);
        // The slot may have been reused between the loads: trust them only if it still
        // holds the cookie.
        if self.keys[s].load(Ordering::Acquire) != cookie {
            return None;
        }
        Some(((v & 0xffff) as u16, p, ((v >> 16) & 0xffff_ffff) as u32))
    }

    /// Removes a handle, and a pool handle's container handles; how many went.
    pub fn revoke(&self, cookie: u64) -> usize {
        let _w = self.lock();
        let mut gone = 0;
        if let Some(s) = self.find(cookie) {
            self.keys[s].store(TOMBSTONE, Ordering::Release);
            gone += 1;
        }
        for s in 0..CAPACITY {
            let k = self.keys[s].load(Ordering::Acquire);
            if k != EMPTY && k != TOMBSTONE && self.parents[s].load(Ordering::Acquire) == cookie {
                self.keys[s].store(TOMBSTONE, Ordering::Release);
                gone += 1;
            }
        }
        gone
    }

    /// Forgets every handle (before the pool service pushes its full list again).
    pub fn clear(&self) {
        let _w = self.lock();
        for k in self.keys.iter() {
            k.store(EMPTY, Ordering::Release);
        }
    }

    /// Handles held.
    pub fn len(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| !matches!(k.load(Ordering::Acquire), EMPTY | TOMBSTONE))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a request under pool handle `pool`, container handle `cont_hdl` (0: none) on
    /// container `cont` may do what needs `need` rights; `data`: it reads or changes the
    /// container's data, which takes a container handle (or an [`ANY_CONT`] pool handle).
    pub fn check(
        &self,
        pool: u64,
        cont_hdl: u64,
        cont: &[u8; 16],
        need: u16,
        data: bool,
    ) -> Result<(), Refusal> {
        if !self.armed() {
            return Ok(());
        }
        let (mut rights, parent, _) = self.lookup(pool).ok_or(Refusal::NoHandle)?;
        if parent != 0 {
            // A container handle where the pool handle belongs.
            return Err(Refusal::NoHandle);
        }
        if cont_hdl == 0 && data && rights & ANY_CONT == 0 {
            return Err(Refusal::NoHandle);
        }
        if cont_hdl != 0 {
            let (r, p, tag) = self.lookup(cont_hdl).ok_or(Refusal::NoHandle)?;
            if p != pool || tag != cont_tag(cont) {
                return Err(Refusal::NoHandle);
            }
            rights &= r;
        }
        if rights & need != need {
            return Err(Refusal::NoPerm);
        }
        Ok(())
    }
}

impl HandleTable {
    /// [`Self::check`] for a request that names only a container handle (DAOS's object
    /// RPCs): it must be known, a container handle of `cont`, its pool handle still open,
    /// and it carries `need`.
    pub fn check_cont(&self, cont_hdl: u64, cont: &[u8; 16], need: u16) -> Result<(), Refusal> {
        if !self.armed() {
            return Ok(());
        }
        let (rights, parent, tag) = self.lookup(cont_hdl).ok_or(Refusal::NoHandle)?;
        if parent == 0 || tag != cont_tag(cont) {
            return Err(Refusal::NoHandle);
        }
        // The pool handle must still be open; its mode does not limit the container's (as
        // DAOS's object handlers check the container handle's capabilities alone).
        self.lookup(parent).ok_or(Refusal::NoHandle)?;
        if rights & need != need {
            return Err(Refusal::NoPerm);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_tables_check_nothing_armed_ones_everything() {
        let t = HandleTable::default();
        assert_eq!(t.check(0, 0, &[0; 16], WRITE, true), Ok(()));
        t.arm();
        assert_eq!(t.check(0, 0, &[0; 16], READ, true), Err(Refusal::NoHandle));
        t.insert(77, READ, 0, None).expect("room");
        assert_eq!(t.check(77, 0, &[0; 16], READ, false), Ok(()));
        // A container's data needs a container handle.
        assert_eq!(t.check(77, 0, &[0; 16], READ, true), Err(Refusal::NoHandle));
        assert_eq!(t.check(77, 0, &[0; 16], WRITE, false), Err(Refusal::NoPerm));
        assert_eq!(
            t.check(78, 0, &[0; 16], READ, false),
            Err(Refusal::NoHandle)
        );
        t.insert(79, READ | ANY_CONT, 0, None).expect("room");
        assert_eq!(
            t.check(79, 0, &[0; 16], READ, true),
            Ok(()),
            "a server's handle"
        );
    }

    #[test]
    fn container_handles_belong_to_their_pool_handle_and_container() {
        let t = HandleTable::default();
        t.arm();
        let (c1, c2) = ([1u8; 16], [2u8; 16]);
        t.insert(10, READ | WRITE, 0, None).expect("room");
        t.insert(11, READ, 10, Some(&c1)).expect("room");
        t.insert(20, READ | WRITE, 0, None).expect("room");
        assert_eq!(t.check(10, 11, &c1, READ, true), Ok(()));
        // The container handle's rights narrow the pool handle's.
        assert_eq!(t.check(10, 11, &c1, WRITE, true), Err(Refusal::NoPerm));
        assert_eq!(
            t.check(10, 11, &c2, READ, true),
            Err(Refusal::NoHandle),
            "other container"
        );
        assert_eq!(
            t.check(20, 11, &c1, READ, true),
            Err(Refusal::NoHandle),
            "other pool handle"
        );
        assert_eq!(
            t.check(11, 0, &c1, READ, true),
            Err(Refusal::NoHandle),
            "not a pool handle"
        );
        // Evicting the pool handle takes its container handles.
        assert_eq!(t.revoke(10), 2);
        assert_eq!(t.check(10, 11, &c1, READ, true), Err(Refusal::NoHandle));
        assert_eq!(
            t.check(20, 0, &c1, WRITE, false),
            Ok(()),
            "container management"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn slots_are_reused_and_a_full_table_says_so() {
        let t = HandleTable::default();
        // Cookies that all hash to the same slot probe past each other.
        for i in 1..=CAPACITY as u64 {
            t.insert(i * CAPACITY as u64, READ, 0, None).expect("room");
        }
        assert!(t.insert(12345, READ, 0, None).is_err());
        assert_eq!(t.revoke(CAPACITY as u64), 1);
        t.insert(12345, READ, 0, None)
            .expect("a tombstone is reused");
        assert!(t.lookup(12345).is_some());
        assert!(
            t.lookup(2 * CAPACITY as u64).is_some(),
            "found past the tombstone"
        );
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn a_container_handle_alone_is_checked_with_its_pool_handle() {
        let t = HandleTable::default();
        let cont = [7u8; 16];
        t.insert(10, READ, 0, None).unwrap();
        t.insert(11, READ, 10, Some(&cont)).unwrap();
        t.insert(13, READ | WRITE, 10, Some(&cont)).unwrap();
        // Not armed: everything passes.
        assert_eq!(t.check_cont(99, &cont, READ), Ok(()));
        t.arm();
        assert_eq!(t.check_cont(11, &cont, READ), Ok(()));
        assert_eq!(t.check_cont(11, &cont, WRITE), Err(Refusal::NoPerm));
        // A read-write container handle under a read-only pool connection (dfuse's).
        assert_eq!(t.check_cont(13, &cont, READ | WRITE), Ok(()));
        assert_eq!(t.check_cont(11, &[8; 16], READ), Err(Refusal::NoHandle));
        assert_eq!(t.check_cont(10, &cont, READ), Err(Refusal::NoHandle));
        assert_eq!(t.check_cont(12, &cont, READ), Err(Refusal::NoHandle));
        // The pool handle evicted takes its container handles with it.
        t.revoke(10);
        assert_eq!(t.check_cont(11, &cont, READ), Err(Refusal::NoHandle));
    }
}
