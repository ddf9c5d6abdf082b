//! Shard threads: one per system shard, target and helper, each pinned to its core.
//!
//! A shard owns everything it touches: its io_uring [`Reactor`] (created and checked with a NOP
//! at start, so a kernel without io_uring fails the engine at start with a clear message) and
//! its bounded command queue. Nothing is shared between shards; the engine talks to a shard
//! only through that queue plus a wake-up of its ring, and a full queue is reported to the
//! caller (back-pressure), never grown.
//!
//! The loop: sleep in the ring until woken (or a second passes), drain the command queue,
//! repeat. Storage and fabric completions join the same ring with the data plane; busy-polling
//! is then an option for dedicated cores.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::context::{ContextConfig, Membership, SystemContext};
use crate::coremap::Placement;
use crate::pool::PoolStore;
use crate::target::{Endpoint, TargetService};
use crate::uring::{Reactor, Waker};

/// Commands a shard accepts.
#[derive(Debug)]
pub enum Command {
    /// Answer with the CPUs this shard may run on.
    Ping(SyncSender<Vec<u32>>),
    /// Close a pool's store (it is about to be destroyed); answered when done.
    ClosePool(String, SyncSender<()>),
    /// Space a pool's store uses on this target: (SCM, bdev) bytes; `None` from non-targets.
    PoolSpace(String, SyncSender<Option<Result<(u64, u64), String>>>),
    /// The engine's rank and group map changed (the system shard's context answers with them).
    Membership(Membership),
    /// How a target reaches the engine's other targets (sent once every target runs).
    Peers(Arc<Vec<PeerLink>>),
    /// Work from another target of this engine, or its answer (DAOS's collective RPCs).
    Peer(crate::target::PeerMsg),
    Stop,
}

/// A target shard's queue, as another target reaches it.
#[derive(Clone)]
pub struct PeerLink {
    pub target: u32,
    tx: SyncSender<Command>,
    waker: Waker,
}

impl std::fmt::Debug for PeerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerLink(target {})", self.target)
    }
}

impl PeerLink {
    /// Sends a message without blocking; false when the queue is full or gone (the caller
    /// answers its client with a retryable error).
    pub fn send(&self, msg: crate::target::PeerMsg) -> bool {
        self.tx.try_send(Command::Peer(msg)).is_ok() && self.waker.wake().is_ok()
    }
}

/// What a target shard serves.
pub struct TargetRole {
    pub index: u32,
    pub pools: Arc<PoolStore>,
    pub endpoint: Endpoint,
}

/// After its last work, a target polls this long before it sleeps (busy-polling keeps
/// latency low under load; `DAOS_TARGET_SPIN_US` changes it).
pub const TARGET_SPIN: Duration = Duration::from_micros(200);
/// A sleeping target looks at its fabric queue this often.
pub const TARGET_NAP: Duration = Duration::from_micros(250);

/// Depth of a shard's command queue.
pub const QUEUE_DEPTH: usize = 64;
/// io_uring entries per shard.
pub const RING_ENTRIES: u32 = 64;

/// What a shard serves besides its commands.
enum Service {
    Idle,
    Target(Box<TargetService>),
    System(Box<SystemContext>),
}

impl Service {
    fn poll(&mut self) -> usize {
        match self {
            Service::Idle => 0,
            Service::Target(t) => t.poll(),
            Service::System(c) => c.poll(),
        }
    }

    fn target(&mut self) -> Option<&mut TargetService> {
        match self {
            Service::Target(t) => Some(t),
            _ => None,
        }
    }
}

/// What a shard is started to serve.
enum Job {
    Idle,
    Target(TargetRole),
    System(ContextConfig),
}

