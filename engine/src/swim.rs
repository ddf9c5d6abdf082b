//! SWIM failure detection among the system's engines (the `foca` crate), as DAOS's CaRT SWIM:
//! each engine probes one peer per period, asks two others to probe it when it does not
//! answer, and declares it dead after the suspicion timeout. Members come from the group map
//! the management service pushes (GroupUpdate); a peer declared dead is reported to this
//! engine's daos_server as DAOS's RAS event `swim_rank_dead` (dRPC ClusterEvent), which has the
//! management service exclude it.
//!
//! Timing as DAOS's, from the same environment variables (milliseconds; foca's probe period is
//! the whole probe, at least three ping timeouts, see [`SwimConfig`]):
//! `SWIM_PROTOCOL_PERIOD_LEN` (1000), `SWIM_PING_TIMEOUT` (900), `SWIM_SUSPECT_TIMEOUT`
//! (20000), and `SWIM_SUBGROUP_SIZE` (2 indirect probes).
//!
//! Transport: UDP datagrams on the engine's own address, its context-0 fabric address (the
//! fabric URI's host and base port; the targets listen on the ports above it). Not the
//! libfabric RDM endpoints: SWIM's job is to keep talking to peers that died, and an `ofi_rxm`
//! endpoint that sends to a dead peer stalls its sends to live ones for seconds (see the
//! notes), which would make live peers look suspect.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{SocketAddr, UdpSocket};
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Foca, Identity, Member, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;

use crate::control::{Control, GroupMap};

/// A SWIM member: an engine rank in one incarnation, at its SWIM address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwimId {
    pub rank: u32,
    pub incarnation: u64,
    pub addr: SocketAddr,
}

impl Identity for SwimId {
    type Addr = u32;

    /// A rank declared dead does not come back by itself: the management service excludes
    /// it, and it rejoins with a new incarnation (a new identity) when restarted.
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> u32 {
        self.rank
    }

    /// The newer incarnation of a rank wins.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// SWIM's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwimConfig {
    pub period: Duration,
    pub ping_timeout: Duration,
    pub suspect_timeout: Duration,
    pub subgroup: usize,
}

impl Default for SwimConfig {
    fn default() -> SwimConfig {
        SwimConfig {
            period: Duration::from_millis(1000),
            ping_timeout: Duration::from_millis(900),
            suspect_timeout: Duration::from_millis(20_000),
            subgroup: 2,
        }
    }
}

impl SwimConfig {
    /// DAOS's variables from `env`; a bad value is an error naming it.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<SwimConfig, String> {
        let mut c = SwimConfig::default();
        let ms = |name: &str, min: u64, max: u64| -> Result<Option<Duration>, String> {
            match env(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(Some(Duration::from_millis(n))),
                    _ => Err(format!(
                        "{name}={v:?}: expected milliseconds from {min} to {max}"
                    )),
                },
            }
        };
        if let Some(d) = ms("SWIM_PROTOCOL_PERIOD_LEN", 100, 60_000)? {
            c.period = d;
        }
        if let Some(d) = ms("SWIM_PING_TIMEOUT", 50, 60_000)? {
            c.ping_timeout = d;
        }
        if let Some(d) = ms("SWIM_SUSPECT_TIMEOUT", 200, 600_000)? {
            c.suspect_timeout = d;
        }
        if let Some(v) = env("SWIM_SUBGROUP_SIZE") {
            c.subgroup = match v.trim().parse::<usize>() {
                Ok(n) if (1..=16).contains(&n) => n,
                _ => return Err(format!("SWIM_SUBGROUP_SIZE={v:?}: expected 1 to 16")),
            };
        }
        if c.ping_timeout >= c.period {
            return Err(format!(
                "SWIM_PING_TIMEOUT ({} ms) must be below SWIM_PROTOCOL_PERIOD_LEN ({} ms)",
                c.ping_timeout.as_millis(),
                c.period.as_millis()
            ));
        }
        Ok(c)
    }

    fn foca(&self, members: usize) -> foca::Config {
        let mut f = foca::Config::new_lan(
            NonZeroU32::new(members.max(1) as u32).unwrap_or(NonZeroU32::MIN),
        );
        // DAOS probes a new member each period and gives each probe its ping timeout, then
        // twice that for the indirect pings. foca runs one probe per period, so its period is
        // the whole probe (direct + indirect: 3 ping timeouts) and not shorter than DAOS's; a
        // period barely longer than the ping timeout leaves the indirect probes no time and
        // makes live members suspect on a busy machine.
        f.probe_period = self.period.max(self.ping_timeout * 3);
        f.probe_rtt = self.ping_timeout;
        f.num_indirect_probes = NonZeroUsize::new(self.subgroup).unwrap_or(NonZeroUsize::MIN);
        f.suspect_to_down_after = self.suspect_timeout;
        f.max_transmissions = NonZeroU8::new(50).unwrap_or(NonZeroU8::MIN);
        f.remove_down_after = Some(Duration::from_secs(3600));
        f.notify_down_members = true;
        f
    }
}

