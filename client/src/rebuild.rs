//! Rebuild: after targets leave a pool (exclude, drain) or come back (reintegrate), every
//! replicated object gets its shards back where the pool map now places them, copied from a
//! replica that holds them (DAOS's scan and pull, driven from one place).
//!
//! The scan lists each container's objects on every target that may hold data and answers
//! (any state but new, ranks not reported down: up_in, drain, up, and excluded targets whose
//! engine still runs), a page at a time (DAOS's anchors: the next page starts after the last
//! id), each page's objects handed to the copying sessions before the next page is asked for,
//! so memory is bounded by a page whatever the object count. An object whose id carries a
//! redundant class and has shards to fill is merged onto each of them from every listed
//! target that holds it: every akey a holder has and the target lacks, or holds at an older
//! epoch, is copied at its own epoch (single values compared byte for byte and by epoch,
//! arrays by their extent's end), so the filled shard ends up with the newest value any
//! holder has. One holder is not enough: after map churn a target back `up` may hold an old
//! value (it missed updates while out) and the newest one may be only on targets out of the
//! layout (where it moved meanwhile), or only on an excluded target that still runs (excluded
//! while the other replica was still being filled). Objects without a class have one copy
//! and nothing to rebuild from.
//!
//! Concurrent updates go to every shard of the current layout (the rebuilt target included),
//! so a copy never loses them: a copy is stored at its value's own epoch ([`Session::copy_at`],
//! without the order check clients' changes get), so an update made between the copy's check
//! and its write, at a later epoch, stays the newer value on the rebuilt target.

use daos_placement::TargetState;
use daos_wire::{Request, reply};

use crate::{ClientError, Oid, Session};

/// What a rebuild pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Objects scanned.
    pub scanned: u64,
    /// Objects with at least one shard copied.
    pub objs: u64,
    /// Akeys (records) copied.
    pub recs: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Copies dropped from targets the object's layout no longer names (reclaim).
    pub reclaimed: u64,
}

/// Paces a rebuild to at most a number of bytes a second, so the foreground keeps its share
/// of the devices and the fabric: after each copy, [`Throttle::after`] says how long to wait
/// for the average since the start to be back at the rate.
#[derive(Clone, Debug)]
pub struct Throttle {
    rate: u64,
    start: Option<std::time::Instant>,
    sent: u64,
}

impl Throttle {
    /// At most `bytes_per_sec` (0: no limit).
    pub fn new(bytes_per_sec: u64) -> Throttle {
        Throttle {
            rate: bytes_per_sec,
            start: None,
            sent: 0,
        }
    }

    /// The wait after `bytes` more were copied at `now`.
    pub fn after(&mut self, now: std::time::Instant, bytes: u64) -> std::time::Duration {
        if self.rate == 0 {
            return std::time::Duration::ZERO;
        }
        let start = *self.start.get_or_insert(now);
        self.sent += bytes;
        let due = std::time::Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        due.saturating_sub(now.saturating_duration_since(start))
    }
}

/// Sessions copying objects at once in a rebuild pass.
pub const REBUILD_WORKERS: usize = 4;

/// Object ids a page of a target's list holds at most (what waits to be copied).
const PAGE_OIDS: usize = daos_wire::LIST_PAGE / 16;

/// Adds `n` objects that needed no copy to the shared progress.
fn lock_add_scanned(shared: &std::sync::Mutex<(Progress, &mut Throttle)>, n: u64) {
    shared.lock().unwrap_or_else(|p| p.into_inner()).0.scanned += n;
}

/// An object to copy and the targets to merge it from.
type ToCopy = (Oid, Vec<usize>);

/// How many times a single value is copied again when its source changed meanwhile.
const COPY_ATTEMPTS: usize = 4;

impl Session {
    /// Whether target `t` serves in the map (up_in, drain or up: in layouts) and its rank was
    /// not reported down: where copies outside the layout are reclaimed.
    fn serves(&self, t: usize) -> bool {
        self.state_of(t).is_some_and(TargetState::placeable) && self.reachable(t)
    }