/// A shard failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {index}: cannot pin to core {core}: {source}")]
    Pin {
        index: usize,
        core: u32,
        source: nix::Error,
    },
    #[error(
        "shard {index}: cannot set up io_uring: {source} (needs Linux 5.6+; check seccomp and kernel.io_uring_disabled)"
    )]
    Ring {
        index: usize,
        source: std::io::Error,
    },
    #[error("shard {index}: cannot start a thread: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
    #[error("shard {index} stopped before it was ready")]
    Died { index: usize },
    #[error(
        "target {target}: cannot open its fabric endpoint on {node}:{port}: {source}; check fabric_iface, fabric_iface_port (ports {port} and up must be free) and provider"
    )]
    Fabric {
        target: u32,
        node: String,
        port: u16,
        source: daos_fabric::EndpointError,
    },
    #[error(
        "context 0: cannot open its fabric endpoint on {node}:{port}: {source}; check fabric_iface, fabric_iface_port (ports {port} and up must be free) and provider"
    )]
    Context {
        node: String,
        port: u16,
        source: daos_fabric::EndpointError,
    },
    #[error("shard {index}: command queue full")]
    Busy { index: usize },
}

/// A running shard.
pub struct Shard {
    pub index: usize,
    pub placement: Placement,
    tx: SyncSender<Command>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

/// How long an idle shard sleeps in its ring before it looks around again.
pub const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Starts a shard and waits until it is pinned and its ring works.
pub fn spawn(index: usize, placement: Placement) -> Result<Shard, ShardError> {
    spawn_with_idle(index, placement, IDLE_WAIT)
}

/// [`spawn`] with another idle wait.
pub fn spawn_with_idle(
    index: usize,
    placement: Placement,
    idle: Duration,
) -> Result<Shard, ShardError> {
    spawn_role(index, placement, idle, Job::Idle)
}

/// Starts a target shard serving I/O on its own fabric endpoint.
pub fn spawn_target(
    index: usize,
    placement: Placement,
    role: TargetRole,
) -> Result<Shard, ShardError> {
    spawn_role(index, placement, IDLE_WAIT, Job::Target(role))
}

/// Starts the system shard serving CaRT context 0 (DAOS's clients' tag 0).
pub fn spawn_system(
    index: usize,
    placement: Placement,
    config: ContextConfig,
) -> Result<Shard, ShardError> {
    spawn_role(index, placement, IDLE_WAIT, Job::System(config))
}

fn spawn_role(
    index: usize,
    placement: Placement,
    idle: Duration,
    role: Job,
) -> Result<Shard, ShardError> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread = thread::Builder::new()
        .name(format!("shard-{index}"))
        .spawn(move || match setup(index, placement.core, role) {
            Ok((reactor, waker, target)) => {
                let _ = ready_tx.send(Ok(waker));
                run(reactor, rx, idle, target);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|source| ShardError::Spawn { index, source })?;
    match ready_rx.recv() {
        Ok(Ok(waker)) => Ok(Shard {
            index,
            placement,
            tx,
            waker,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ShardError::Died { index })
        }
    }
}

fn setup(index: usize, core: u32, role: Job) -> Result<(Reactor, Waker, Service), ShardError> {
    let mut set = CpuSet::new();
    set.set(core as usize).map_err(|source| ShardError::Pin {
        index,
        core,
        source,
    })?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|source| ShardError::Pin {
        index,
        core,
        source,
    })?;
    let (reactor, waker) =
        Reactor::new(RING_ENTRIES).map_err(|source| ShardError::Ring { index, source })?;
    let service = match role {
        Job::Idle => Service::Idle,
        Job::Target(r) => Service::Target(Box::new(
            TargetService::open(r.index, r.pools, &r.endpoint).map_err(|source| {
                ShardError::Fabric {
                    target: r.index,
                    node: r.endpoint.node.clone(),
                    port: r.endpoint.port,
                    source,
                }
            })?,
        )),
        Job::System(c) => {
            let (node, port) = (c.host.clone(), c.port);
            Service::System(Box::new(
                SystemContext::open(c).map_err(|source| ShardError::Context {
                    node,
                    port,
                    source,
                })?,
            ))
        }
    };
    Ok((reactor, waker, service))
}

fn spin_time() -> Duration {
    std::env::var("DAOS_TARGET_SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(TARGET_SPIN, Duration::from_micros)
}

/// The shard loop: serve the fabric (targets), drain commands, sleep in the ring when idle.
fn run(mut reactor: Reactor, rx: Receiver<Command>, idle: Duration, mut service: Service) {
    let spin = spin_time();
    let mut last_work = Instant::now();
    loop {
        let mut work = service.poll();
        loop {
            match rx.try_recv() {
                Ok(Command::Ping(reply)) => {
                    let _ = reply.try_send(allowed_cpus());
                }
                Ok(Command::PoolSpace(uuid, reply)) => {
                    let _ = reply.try_send(service.target().map(|t| t.space(&uuid)));
                }
                Ok(Command::ClosePool(uuid, done)) => {
                    if let Some(t) = service.target() {
                        t.close_pool(&uuid);
                    }
                    let _ = done.try_send(());
                }
                Ok(Command::Membership(m)) => match &mut service {
                    Service::System(c) => c.set_membership(m),
                    Service::Target(t) => t.set_membership(m),
                    Service::Idle => {}
                },
                Ok(Command::Peers(links)) => {
                    if let Some(t) = service.target() {
                        t.set_peers(links);
                    }
                }
                Ok(Command::Peer(msg)) => {
                    if let Some(t) = service.target() {
                        t.peer_msg(msg);
                    }
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
            work += 1;
        }
        if work > 0 {
            last_work = Instant::now();
            continue;
        }
        let wait = match service {
            Service::Idle => idle,
            _ if last_work.elapsed() < spin => {
                std::hint::spin_loop();
                continue;
            }
            _ => TARGET_NAP,
        };
        if let Err(e) = reactor.wait(wait) {
            crate::dlog!(
                crate::log::Subsys::Server,
                daos_config::logmask::Level::Err,
                "shard reactor: {e}; the shard stops"
            );
            return;
        }
    }
}

/// CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<u32> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect()
}

impl Shard {
    /// How another target reaches this shard (`target`: its target index).
    pub fn link(&self, target: u32) -> PeerLink {
        PeerLink {
            target,
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Sends a command without blocking; a full queue is [`ShardError::Busy`].
    pub fn send(&self, cmd: Command) -> Result<(), ShardError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => ShardError::Busy { index: self.index },
            TrySendError::Disconnected(_) => ShardError::Died { index: self.index },
        })?;
        self.waker
            .wake()
            .map_err(|_| ShardError::Died { index: self.index })
    }

    /// Asks the shard for its CPUs; `None` if it does not answer within `timeout`.
    pub fn ping(&self, timeout: Duration) -> Option<Vec<u32>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Ping(tx)).ok()?;
        rx.recv_timeout(timeout).ok()
    }