/// Where a peer's SWIM listens: its fabric URI's host and port.
pub fn swim_addr(uri: &str) -> Option<SocketAddr> {
    let (_, addr) = uri.split_once("://")?;
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
}

/// Runs SWIM for this engine until `ctl` stops: `dead` hears each peer declared dead (once
/// per incarnation).
pub fn run(
    ctl: Arc<Control>,
    me: SocketAddr,
    incarnation: u64,
    config: SwimConfig,
    mut dead: impl FnMut(&SwimId),
) -> Result<(), String> {
    let socket = UdpSocket::bind(me).map_err(|e| format!("SWIM cannot bind {me}: {e}"))?;
    let Some(rank) = ctl.wait_set_up() else {
        return Ok(());
    };
    let id = SwimId {
        rank,
        incarnation,
        addr: me,
    };
    let rng = rand::rngs::SmallRng::seed_from_u64(incarnation ^ u64::from(rank));
    let mut foca = Foca::new(id.clone(), config.foca(2), rng, PostcardCodec);
    let mut rt = AccumulatingRuntime::new();
    let mut timers: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut pending: BTreeMap<u64, Timer<SwimId>> = BTreeMap::new();
    let mut seq = 0u64;
    let mut known: GroupMap = GroupMap::default();
    let mut reported: Vec<(u32, u64)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !ctl.is_stopping() {
        // Members from the newest group map.
        let group = ctl.group();
        if group.version > known.version {
            let members: Vec<Member<SwimId>> = group
                .peers
                .iter()
                .filter(|(r, _)| **r != rank)
                .filter_map(|(r, p)| {
                    Some(Member::alive(SwimId {
                        rank: *r,
                        incarnation: p.incarnation,
                        addr: swim_addr(&p.uri)?,
                    }))
                })
                .collect();
            let _ = foca.set_config(config.foca(members.len() + 1));
            if let Err(e) = foca.apply_many(members.into_iter(), false, &mut rt) {
                crate::dlog!(
                    crate::log::Subsys::Swim,
                    daos_config::logmask::Level::Err,
                    "SWIM: group map {}: {e}",
                    group.version
                );
            }
            known = group;
        }
        // Wait for a datagram until the next timer is due.
        let now = Instant::now();
        let wait = timers
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let _ = socket.set_read_timeout(Some(wait));
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && let Err(e) = foca.handle_data(&buf[..n], &mut rt)
        {
            // A malformed or foreign datagram changes nothing.
            crate::dlog!(
                crate::log::Subsys::Swim,
                daos_config::logmask::Level::Warn,
                "SWIM: datagram refused: {e}"
            );
        }
        let now = Instant::now();
        while let Some(Reverse((at, s))) = timers.peek().copied() {
            if at > now {
                break;
            }
            timers.pop();
            if let Some(t) = pending.remove(&s)
                && let Err(e) = foca.handle_timer(t, &mut rt)
            {
                crate::dlog!(
                    crate::log::Subsys::Swim,
                    daos_config::logmask::Level::Err,
                    "SWIM: timer: {e}"
                );
            }
        }
        // What foca asked for: datagrams, timers, news.
        while let Some((to, data)) = rt.to_send() {
            let _ = socket.send_to(&data, to.addr);
        }
        while let Some((after, t)) = rt.to_schedule() {
            seq += 1;
            pending.insert(seq, t);
            timers.push(Reverse((Instant::now() + after, seq)));
        }
        while let Some(n) = rt.to_notify() {
            match n {
                OwnedNotification::MemberDown(m) => {
                    let current = known
                        .peers
                        .get(&m.rank)
                        .is_some_and(|p| p.incarnation == m.incarnation);
                    if current && !reported.contains(&(m.rank, m.incarnation)) {
                        reported.push((m.rank, m.incarnation));
                        println!(
                            "SWIM: rank {} (incarnation {}) is dead",
                            m.rank, m.incarnation
                        );
                        dead(&m);
                    }
                }
                OwnedNotification::MemberUp(m) => {
                    println!("SWIM: rank {} is alive", m.rank);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timing ten times DAOS's pace, for tests.
    fn fast() -> SwimConfig {
        SwimConfig {
            period: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(50),
            suspect_timeout: Duration::from_millis(500),
            subgroup: 2,
        }
    }

    #[test]
    fn timing_follows_daos_variables_and_bad_values_name_them() {
        let none = |_: &str| None;
        assert_eq!(SwimConfig::from_env(&none), Ok(SwimConfig::default()));
        let env = |k: &str| match k {
            "SWIM_SUSPECT_TIMEOUT" => Some("3000".to_string()),
            "SWIM_PROTOCOL_PERIOD_LEN" => Some("500".to_string()),
            "SWIM_PING_TIMEOUT" => Some("400".to_string()),
            _ => None,
        };
        let c = SwimConfig::from_env(&env).unwrap();
        assert_eq!(c.suspect_timeout, Duration::from_secs(3));
        assert_eq!(c.period, Duration::from_millis(500));
        let bad = |k: &str| (k == "SWIM_SUSPECT_TIMEOUT").then(|| "soon".to_string());
        let e = SwimConfig::from_env(&bad).unwrap_err();
        assert!(e.contains("SWIM_SUSPECT_TIMEOUT=\"soon\""), "{e}");
        let slow = |k: &str| (k == "SWIM_PING_TIMEOUT").then(|| "2000".to_string());
        assert!(
            SwimConfig::from_env(&slow)
                .unwrap_err()
                .contains("must be below")
        );
    }

    #[test]
    fn addresses_come_from_fabric_uris_and_newer_incarnations_win() {
        assert_eq!(
            swim_addr("ofi+tcp;ofi_rxm://10.250.0.2:31416"),
            Some("10.250.0.2:31416".parse().unwrap())
        );
        assert_eq!(
            swim_addr("ofi+tcp://[::1]:5"),
            Some("[::1]:5".parse().unwrap())
        );
        assert_eq!(swim_addr("no-uri"), None);
        let a = SwimId {
            rank: 1,
            incarnation: 5,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let b = SwimId {
            incarnation: 6,
            ..a.clone()
        };
        assert!(b.win_addr_conflict(&a) && !a.win_addr_conflict(&b));
        assert_eq!(a.addr(), 1);
    }

    /// Three engines on loopback UDP: one stops answering and the other two declare it dead
    /// within the suspicion timeout; the live ones are never reported.
    #[test]
    fn a_silent_peer_is_declared_dead_by_the_others() {
        let config = fast();
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .map(|a| a.port())
                    .expect("free port")
            })
            .collect();
        let peers: Vec<(u32, u64, SocketAddr)> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    i as u32,
                    100 + i as u64,
                    SocketAddr::from(([127, 0, 0, 1], *p)),
                )
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel::<(u32, u32)>();
        let mut ctls = Vec::new();
        let mut threads = Vec::new();
        for &(rank, inc, addr) in &peers {
            let ctl = Control::new(Vec::new());
            ctl.set_up_for_test(rank);
            ctl.set_group_for_test(&peers);
            let tx = tx.clone();
            let c = ctl.clone();
            threads.push(std::thread::spawn(move || {
                run(c, addr, inc, config, |d| {
                    let _ = tx.send((rank, d.rank));
                })
            }));
            ctls.push(ctl);
        }
        // Rank 2 goes silent (stops); the others must see it dead.
        ctls[2].request_stop();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < 2 && Instant::now() < deadline {
            if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push(x);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, [(0, 2), (1, 2)], "ranks 0 and 1 report rank 2 dead");
        for c in &ctls {
            c.request_stop();
        }
        for t in threads {
            t.join().expect("swim thread").expect("swim ran");
        }
    }
    /// A dead peer restarted on the same address with a new incarnation (as daos_server
    /// restarts an excluded engine) is taken back by the others and never reported dead
    /// again while it runs: neither by the peers (which gossiped its old identity down) nor
    /// by itself going silent.
    #[test]
    fn a_restarted_peer_is_not_declared_dead_again() {
        let config = fast();
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|_| {
                UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .expect("free port")
            })
            .collect();
        let mut peers: Vec<(u32, u64, SocketAddr)> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u32, 100 + i as u64, *a))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel::<(u32, u32, u64)>();
        let start = |rank: u32, inc: u64, version: u32, peers: &[(u32, u64, SocketAddr)]| {
            let ctl = Control::new(Vec::new());
            ctl.set_up_for_test(rank);
            ctl.set_group_version_for_test(version, peers);
            let tx = tx.clone();
            let c = ctl.clone();
            let addr = addrs[rank as usize];
            let t = std::thread::spawn(move || {
                run(c, addr, inc, config, |d| {
                    let _ = tx.send((rank, d.rank, d.incarnation));
                })
            });
            (ctl, t)
        };
        let mut engines: Vec<_> = (0..3)
            .map(|r| start(r, 100 + u64::from(r), 1, &peers))
            .collect();
        // Rank 2 dies; both others report it.
        let (ctl2, t2) = engines.pop().expect("rank 2");
        ctl2.request_stop();
        t2.join().expect("swim thread").expect("swim ran");
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < 2 && Instant::now() < deadline {
            if let Ok(x) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push(x);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, [(0, 2, 102), (1, 2, 102)]);
        // It comes back as incarnation 200; the group map says so (version 2) everywhere.
        peers[2].1 = 200;
        for (c, _) in &engines {
            c.set_group_version_for_test(2, &peers);
        }
        engines.push(start(2, 200, 2, &peers));
        // Ten suspicion timeouts: long enough for a false death to be declared several times.
        let until = Instant::now() + config.suspect_timeout * 10;
        let mut false_deaths = Vec::new();
        while Instant::now() < until {
            if let Ok(x) = rx.recv_timeout(Duration::from_millis(100)) {
                false_deaths.push(x);
            }
        }
        assert!(
            false_deaths.is_empty(),
            "live members reported dead: {false_deaths:?}"
        );
        for (c, _) in &engines {
            c.request_stop();
        }
        for (_, t) in engines {
            t.join().expect("swim thread").expect("swim ran");
        }
    }
}
