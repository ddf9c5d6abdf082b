//! Named values of any size in a container (what `daos object put|get|list` store): a key's
//! value lives in the object its name hashes to.
//!
//! Layout in the object: dkey `meta` holds akey `name` (the key) and akey `current` (the
//! current [`Version`]: an id and a size); dkey `data` holds each version's bytes as an array
//! under the version's id. A put writes a whole new version first and then names it current
//! in one step on each replica ([`Session::swap`]), so a key always names a complete value: a
//! put that fails or dies midway leaves the previous value as it was.
//!
//! Concurrent puts: the targets order changes of a key by epoch and refuse one below what
//! the key holds (`DER_TX_RESTART`), so the swap that names a version is the newest on every
//! replica that takes it, and a put acknowledged after another is ordered after it whatever
//! the clients' clocks. A swap refused by some replica and taken by others leaves its version
//! current there until a later swap replaces it: the put then swaps a fresh version (written
//! anew), never the same one again, so each version is named by one swap at most and a put
//! may free every version its swap replaced on any replica. A get reads one version and checks
//! that it is still current afterwards, so it never mixes versions.
//!
//! A put killed between writing its version and its swap leaves that version unnamed (its
//! space is not reclaimed until the container is destroyed); so does a put that gives up
//! after a swap some replicas took.

use crate::{ClientError, Oid, RESTARTS, Session, Swap};
use daos_wire::{PunchWhat, Request};

const META: &[u8] = b"meta";
const DATA: &[u8] = b"data";
/// The akey under [`META`] naming the key's current [`Version`].
const CURRENT: &[u8] = b"current";
const NAME: &[u8] = b"name";
/// Bytes per array write or read.
pub const CHUNK: usize = 1 << 20;
/// How many times a get starts over when the key was replaced while it read.
pub const GET_ATTEMPTS: usize = 8;

/// The object of a key: a 128-bit FNV-1a hash of it, without the bit that says an id carries
/// an object class (so a plain key is never taken for a classed one).
pub fn key_oid(key: &str) -> Oid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in key.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    h & !(u128::from(daos_placement::oclass::CLASSED) << 120)
}

/// The object of a key stored with object class `class` (none: the plain hash, one target).
pub fn key_oid_in(key: &str, class: Option<daos_placement::ObjectClass>) -> Oid {
    key_oid_at(key, class, daos_placement::RdLvl::Node)
}

/// [`key_oid_in`] for shards on distinct fault domains of level `lvl` (the container's
/// `rd_lvl`).
pub fn key_oid_at(
    key: &str,
    class: Option<daos_placement::ObjectClass>,
    lvl: daos_placement::RdLvl,
) -> Oid {
    let h = key_oid(key);
    class.map_or(h, |c| c.embed_at(h, lvl))
}

/// A key's current version: the akey of its bytes under [`DATA`], and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    id: [u8; 16],
    size: u64,
}

impl Version {
    fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.id);
        b[16..].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Version> {
        if b.len() != 24 {
            return None;
        }
        let id = b.get(..16)?.try_into().ok()?;
        let size = u64::from_le_bytes(b.get(16..24)?.try_into().ok()?);
        Some(Version { id, size })
    }
}

/// Where a key's bytes are (the akey under [`DATA`]) and how many, and the target to read
/// them from first (when the current version had to be looked for on several targets);
/// `None`: no such key. Values stored before versions (data under akey `0`, size under `size`)
/// are read too.
#[allow(clippy::type_complexity)]
fn current(
    s: &mut Session,
    cont: [u8; 16],
    oid: Oid,
) -> Result<Option<(Vec<u8>, u64, Option<usize>)>, ClientError> {
    let t = s.map.place(oid);
    if s.map.uncertain_read_targets(oid)?.is_some() {
        // On the map a target refusing a stale one gives (which may settle the question).
        return s.fresh(|s| match s.map.uncertain_read_targets(oid)? {
            Some(targets) => newest_current(s, cont, oid, &targets),
            None => current(s, cont, oid),
        });
    }
    if let Some(b) = s.fetch(cont, oid, META, CURRENT)? {
        let v = Version::decode(&b).ok_or_else(|| {
            s.bad(
                t,
                &format!("a key's version record has {} bytes, not 24", b.len()),
            )
        })?;
        return Ok(Some((v.id.to_vec(), v.size, None)));
    }
    let legacy = s.fetch(cont, oid, META, b"size")?;
    Ok(legacy
        .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
        .map(|size| (b"0".to_vec(), size, None)))
}