    /// Whether target `t` is listed and read from for a rebuild: anything but a new target
    /// (an excluded one whose engine runs may hold the newest value of an object whose other
    /// replica was still being filled), its rank not reported down.
    fn source(&self, t: usize) -> bool {
        self.state_of(t)
            .is_some_and(|s| !matches!(s, TargetState::New | TargetState::Unknown))
            && self.reachable(t)
    }

    fn state_of(&self, t: usize) -> Option<TargetState> {
        let target = &self.map.targets[t];
        self.map.placement.state(daos_placement::TargetId {
            rank: target.rank,
            idx: target.target,
        })
    }

    fn reachable(&self, t: usize) -> bool {
        !self.map.down.contains(&self.map.targets[t].rank) && !self.is_suspect(t)
    }

    /// Whether target `t` holds anything of `oid` (a live dkey: what makes it listed).
    fn holds(&mut self, t: usize, cont: [u8; 16], oid: Oid) -> bool {
        let req = Request::ListDkeys { oid, after: b"" };
        self.call(t, cont, &req)
            .ok()
            .and_then(|body| reply::Keys::get(&body).ok())
            .is_some_and(|(_, keys)| !keys.is_empty())
    }

    /// Dkeys of `oid` on target `t`, every page.
    fn dkeys_on(
        &mut self,
        t: usize,
        cont: [u8; 16],
        oid: Oid,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        loop {
            let after = all.last().cloned().unwrap_or_default();
            let body = self.call(t, cont, &Request::ListDkeys { oid, after: &after })?;
            let (more, keys) = reply::Keys::get(&body).map_err(|_| self.bad(t, "key list"))?;
            all.extend(keys);
            if !more {
                return Ok(all);
            }
        }
    }

    fn akeys_on(
        &mut self,
        t: usize,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let body = self.call(t, cont, &Request::ListAkeys { oid, dkey })?;
        let (_, keys) = reply::Keys::get(&body).map_err(|_| self.bad(t, "key list"))?;
        Ok(keys)
    }

    fn shape_on(
        &mut self,
        t: usize,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
    ) -> Result<reply::AkeyShape, ClientError> {
        let body = self.call(t, cont, &Request::AkeySize { oid, dkey, akey })?;
        reply::AkeyShape::get(&body).map_err(|_| self.bad(t, "akey size"))
    }

    fn single_on(
        &mut self,
        t: usize,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
    ) -> Result<Option<(Vec<u8>, u64)>, ClientError> {
        // A large value may come by RMA: the reply's value wherever it landed.
        self.call_with(t, cont, &Request::Fetch { oid, dkey, akey }, |r| {
            r.fetched().map(|v| v.map(|v| (v.to_vec(), r.epoch)))
        })?
        .ok_or_else(|| self.bad(t, "fetch"))
    }

    /// Copies one akey from `src` to `dst` when `dst` lacks it or holds it differently;
    /// the bytes it copied (0: nothing).
    #[allow(clippy::too_many_arguments)]
    fn copy_akey(
        &mut self,
        src: usize,
        dst: usize,
        cont: [u8; 16],
        oid: Oid,
        dkey: &[u8],
        akey: &[u8],
    ) -> Result<u64, ClientError> {
        match self.shape_on(src, cont, oid, dkey, akey)? {
            reply::AkeyShape::None => Ok(0),
            reply::AkeyShape::Single(_) => {
                let mut copied = 0u64;
                for _ in 0..COPY_ATTEMPTS {
                    let Some((v, epoch)) = self.single_on(src, cont, oid, dkey, akey)? else {
                        return Ok(copied);
                    };
                    match self.single_on(dst, cont, oid, dkey, akey)? {
                        // Already there, or a newer update reached the new replica first.
                        Some((d, e)) if d == v || e > epoch => return Ok(copied),
                        _ => {}
                    }
                    // At the value's own epoch: a client's update of the key in the
                    // meantime (a later epoch) stays the newer one on every replica.
                    self.copy_at(
                        dst,
                        cont,
                        &Request::Update {
                            oid,
                            dkey,
                            akey,
                            value: &v,
                        },
                        epoch,
                        |_| (),
                    )?;
                    copied += v.len() as u64;
                }
                Ok(copied)
            }
            reply::AkeyShape::Array(end) => {
                if self.shape_on(dst, cont, oid, dkey, akey)? == reply::AkeyShape::Array(end) {
                    return Ok(0);
                }
                let mut offset = 0u64;
                while offset < end {
                    let len = (end - offset).min(daos_wire::READ_MAX as u64) as u32;
                    // Large reads may come by RMA: the reply's data wherever it landed.
                    let (data, epoch) = self
                        .call_with(
                            src,
                            cont,
                            &Request::ReadExtent {
                                oid,
                                dkey,
                                akey,
                                offset,
                                len,
                            },
                            |r| r.read_data().map(|d| (d.to_vec(), r.epoch)),
                        )?
                        .ok_or_else(|| self.bad(src, "extent"))?;
                    // At the newest epoch of what it covers (older extents under it are
                    // folded into it); a stretch with nothing written is not copied.
                    if epoch == 0 {
                        offset += u64::from(len);
                        continue;
                    }
                    self.copy_at(
                        dst,
                        cont,
                        &Request::WriteExtent {
                            oid,
                            dkey,
                            akey,
                            offset,
                            data: &data,
                        },
                        epoch,
                        |_| (),
                    )?;
                    offset += u64::from(len);
                }
                Ok(end)
            }
        }
    }