    /// Has a target shard close a pool's store; true once it has (or it is no target).
    pub fn close_pool(&self, uuid: &str, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Command::ClosePool(uuid.into(), tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Asks a shard how much of a pool's space its target uses; `None` for non-targets or
    /// no answer within `timeout`.
    pub fn pool_space(&self, uuid: &str, timeout: Duration) -> Option<Result<(u64, u64), String>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::PoolSpace(uuid.into(), tx)).ok()?;
        rx.recv_timeout(timeout).ok().flatten()
    }

    /// Stops the shard and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.tx.try_send(Command::Stop);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coremap::Role;

    #[test]
    fn shards_are_pinned_and_answer() {
        let cores = allowed_cpus();
        let core = *cores.last().expect("at least one cpu");
        let s = spawn(
            0,
            Placement {
                role: Role::Target(0),
                core,
            },
        )
        .expect("spawn");
        assert_eq!(s.ping(Duration::from_secs(5)), Some(vec![core]));
        s.stop();
    }

    #[test]
    fn a_sleeping_shard_is_woken_through_its_ring() {
        let core = *allowed_cpus().first().expect("a cpu");
        // Idle wait of ten minutes: only the eventfd wake-up can make it answer in time.
        let s = spawn_with_idle(
            1,
            Placement {
                role: Role::Target(1),
                core,
            },
            Duration::from_secs(600),
        )
        .expect("spawn");
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..100 {
            assert_eq!(s.ping(Duration::from_secs(5)), Some(vec![core]));
        }
        s.stop();
    }

    #[test]
    fn pinning_to_an_absent_core_fails_clearly() {
        let err = spawn(
            3,
            Placement {
                role: Role::Target(2),
                core: 4000,
            },
        )
        .err()
        .expect("no core 4000");
        assert!(
            err.to_string()
                .starts_with("shard 3: cannot pin to core 4000"),
            "{err}"
        );
    }
}