/// [`current`] when no replica surely has the newest version (see
/// [`crate::PoolMap::uncertain_read_targets`]): the version each of `targets` names, the
/// newest by epoch, with the target that named it (its bytes are there: a put writes them
/// before naming them). Targets that do not answer are skipped, and those of ranks reported
/// down or that did not answer lately are asked only when no other answers; none answering
/// is an error.
#[allow(clippy::type_complexity)]
fn newest_current(
    s: &mut Session,
    cont: [u8; 16],
    oid: Oid,
    targets: &[usize],
) -> Result<Option<(Vec<u8>, u64, Option<usize>)>, ClientError> {
    let mut best: Option<(u64, Vec<u8>, usize)> = None;
    let (mut answered, mut last) = (false, None);
    let doubtful =
        |s: &Session, t: usize| s.is_suspect(t) || s.map.down.contains(&s.map.targets[t].rank);
    let (likely, doubted): (Vec<usize>, Vec<usize>) =
        targets.iter().partition(|&&t| !doubtful(s, t));
    for t in likely.into_iter().chain(doubted) {
        if answered && doubtful(s, t) {
            break;
        }
        let req = Request::Fetch {
            oid,
            dkey: META,
            akey: CURRENT,
        };
        let got = s.call_with(t, cont, &req, |r| {
            r.fetched().map(|v| v.map(|v| (v.to_vec(), r.epoch)))
        });
        match got {
            Ok(Some(v)) => {
                answered = true;
                s.set_suspect(t, false);
                if let Some((b, epoch)) = v
                    && best.as_ref().is_none_or(|(e, _, _)| epoch > *e)
                {
                    best = Some((epoch, b, t));
                }
            }
            Ok(None) => last = Some(s.bad(t, "fetch reply malformed")),
            // Built on an older map than the target's: asked again on the new one.
            Err(e @ ClientError::Stale { .. }) => return Err(e),
            Err(e) => {
                if matches!(
                    e,
                    ClientError::Timeout { .. }
                        | ClientError::Fabric(_)
                        | ClientError::Unreachable { .. }
                ) {
                    s.set_suspect(t, true);
                }
                last = Some(e);
            }
        }
    }
    if !answered {
        return Err(last.unwrap_or(ClientError::NoTargets));
    }
    let Some((_, b, t)) = best else {
        return Ok(None);
    };
    let v = Version::decode(&b).ok_or_else(|| {
        s.bad(
            t,
            &format!("a key's version record has {} bytes, not 24", b.len()),
        )
    })?;
    Ok(Some((v.id.to_vec(), v.size, Some(t))))
}

/// Stores `data` under `key` as a new version `id` (unique: e.g. a fresh UUID) and makes it
/// current. On error the key still names its previous value, byte for byte.
pub fn put(
    s: &mut Session,
    cont: [u8; 16],
    key: &str,
    data: &[u8],
    id: [u8; 16],
) -> Result<(), ClientError> {
    put_as(s, cont, key, None, data, id)
}

/// [`put`] of an object of class `class` (its replicas each get the whole value before the
/// put succeeds).
pub fn put_as(
    s: &mut Session,
    cont: [u8; 16],
    key: &str,
    class: Option<daos_placement::ObjectClass>,
    data: &[u8],
    id: [u8; 16],
) -> Result<(), ClientError> {
    put_at(s, cont, key, class, daos_placement::RdLvl::Node, data, id)
}