    /// One rebuild pass over containers `conts`, paced by `throttle`: `progress` hears after
    /// every object this thread copies. The objects are copied by [`REBUILD_WORKERS`]
    /// sessions at once (this one and more on their own threads, taking objects from one
    /// list), so round trips overlap.
    pub fn rebuild(
        &mut self,
        conts: &[[u8; 16]],
        throttle: &mut Throttle,
        mut progress: impl FnMut(Progress),
    ) -> Result<Progress, ClientError> {
        let mut done = Progress::default();
        for &cont in conts {
            // Every target that takes data serves the container (one that was down when it
            // was created learns it now).
            for t in 0..self.map.targets.len() {
                let state = self.map.placement.state(daos_placement::TargetId {
                    rank: self.map.targets[t].rank,
                    idx: self.map.targets[t].target,
                });
                if state.is_some_and(TargetState::placeable)
                    && !self.map.down.contains(&self.map.targets[t].rank)
                {
                    self.call(t, cont, &Request::ContRegister)?;
                }
            }
            self.scan(cont, throttle, &mut done, &mut progress)?;
        }
        // Every object is where the map puts it: copies left where it no longer does (a
        // reintegrated or new target took the shard back, a drained target) are dropped.
        for &cont in conts {
            self.reclaim(cont, &mut done)?;
            progress(done);
        }
        Ok(done)
    }