/// [`put_as`] with the container's fault-domain level `lvl` (`rd_lvl`).
pub fn put_at(
    s: &mut Session,
    cont: [u8; 16],
    key: &str,
    class: Option<daos_placement::ObjectClass>,
    lvl: daos_placement::RdLvl,
    data: &[u8],
    id: [u8; 16],
) -> Result<(), ClientError> {
    let oid = key_oid_at(key, class, lvl);
    let size = data.len() as u64;
    // Versions this put made current on some replicas but not all (a swap refused by
    // another): freed once a later swap of this put replaced them everywhere.
    let mut abandoned: Vec<[u8; 16]> = Vec::new();
    let mut version = Version { id, size };
    let mut write = true;
    let mut last = None;
    for attempt in 0..=RESTARTS {
        if write {
            let written = write_pipelined(s, cont, oid, &version.id, data)
                .and_then(|()| s.update(cont, oid, META, NAME, key.as_bytes()));
            if let Err(e) = written {
                // Best effort: give back the unfinished version's space (nothing names it).
                let _ = s.punch(cont, oid, PunchWhat::Akey(DATA, &version.id));
                return Err(e);
            }
        }
        match s.swap(cont, oid, META, CURRENT, &version.encode())? {
            Swap::Done { replaced, .. } => {
                // What the swap replaced (on any replica) is named nowhere now, and no swap
                // can name it again (each version is swapped in by one swap only, or again
                // only where no replica took it): free it. Failing here loses nothing.
                let mut freed: Vec<Vec<u8>> = Vec::with_capacity(replaced.len());
                for r in replaced {
                    let old = match r.as_deref().map(Version::decode) {
                        Some(Some(v)) => v.id.to_vec(),
                        Some(None) => continue,
                        None => b"0".to_vec(), // a value stored before versions, if any
                    };
                    if old != version.id && !freed.contains(&old) {
                        let _ = s.punch(cont, oid, PunchWhat::Akey(DATA, &old));
                        freed.push(old);
                    }
                }
                for a in abandoned {
                    if !freed.iter().any(|f| f[..] == a[..]) {
                        let _ = s.punch(cont, oid, PunchWhat::Akey(DATA, &a));
                    }
                }
                return Ok(());
            }
            // A newer value is on every replica that answered (the session's clock took its
            // epoch in): the same version again, at a later epoch.
            Swap::Restart {
                applied: false,
                error,
            } => {
                last = Some(error);
                write = false;
            }
            // Current on some replicas: a new version (written anew) takes its place, so this
            // one is never swapped in again after another writer freed it.
            Swap::Restart {
                applied: true,
                error,
            } => {
                last = Some(error);
                abandoned.push(version.id);
                version.id = attempt_id(&id, attempt + 1);
                write = true;
            }
        }
    }
    Err(last.unwrap_or(ClientError::NoTargets))
}

/// The version id of a put's attempt `n` (0: the id it was given): distinct for each attempt.
fn attempt_id(id: &[u8; 16], n: usize) -> [u8; 16] {
    let mut out = *id;
    for (b, x) in out[12..].iter_mut().zip((n as u32).to_le_bytes()) {
        *b ^= x;
    }
    out
}

/// Operations a put or get keeps in flight.
pub const DEPTH: usize = 4;

/// Writes `data` as the array of akey `id` on every shard of the object, [`DEPTH`] chunks in
/// flight.
fn write_pipelined(
    s: &mut Session,
    cont: [u8; 16],
    oid: Oid,
    id: &[u8],
    data: &[u8],
) -> Result<(), ClientError> {
    let targets = s.map.shards(oid)?;
    let depth = (DEPTH * targets.len()).min(s.opts.queue_depth.max(targets.len()));
    let mut chunks = data.chunks(CHUNK).enumerate().peekable();
    let mut inflight: Vec<u64> = Vec::with_capacity(depth);
    let mut failed = None;
    while failed.is_none() && (chunks.peek().is_some() || !inflight.is_empty()) {
        while inflight.len() + targets.len() <= depth
            && let Some((i, chunk)) = chunks.next()
        {
            let req = Request::WriteExtent {
                oid,
                dkey: DATA,
                akey: id,
                offset: (i * CHUNK) as u64,
                data: chunk,
            };
            // Every replica of a chunk at one epoch.
            let epoch = s.next_epoch();
            for &t in &targets {
                inflight.push(s.submit_at(t, cont, &req, epoch)?);
            }
        }
        s.poll(|tag, r| {
            inflight.retain(|t| *t != tag);
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        })?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads `size` bytes of the array of akey `id` from the object's first shard that answers
/// (`first`, when given, before the others), [`DEPTH`] chunks in flight.
fn read_pipelined(
    s: &mut Session,
    cont: [u8; 16],
    oid: Oid,
    id: &[u8],
    size: u64,
    first: Option<usize>,
) -> Result<Vec<u8>, ClientError> {
    let mut last = None;
    let mut shards = s.map.read_shards(oid)?;
    shards.sort_by_key(|t| s.is_suspect(*t));
    if let Some(f) = first {
        shards.retain(|t| *t != f);
        shards.insert(0, f);
    }
    for t in shards {
        match read_from(s, t, cont, oid, id, size) {
            Ok(v) => return Ok(v),
            Err(
                e @ (ClientError::Timeout { .. }
                | ClientError::Fabric(_)
                | ClientError::Unreachable { .. }),
            ) => {
                s.set_suspect(t, true);
                last = Some(e)
            }
            Err(e)
                if e.der() == Some(daos_wire::der::IO) || e.der() == Some(daos_wire::der::CSUM) =>
            {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::NoTargets))
}

fn read_from(
    s: &mut Session,
    t: usize,
    cont: [u8; 16],
    oid: Oid,
    id: &[u8],
    size: u64,
) -> Result<Vec<u8>, ClientError> {
    let len = usize::try_from(size).map_err(|_| s.bad(t, "a key's size exceeds memory"))?;
    let depth = DEPTH.min(s.opts.queue_depth.max(1));
    let mut out = vec![0u8; len];
    let mut next = 0usize;
    let mut inflight: Vec<(u64, usize, usize)> = Vec::with_capacity(depth);
    let mut failed = None;
    while failed.is_none() && (next < len || !inflight.is_empty()) {
        while inflight.len() < depth && next < len {
            let n = (len - next).min(CHUNK);
            let req = Request::ReadExtent {
                oid,
                dkey: DATA,
                akey: id,
                offset: next as u64,
                len: n as u32,
            };
            inflight.push((s.submit(t, cont, &req)?, next, n));
            next += n;
        }
        let mut short = false;
        s.poll(|tag, r| {
            let Some(i) = inflight.iter().position(|f| f.0 == tag) else {
                return;
            };
            let (_, off, n) = inflight.swap_remove(i);
            match r {
                Ok(reply) => match reply.read_data() {
                    Some(d) if d.len() == n => out[off..off + n].copy_from_slice(d),
                    _ => short = true,
                },
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        })?;
        if short {
            return Err(s.bad(t, "read reply malformed"));
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The value of `key` (`None`: no such key): one version, whole. A value replaced while it
/// was read is read again; after [`GET_ATTEMPTS`] replacements the get gives up.
pub fn get(s: &mut Session, cont: [u8; 16], key: &str) -> Result<Option<Vec<u8>>, ClientError> {
    get_as(s, cont, key, None)
}

/// [`get`] of an object of class `class` (read from its first replica that answers).
pub fn get_as(
    s: &mut Session,
    cont: [u8; 16],
    key: &str,
    class: Option<daos_placement::ObjectClass>,
) -> Result<Option<Vec<u8>>, ClientError> {
    get_at(s, cont, key, class, daos_placement::RdLvl::Node)
}

/// [`get_as`] with the container's fault-domain level `lvl` (`rd_lvl`).
pub fn get_at(
    s: &mut Session,
    cont: [u8; 16],
    key: &str,
    class: Option<daos_placement::ObjectClass>,
    lvl: daos_placement::RdLvl,
) -> Result<Option<Vec<u8>>, ClientError> {
    let oid = key_oid_at(key, class, lvl);
    for _ in 0..GET_ATTEMPTS {
        let Some((id, size, first)) = current(s, cont, oid)? else {
            return Ok(None);
        };
        let out = read_pipelined(s, cont, oid, &id, size, first)?;
        // Still current: nothing replaced (and freed) the version while it was read.
        if current(s, cont, oid)?.is_some_and(|(now, _, _)| now == id) {
            return Ok(Some(out));
        }
    }
    Err(ClientError::Contended {
        key: key.to_string(),
        attempts: GET_ATTEMPTS,
    })
}

/// The key stored in object `oid` and its size; `None` if the object holds no key.
pub fn describe(
    s: &mut Session,
    cont: [u8; 16],
    oid: Oid,
) -> Result<Option<(String, u64)>, ClientError> {
    let name = s.fetch(cont, oid, META, NAME)?;
    Ok(match (name, current(s, cont, oid)?) {
        (Some(n), Some((_, size, _))) => Some((String::from_utf8_lossy(&n).into_owned(), size)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_wrong_lengths_are_refused() {
        let v = Version {
            id: [3; 16],
            size: 1 << 40,
        };
        assert_eq!(Version::decode(&v.encode()), Some(v));
        assert_eq!(Version::decode(&[0; 23]), None);
        assert_eq!(Version::decode(&[0; 25]), None);
    }

    #[test]
    fn keys_hash_apart() {
        assert_ne!(key_oid("a"), key_oid("b"));
        // A plain key's object never reads as one carrying a class (it would move).
        for i in 0..2000 {
            let k = format!("key-{i}");
            assert!(
                daos_placement::ObjectClass::of_oid(key_oid(&k)).is_err(),
                "{k}"
            );
        }
        let c = daos_placement::ObjectClass::rp(3, 1);
        assert_eq!(
            daos_placement::ObjectClass::of_oid(key_oid_in("k", Some(c))),
            Ok(c)
        );
        assert_eq!(key_oid("my/file"), key_oid("my/file"));
    }
}