    /// Scans `cont` on every serving target, page by page, while [`REBUILD_WORKERS`]
    /// sessions (on their own threads) copy the objects each page names: a page's objects
    /// are handed over (at most a page waits) before the next page is asked for, so memory
    /// stays bounded by a page whatever the object count. An object is copied from the first
    /// serving target of its layout that holds it (one listed by several replicas is copied
    /// once); objects whose layout did not change are counted, not copied. The first error
    /// stops the pass.
    fn scan(
        &mut self,
        cont: [u8; 16],
        throttle: &mut Throttle,
        done: &mut Progress,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), ClientError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let failed = AtomicBool::new(false);
        let shared = Mutex::new((*done, throttle));
        let first_error: Mutex<Option<ClientError>> = Mutex::new(None);
        let lock = |m: &'_ Mutex<(Progress, &mut Throttle)>| {
            // A worker that panicked holding it leaves counts that are still counts.
            m.lock().unwrap_or_else(|p| p.into_inner()).0
        };
        let fail = |e: ClientError| {
            failed.store(true, Ordering::Release);
            first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        };
        // Objects to copy (object, the targets to merge it from): at most a page waits.
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToCopy>(PAGE_OIDS);
        let rx = Arc::new(Mutex::new(rx));
        let (map, opts) = (self.map.clone(), self.opts);
        std::thread::scope(|scope| {
            // The workers start with the first object to copy (none for a pass that finds
            // every layout unchanged).
            let mut idle = Some(rx);
            let start = |rx: Arc<Mutex<std::sync::mpsc::Receiver<ToCopy>>>| {
                for _ in 0..REBUILD_WORKERS {
                    let (map, rx) = (map.clone(), rx.clone());
                    let (shared, fail, failed) = (&shared, &fail, &failed);
                    scope.spawn(move || {
                        // A worker that cannot open a session leaves the objects to the
                        // others (or, with none left, to the scan).
                        let Ok(mut s) = Session::open(map, opts) else {
                            return;
                        };
                        loop {
                            let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok((oid, srcs)) = next else {
                                return;
                            };
                            if failed.load(Ordering::Acquire) {
                                continue;
                            }
                            if let Err(e) = s.copy_object(cont, oid, &srcs, shared) {
                                fail(e);
                            }
                        }
                    });
                }
            };
            let scanned = self.scan_targets(cont, &failed, |s, oid, srcs| {
                if let Some(rx) = idle.take() {
                    start(rx);
                }
                match tx.send((oid, srcs)) {
                    Ok(()) => {}
                    // No worker has a session: the scan copies it.
                    Err(std::sync::mpsc::SendError((oid, srcs))) => {
                        s.copy_object(cont, oid, &srcs, &shared)?
                    }
                }
                progress(lock(&shared));
                Ok(())
            });
            drop(tx);
            match scanned {
                Ok(unchanged) => lock_add_scanned(&shared, unchanged),
                Err(e) => fail(e),
            }
        });
        *done = lock(&shared);
        progress(*done);
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Lists `cont` on every source target page by page, handing `copy` each replicated
    /// object with a shard to rebuild once (with the targets to merge it from: every source
    /// that holds it), until `stop` is set; returns how many replicated objects needed no
    /// copy.
    fn scan_targets(
        &mut self,
        cont: [u8; 16],
        stop: &std::sync::atomic::AtomicBool,
        mut copy: impl FnMut(&mut Session, Oid, Vec<usize>) -> Result<(), ClientError>,
    ) -> Result<u64, ClientError> {
        let mut unchanged = 0u64;
        let mut page = Vec::with_capacity(PAGE_OIDS);
        let sources: Vec<usize> = (0..self.map.targets.len())
            .filter(|&t| self.source(t))
            .collect();
        for &t in &sources {
            let mut after = None;
            loop {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    return Ok(unchanged);
                }
                page.clear();
                let more = match self.oids_page(t, cont, after, &mut page) {
                    Ok(more) => more,
                    // An excluded target is read at best (it may not even know a container
                    // made while it was out): the pass goes on without it.
                    Err(_) if !self.serves(t) => break,
                    Err(e) => return Err(e),
                };
                after = page.last().copied();
                for &oid in &page {
                    if !daos_placement::ObjectClass::of_oid(oid)
                        .is_ok_and(|c| c.redun.group_size() > 1)
                    {
                        continue;
                    }
                    let fill = self.map.rebuild_targets(oid)?;
                    if fill.is_empty() {
                        // Nothing to copy: counted once, where it is first listed.
                        let earlier = self
                            .map
                            .shards(oid)?
                            .into_iter()
                            .any(|p| p < t && self.serves(p));
                        if !earlier {
                            unchanged += 1;
                        }
                        continue;
                    }
                    // Every source holding it, this one included. One scanned before this
                    // one holds it: the object was taken there (a target that got it since,
                    // by a client's update or a copy, got it with the object's newest data).
                    let mut holders = vec![t];
                    let mut taken = false;
                    for &p in &sources {
                        if p != t && self.holds(p, cont, oid) {
                            if p < t {
                                taken = true;
                                break;
                            }
                            holders.push(p);
                        }
                    }
                    if taken {
                        continue;
                    }
                    copy(self, oid, holders)?;
                }
                if !more {
                    break;
                }
            }
        }
        Ok(unchanged)
    }

    /// Merges object `oid` from targets `srcs` (each holds it) onto each target that must
    /// now hold a shard of it, paced by the shared throttle; counts into the shared progress.
    fn copy_object(
        &mut self,
        cont: [u8; 16],
        oid: Oid,
        srcs: &[usize],
        shared: &std::sync::Mutex<(Progress, &mut Throttle)>,
    ) -> Result<(), ClientError> {
        let (mut recs, mut bytes) = (0u64, 0u64);
        // Only shards that moved or are being filled: the others kept their data.
        for dst in self.map.rebuild_targets(oid)? {
            // Not a target out of the map (a shard placement found no healthy home for keeps
            // pointing there).
            if !self.state_of(dst).is_some_and(TargetState::placeable) {
                continue;
            }
            // A shard to fill on a rank reported down cannot be filled: the pass fails (and
            // starts over) rather than let the target in with what it lacks.
            let rank = self.map.targets[dst].rank;
            if self.map.down.contains(&rank) {
                return Err(ClientError::Der {
                    rank,
                    target: self.map.targets[dst].target,
                    code: daos_wire::der::BUSY,
                    name: "DER_BUSY",
                    message: "a shard to rebuild there, but the rank is down".into(),
                });
            }
            for &src in srcs {
                if src == dst {
                    continue;
                }
                match self.merge_from(src, dst, cont, oid, shared) {
                    Ok((r, b)) => {
                        recs += r;
                        bytes += b;
                    }
                    // An excluded source is read at best (see the scan).
                    Err(_) if !self.serves(src) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
        g.0.scanned += 1;
        g.0.recs += recs;
        g.0.bytes += bytes;
        if recs > 0 {
            g.0.objs += 1;
        }
        Ok(())
    }

    /// Copies every akey of `oid` that `src` holds and `dst` lacks or holds older, paced by
    /// the shared throttle: (akeys, bytes) copied.
    fn merge_from(
        &mut self,
        src: usize,
        dst: usize,
        cont: [u8; 16],
        oid: Oid,
        shared: &std::sync::Mutex<(Progress, &mut Throttle)>,
    ) -> Result<(u64, u64), ClientError> {
        let (mut recs, mut bytes) = (0u64, 0u64);
        for dkey in self.dkeys_on(src, cont, oid)? {
            for akey in self.akeys_on(src, cont, oid, &dkey)? {
                let n = self.copy_akey(src, dst, cont, oid, &dkey, &akey)?;
                if n > 0 {
                    recs += 1;
                    bytes += n;
                    let wait = {
                        let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
                        g.1.after(std::time::Instant::now(), n)
                    };
                    std::thread::sleep(wait);
                }
            }
        }
        Ok((recs, bytes))
    }

    /// DAOS's reclaim, once every copy of a pass is made: each serving target forgets its
    /// copy of a replicated object whose layout (once the pass's moves are done) does not
    /// name that target. Not a draining target: until the pass is recorded and clients have
    /// the map without it, readers still read it first (it is the shard that kept its
    /// place); once out, its copies are never read (a rebuild may merge from them).
    fn reclaim(&mut self, cont: [u8; 16], done: &mut Progress) -> Result<(), ClientError> {
        for t in 0..self.map.targets.len() {
            if !self.serves(t) || self.state_of(t) == Some(TargetState::Drain) {
                continue;
            }
            // Page by page: a reclaimed object is behind the next page's start.
            let (mut page, mut after) = (Vec::with_capacity(PAGE_OIDS), None);
            loop {
                page.clear();
                let more = self.oids_page(t, cont, after, &mut page)?;
                after = page.last().copied();
                for &oid in &page {
                    let replicated = daos_placement::ObjectClass::of_oid(oid)
                        .is_ok_and(|c| c.redun.group_size() > 1);
                    if replicated && !self.map.final_layout(oid)?.contains(&t) {
                        self.call(t, cont, &Request::Reclaim { oid })?;
                        done.reclaimed += 1;
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_throttle_keeps_the_average_at_its_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1_000_000);
        // 1 MB at once: wait a second (from the start).
        assert_eq!(t.after(t0, 1_000_000), Duration::from_secs(1));
        // Half a second later another 0.5 MB: due at 1.5 s, so one more second.
        assert_eq!(
            t.after(t0 + Duration::from_millis(500), 500_000),
            Duration::from_secs(1)
        );
        // Behind the rate: no wait.
        assert_eq!(t.after(t0 + Duration::from_secs(10), 1), Duration::ZERO);
        let mut free = Throttle::new(0);
        assert_eq!(free.after(t0, u64::MAX / 2), Duration::ZERO);
    }
}
